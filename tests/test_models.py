"""The official models by name (issue 11): served from 127.0.0.1 as an archive in the official layout with
full-size checkpoints, downloaded, imported exactly, cached; every failure one line with nothing half-written.
No test here touches the real network: every test points WAVEUNET_OFFICIAL_URL at a local server or a closed
port, and WAVEUNET_CACHE at its own folder."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from official_archive import LAYOUT, ArchiveServer, write_checkpoints, zip_folder

from waveunet_tf import pretrained
from waveunet_tf.cli import main
from waveunet_tf.download import download

FIXTURES = Path(__file__).parents[2] / "shared" / "fixtures" / "official_tf1"


@pytest.fixture(scope="session")
def official(tmp_path_factory):
    """models.zip as the official README describes it (one folder per model at the top) and the same
    checkpoints unzipped, nested two folders deep as a hand download might be -> dict."""
    root = tmp_path_factory.mktemp("official")
    folder = root / "downloads" / "checkpoints"
    prefixes = write_checkpoints(folder)
    for meta in folder.rglob("*.meta"):  # graph files hold our random initial values; no importer reads them
        meta.unlink()
    archive = zip_folder(folder, root / "models.zip")
    return {"zip": archive, "folder": folder, "prefixes": prefixes,
            "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}


@pytest.fixture(autouse=True)
def local_server_without_proxy(monkeypatch):
    """urllib honours http_proxy: the local test server must be reached directly."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture(scope="session")
def blob(tmp_path_factory):
    """4 MB of random bytes, for the tests of downloading alone."""
    path = tmp_path_factory.mktemp("blob") / "models.zip"
    path.write_bytes(np.random.default_rng(3).bytes(4 << 20))
    return {"path": path, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache, and a URL nothing listens on unless a test serves one."""
    monkeypatch.setenv("WAVEUNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WAVEUNET_OFFICIAL_URL", closed_port_url())
    return tmp_path / "cache" / "official"


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/models.zip"


def cache_files(official_dir: Path) -> list[str]:
    """Everything in the cache but the lock file (which stays by design)."""
    return sorted(p.name for p in official_dir.glob("*") if p.name != ".lock") if official_dir.exists() else []


def one_line_error(capsys, argv, code=1) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ---- the archive layout and the checkpoint writer, against outside facts -------------------------------------

def test_checkpoint_writer_writes_the_official_variable_names(tmp_path):
    """The checkpoints in the test archive carry exactly the variables (names, shapes) the official trainer
    writes: compared with a checkpoint the official code wrote (fixture tiny_M4)."""
    import tensorflow as tf
    from official_checkpoint import official_variables, write_official_checkpoint

    from waveunet_tf.official_import import load_official_config
    case = FIXTURES / "tiny_M4"
    ours = write_official_checkpoint(official_variables(load_official_config(case / "config.json")), tmp_path / "m")
    want = tf.train.load_checkpoint(str(case / "model-123")).get_variable_to_shape_map()
    assert tf.train.load_checkpoint(ours).get_variable_to_shape_map() == want


def test_find_checkpoint_by_folder_wherever_it_sits():
    names = ["a/b/baseline_stereo/812340-2000.index", "a/b/baseline_stereo/812340-90000.index",
             "a/b/baseline_stereo/812340-90000.data-00000-of-00001", "__MACOSX/full_44KHz/._full_44KHz-9.index",
             "full_44KHz/full_44KHz-236118.index", "full_multi_instrument/checkpoint"]
    assert pretrained.find_checkpoint(names, "baseline_stereo") == "a/b/baseline_stereo/812340-90000"
    assert pretrained.find_checkpoint(names, "full_44KHz") == "full_44KHz/full_44KHz-236118"
    assert pretrained.find_checkpoint(names, "full_multi_instrument") is None


# The official Config.py (f90/Wave-U-Net): its base configuration's architecture keys and the named
# configurations whose checkpoints the official archive holds, quoted as they are there.
OFFICIAL_BASE = {"num_layers": 12, "filter_size": 15, "merge_filter_size": 5, "output_filter_size": 1,
                 "num_initial_filters": 24, "expected_sr": 22050, "mono_downmix": True, "output_type": "direct",
                 "output_activation": "tanh", "context": False, "upsampling": "linear", "task": "voice"}
OFFICIAL_NAMED = {
    "baseline_stereo": {"output_type": "difference", "context": True, "mono_downmix": False},
    "full_44KHz": {"output_type": "difference", "context": True, "upsampling": "learned", "mono_downmix": False,
                   "expected_sr": 44100},
    "full_multi_instrument": {"output_type": "difference", "context": True, "upsampling": "linear",
                              "mono_downmix": False, "task": "multi_instrument"},
}


def official_variant(folder, reference):
    """The variant of the shared reference whose architecture is the official named config ``folder``'s."""
    c = {**OFFICIAL_BASE, **OFFICIAL_NAMED[folder]}
    want = {"num_layers": c["num_layers"], "filter_size": c["filter_size"], "merge_filter_size": c["merge_filter_size"],
            "output_filter_size": c["output_filter_size"], "num_initial_filters": c["num_initial_filters"],
            "sample_rate": c["expected_sr"], "channels": 1 if c["mono_downmix"] else 2,
            "output_type": c["output_type"], "output_activation": c["output_activation"], "context": c["context"],
            "upsampling": c["upsampling"],
            "sources": ["bass", "drums", "other", "vocals"] if c["task"] == "multi_instrument" else
            ["accompaniment", "vocals"]}
    found = [name for name, facts in reference.items() if isinstance(facts, dict) and name != "training"
             and not name.startswith("_") and all(facts.get(k) == v for k, v in want.items())]
    assert len(found) == 1, (folder, found)
    return found[0]


def test_the_three_models_are_the_official_named_configs():
    """Folder -> variant, each worked out from the official Config.py's named configuration and the shared
    reference's variants (../shared/reference/official_variants.json)."""
    reference = json.loads((Path(__file__).parents[2] / "shared" / "reference" / "official_variants.json")
                           .read_text())
    for model in pretrained.MODELS.values():
        assert model.variant == official_variant(model.folder, reference), model.folder
    assert sorted(m.folder for m in pretrained.MODELS.values()) == sorted(OFFICIAL_NAMED)


# ---- first use: download, import, cache; later uses without the network ----------------------------------------

def write_song(path: Path, seconds=2.0, rate=22050):
    import soundfile as sf
    rng = np.random.default_rng(1)
    sf.write(path, (0.1 * rng.standard_normal((int(seconds * rate), 2))).astype(np.float32), rate)
    return path


def stems(folder: Path) -> dict:
    import soundfile as sf
    return {p.stem: sf.read(p, dtype="float32")[0] for p in sorted(folder.glob("*.wav"))}


@pytest.mark.slow
def test_separate_official_m4_downloads_imports_caches_then_works_offline(official, cache, tmp_path, monkeypatch,
                                                                           capsys):
    song = write_song(tmp_path / "song.wav")
    separate = ["separate", str(song), "--model", "official:M4", "-o"]
    with ArchiveServer(official["zip"]) as server:
        monkeypatch.setenv("WAVEUNET_OFFICIAL_URL", server.url)
        assert main(separate + [str(tmp_path / "first")]) == 0
    assert server.requests == [(None, 200)]  # one download
    assert cache_files(cache) == ["M4.json", "M4.keras", "models.zip"]
    meta = json.loads((cache / "M4.json").read_text())
    assert meta["source"] == server.url and meta["checkpoint"] == "baseline_stereo/812340-90000"
    assert (meta["archive_bytes"], meta["archive_sha256"]) == (official["zip"].stat().st_size, official["sha256"])
    assert (meta["official_folder"], meta["variant"]) == ("baseline_stereo", "M4")

    # the server is gone: the cache answers
    assert main(separate + [str(tmp_path / "second")]) == 0
    ref = tmp_path / "m4.keras"
    assert main(["import-official", str(official["prefixes"]["M4"]), "--variant", "M4", "--out", str(ref)]) == 0
    assert main(["separate", str(song), "--model", str(ref), "-o", str(tmp_path / "imported")]) == 0
    capsys.readouterr()
    want = stems(tmp_path / "imported" / "song")
    assert sorted(want) == ["accompaniment", "vocals"] and want["vocals"].shape == (2 * 22050, 2)
    assert np.abs(want["vocals"]).max() > 0
    for run in ("first", "second"):
        got = stems(tmp_path / run / "song")
        assert sorted(got) == sorted(want)
        for source in want:
            np.testing.assert_array_equal(got[source], want[source])


@pytest.mark.slow
def test_fetch_from_zip_and_folder_equal_import_official_and_listed(official, cache, tmp_path, capsys):
    """`models fetch --from` on the zip, on an unzipped folder (the model folders two levels down) and on one
    model's own folder; each cached model computes what `import-official` of the same checkpoint computes;
    `models --json` lists them."""
    import keras

    assert main(["models", "fetch", "M6", "--from", str(official["folder"] / "full_multi_instrument"),
                 "--quiet"]) == 0
    assert main(["models", "fetch", "official:M5-HighSR", "--from", str(official["zip"]), "--quiet"]) == 0
    assert main(["models", "fetch", "m4", "--from", str(official["folder"].parent), "--quiet"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(cache / f"{n}.keras") for n in ("M6", "M5-HighSR", "M4")]
    assert cache_files(cache) == sorted(f"{n}.{e}" for n in LAYOUT for e in ("json", "keras"))  # no zip copied
    meta = {n: json.loads((cache / f"{n}.json").read_text()) for n in LAYOUT}
    assert (meta["M6"]["checkpoint"], meta["M6"]["archive_sha256"]) == (
        "full_multi_instrument/full_multi_instrument-134067", None)
    assert (meta["M4"]["checkpoint"], meta["M4"]["source"]) == (
        "downloads/checkpoints/baseline_stereo/812340-90000", str(official["folder"].parent))
    assert (meta["M5-HighSR"]["archive_sha256"], meta["M5-HighSR"]["source"]) == (official["sha256"],
                                                                                   str(official["zip"]))

    again = ["models", "fetch", "M4", "--from", str(official["zip"])]
    assert main(again) == 0 and "already cached, not imported again" in capsys.readouterr().err
    assert json.loads((cache / "M4.json").read_text()) == meta["M4"]
    assert main(again + ["--force", "--quiet"]) == 0
    assert json.loads((cache / "M4.json").read_text())["source"] == str(official["zip"])
    capsys.readouterr()

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["official_folder"], r["cached"], r["path"]) for r in rows] == [
        (n, LAYOUT[n][0], True, str(cache / f"{n}.keras")) for n in ("M4", "M6", "M5-HighSR")]
    assert rows[2]["sample_rate"] == 44100 and rows[1]["sources"] == ["bass", "drums", "other", "vocals"]

    from waveunet_tf.config import reference_facts
    from waveunet_tf.model_io import load_model
    model, config = load_model("official:M6")  # the Python API, from the cache (the URL is a closed port)
    assert (config.name, list(config.sources)) == ("M6", rows[1]["sources"])
    assert model.count_params() == reference_facts()["M6"]["params"]

    for name in ("M6", "M5-HighSR"):
        ref = tmp_path / f"{name}.keras"
        assert main(["import-official", str(official["prefixes"][name]), "--variant", name, "--out", str(ref)]) == 0
        cached, imported = (keras.models.load_model(p, compile=False) for p in (cache / f"{name}.keras", ref))
        x = np.random.default_rng(2).uniform(-1, 1, (1, 147443, 2)).astype(np.float32)
        got, want = cached.predict(x, verbose=0), imported.predict(x, verbose=0)
        assert sorted(got) == sorted(rows[1 if name == "M6" else 2]["sources"])
        for source in want:
            np.testing.assert_array_equal(got[source], want[source])


# ---- interrupted downloads ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_interrupted_download_resumes_with_range(official, cache, monkeypatch, capsys):
    """Also: what a fetch killed with -9 left (a half-written model) is removed."""
    cut = official["zip"].stat().st_size // 3
    cache.mkdir(parents=True)
    (cache / ".M4.keras.0badc0de.partial.keras").write_bytes(b"half a model")
    with ArchiveServer(official["zip"], ranges=True, cut_after=cut) as server:
        monkeypatch.setenv("WAVEUNET_OFFICIAL_URL", server.url)
        assert main(["models", "fetch", "M4", "--quiet"]) == 0
    assert server.requests == [(None, 200), (f"bytes={cut}-", 206)]
    assert hashlib.sha256((cache / "models.zip").read_bytes()).hexdigest() == official["sha256"]
    assert capsys.readouterr().out.split() == [str(cache / "M4.keras")]
    assert cache_files(cache) == ["M4.json", "M4.keras", "models.zip"]


def test_download_without_range_support_restarts_from_zero(blob, tmp_path):
    """A server that ignores Range sends the whole file again: the partial file restarts, it is not appended to.
    Also the leftover of a killed process (bytes already in the partial file) is resumed or restarted alike."""
    partial = tmp_path / ".models.zip.download"
    cut = blob["path"].stat().st_size // 2
    with ArchiveServer(blob["path"], ranges=False, cut_after=cut) as server:
        download(server.url, partial, progress=False)
    assert server.requests == [(None, 200), (f"bytes={cut}-", 200)]
    assert hashlib.sha256(partial.read_bytes()).hexdigest() == blob["sha256"]

    partial.write_bytes(blob["path"].read_bytes()[:1000])  # a killed download's leftover
    with ArchiveServer(blob["path"], ranges=True) as server:
        download(server.url, partial, progress=False)
    assert server.requests == [("bytes=1000-", 206)]
    assert hashlib.sha256(partial.read_bytes()).hexdigest() == blob["sha256"]


@pytest.mark.slow
def test_download_interrupted_again_and_again_stops_and_the_next_run_resumes(official, cache, monkeypatch, capsys):
    cut = 1 << 20
    with ArchiveServer(official["zip"], cut_after=cut, cuts=3) as server:
        monkeypatch.setenv("WAVEUNET_OFFICIAL_URL", server.url)
        line = one_line_error(capsys, ["models", "fetch", "M4", "--quiet"])
        assert line.endswith(f"cannot download the official models from {server.url}: interrupted 3 times "
                             f"({3 * cut:,} of {official['zip'].stat().st_size:,} bytes received; {3 * cut:,} "
                             "bytes kept, run again to resume); set WAVEUNET_OFFICIAL_URL to a mirror, or "
                             "download the archive by hand and run `waveunet models fetch NAME --from models.zip`")
        assert cache_files(cache) == [".models.zip.download"] and (cache / ".models.zip.download").stat().st_size \
            == 3 * cut
        assert main(["models", "fetch", "M4", "--quiet"]) == 0
    assert [r for r, _ in server.requests] == [None, f"bytes={cut}-", f"bytes={2 * cut}-", f"bytes={3 * cut}-"]
    assert hashlib.sha256((cache / "models.zip").read_bytes()).hexdigest() == official["sha256"]
    assert cache_files(cache) == ["M4.json", "M4.keras", "models.zip"]


# ---- failures: one line each, nothing half-written in the cache -------------------------------------------------

def small_zip(tmp_path, folder_of_case: dict) -> Path:
    """A zip with the tiny official fixtures' checkpoints under the given official folders."""
    import shutil
    root = tmp_path / "small"
    for folder, case in folder_of_case.items():
        (root / folder).mkdir(parents=True)
        for f in (FIXTURES / case).glob("model-123*"):
            shutil.copy(f, root / folder / f.name)
    return zip_folder(root, tmp_path / "small.zip")


def test_no_network_names_the_url_the_mirror_variable_and_fetch_from(cache, capsys):
    url = os.environ["WAVEUNET_OFFICIAL_URL"]
    err = one_line_error(capsys, ["models", "fetch", "M4", "--quiet"])
    assert url in err and "Connection refused" in err
    assert "WAVEUNET_OFFICIAL_URL" in err and "models fetch NAME --from" in err
    assert cache_files(cache) == []


def test_dead_link(tmp_path, cache, monkeypatch, capsys):
    with ArchiveServer(tmp_path, status=404) as server:
        monkeypatch.setenv("WAVEUNET_OFFICIAL_URL", server.url)
        err = one_line_error(capsys, ["models", "fetch", "M4", "--quiet"])
    assert server.url in err and "HTTP 404" in err and "WAVEUNET_OFFICIAL_URL" in err
    assert cache_files(cache) == []


@pytest.mark.parametrize("case", ["not a zip", "truncated", "missing folder", "does not fit"])
def test_bad_archives(case, tmp_path, cache, monkeypatch, capsys):
    if case == "not a zip":
        served = tmp_path / "page.html"
        served.write_text("<html>Dropbox: this link is no longer available</html>")
        expect = "is not a complete zip archive"
    elif case == "truncated":
        whole = small_zip(tmp_path, {"baseline_stereo": "tiny_M4"}).read_bytes()
        served = tmp_path / "cut.zip"
        served.write_bytes(whole[:len(whole) // 2])
        expect = "is not a complete zip archive"
    elif case == "missing folder":
        served = small_zip(tmp_path, {"full_44KHz": "tiny_M5"})
        expect = "has no checkpoint of M4: no folder baseline_stereo/"
    else:
        served = small_zip(tmp_path, {"baseline_stereo": "tiny_M4"})
        # the importer's line, naming the checkpoint in the archive rather than its temporary copy
        expect = "models.zip:baseline_stereo/model-123 does not fit M4: separator/conv1d/kernel has shape"
    with ArchiveServer(served) as server:
        monkeypatch.setenv("WAVEUNET_OFFICIAL_URL", server.url)
        err = one_line_error(capsys, ["models", "fetch", "M4", "--quiet"])
    assert expect in err and "Traceback" not in err
    assert cache_files(cache) == []  # neither the archive nor a partial model stays


def test_bad_archive_given_with_from_is_left_alone(tmp_path, cache, capsys):
    """A hand-downloaded archive that lacks the model is the user's file: reported, not deleted."""
    served = small_zip(tmp_path, {"full_44KHz": "tiny_M5"})
    err = one_line_error(capsys, ["models", "fetch", "M6", "--from", str(served), "--quiet"])
    assert f"{served} has no checkpoint of M6" in err and served.exists() and cache_files(cache) == []


def test_unknown_name_lists_the_known_ones(cache, capsys):
    err = one_line_error(capsys, ["models", "fetch", "M7"], code=2)
    assert err.endswith("unknown official model 'M7'; the official models are official:M4, official:M6, "
                        "official:M5-HighSR")
    with pytest.raises(Exception, match="official:M5-HighSR"):
        pretrained.ensure_model("M5")
    assert cache_files(cache) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (mounting needs root and the permission to mount)."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill the disk: {done.stderr.decode().strip() or done.returncode}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_during_download(blob, small_disk, monkeypatch, capsys):
    monkeypatch.setenv("WAVEUNET_CACHE", str(small_disk))
    with ArchiveServer(blob["path"]) as server:
        monkeypatch.setenv("WAVEUNET_OFFICIAL_URL", server.url)
        err = one_line_error(capsys, ["models", "fetch", "M4", "--quiet"])
    assert f"the disk holding {small_disk / 'official'} is full" in err and "WAVEUNET_CACHE" in err
    assert cache_files(small_disk / "official") == []


# ---- two processes at once ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_processes_fetching_at_once_leave_a_correct_cache(official, cache, monkeypatch, tmp_path):
    """Two fetches at once, whatever the machine's speed: the server holds the download until the second process
    says it waits for the first; then one has downloaded and imported, the other finds the model cached."""
    import keras
    gate = threading.Event()
    with ArchiveServer(official["zip"], gate=gate) as server:
        env = {**os.environ, "WAVEUNET_OFFICIAL_URL": server.url}
        cmd = [sys.executable, "-m", "waveunet_tf.cli", "models", "fetch", "M4"]
        errs = [tmp_path / f"err{i}" for i in range(2)]
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=open(e, "w"), text=True)
                 for e in errs]
        deadline = time.time() + 600  # a guard against a hang, not a speed limit
        try:
            while not (server.requests and any("waiting for it" in e.read_text() for e in errs)):
                assert time.time() < deadline and all(p.poll() is None for p in procs), [e.read_text() for e in errs]
                time.sleep(0.1)
        finally:
            gate.set()
        outs = [(p.communicate(timeout=600)[0], e.read_text()) for p, e in zip(procs, errs)]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    assert [o[0].split() for o in outs] == [[str(cache / "M4.keras")]] * 2
    assert server.requests == [(None, 200)]  # one download
    assert sorted("waiting for it" in err for _, err in outs) == [False, True]
    assert cache_files(cache) == ["M4.json", "M4.keras", "models.zip"]
    assert json.loads((cache / "M4.json").read_text())["archive_sha256"] == official["sha256"]
    assert keras.models.load_model(cache / "M4.keras", compile=False).count_params() == 10263390


def test_models_lists_the_published_scores_and_the_cache(cache, capsys):
    """The table's SDR medians are the published ones (PRODUCT.md: M5-HighSR vocals 4.95, M6 drums 4.15)."""
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "official:M5-HighSR  (variant M5-HighSR, official folder full_44KHz: 44100 Hz, accompaniment + vocals)" \
        in out
    assert "vocals 4.95" in out and "drums 4.15" in out
    assert out.count("not cached: fetched on first use") == 3 and str(cache) in out


def test_download_into_a_log_file_writes_a_few_lines_not_a_bar(blob, tmp_path, capsys):
    """Issue 21, 8: the download drew its bar into log files; a bar only in a terminal, as training does."""
    with ArchiveServer(blob["path"], ranges=True) as server:
        download(server.url, tmp_path / "models.zip.download", progress=True, desc="official models")
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert 1 <= len(lines) <= 4 and all(line.startswith("official models: ") for line in lines), lines
    assert lines[-1] == "official models: 4.2 MB of 4.2 MB (100%)"  # 4 << 20 bytes


def test_a_stalled_download_is_resumed_after_the_timeout_the_readme_states(blob, tmp_path, monkeypatch):
    import re
    from waveunet_tf import download as download_module
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    stated = re.search(r"a download\s+that receives nothing for (\d+) s is interrupted", readme)
    assert stated and int(stated.group(1)) == download_module.TIMEOUT_S
    assert re.search(rf"{download_module.RETRIES} attempts in all", readme)
    monkeypatch.setattr(download_module, "TIMEOUT_S", 0.5)  # the server pauses 3 s after each MiB it sends
    partial = tmp_path / "models.zip.download"
    with ArchiveServer(blob["path"], pace=3.0) as server:
        with pytest.raises(download_module.DownloadFailed, match=r"interrupted 3 times \(timed out; .* bytes kept"):
            download(server.url, partial, progress=False)
    mib = 1 << 20
    assert server.requests == [(None, 200), (f"bytes={mib}-", 206), (f"bytes={2 * mib}-", 206)]
    assert partial.read_bytes() == blob["path"].read_bytes()[:3 * mib]
