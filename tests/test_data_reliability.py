"""prepare and synth as a careful user runs them (issue 12): the split after --skip-bad, file modes under the umask,
leftovers of a killed prepare, two prepares at once, and worker processes that die with a killed parent."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_pipeline import make_synthetic_dataset, prepare_cache
from waveunet_tf.cli import main
from waveunet_tf.files import process_lock

pytest_plugins = ["conftest_data"]


@pytest.fixture()
def root(synth_root, tmp_path):
    """A private copy of the session's synthetic root (train: synth 000, 001, 002; test: synth test 000)."""
    return shutil.copytree(synth_root, tmp_path / "root")


@pytest.fixture()
def umask():
    """Run the test under umask 027 (a group-readable, world-closed habit), restored afterwards."""
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def modes(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mode & 0o777 for p in folder.rglob("*")}


def test_skip_bad_draws_the_split_from_the_prepared_tracks(root, tmp_path, capsys, data):
    # --split musdb on non-MUSDB names holds out the last train track by name: synth 002, the broken one
    (root / "train" / "synth 002" / "bass.wav").unlink()
    cache = tmp_path / "cache"
    argv = ["prepare", "--musdb-root", str(root), "--wav", "--cache", str(cache), "--sample-rate", str(data.RATE)]
    assert main(argv + ["--skip-bad"]) == 0
    err = capsys.readouterr().err
    assert "1 train, 1 valid, 1 test tracks" in err and "train/synth 002" in err
    split = {t["name"]: t["split"] for t in json.loads((cache / "manifest.json").read_text())["tracks"]}
    assert split == {"synth 000": "train", "synth 001": "valid", "synth test 000": "test"}


def test_an_empty_split_is_announced(root, tmp_path, capsys, data):
    for name in ("synth 001", "synth 002"):
        shutil.rmtree(root / "train" / name)
    cache = tmp_path / "cache"
    assert main(["prepare", "--musdb-root", str(root), "--wav", "--cache", str(cache), "--sample-rate",
                 str(data.RATE)]) == 0
    err = capsys.readouterr().err
    assert f"warning: cache {cache} has no valid tracks (1 train, 0 valid, 1 test)" in err


def test_files_get_the_mode_open_gives_under_the_umask(root, tmp_path, umask, capsys, data):
    cache = tmp_path / "cache"
    prepare_cache(root, cache, data.RATE, wav=True)
    found = modes(cache)
    assert found and {m for p, m in found.items() if (cache / p).is_file()} == {0o666 & ~umask}
    assert {m for p, m in found.items() if (cache / p).is_dir()} == {0o777 & ~umask}
    # --force rewrites a dataset: the files keep the umask's mode, not mkstemp's 0600
    out = tmp_path / "synth"
    assert main(["synth", str(out), "--tracks", "1", "--test-tracks", "0", "--seconds", "0.5"]) == 0
    assert main(["synth", str(out), "--tracks", "1", "--test-tracks", "0", "--seconds", "0.5", "--seed", "1",
                 "--force"]) == 0
    files = {p: m for p, m in modes(out).items() if (out / p).is_file()}
    assert len(files) == 5 and set(files.values()) == {0o666 & ~umask}


def test_leftovers_of_a_killed_prepare_are_removed_on_resume(root, tmp_path, data):
    cache = tmp_path / "cache"
    prepare_cache(root, cache, data.RATE, wav=True)
    track = cache / "train" / "synth 001"
    (track / "track.json").unlink()  # killed while writing this track: no record, a temporary stem left
    leftovers = [track / ".bass.wav.1a2b3c4d.partial.wav", cache / "train" / "synth 000" / ".x.1234.partial.wav",
                 cache / ".manifest.json.9f8e7d6c.partial.json"]
    for p in leftovers:
        p.write_bytes(b"half a file")
    mine = cache / "train" / "synth 000" / ".my-notes"  # not ours: it stays
    mine.write_text("keep")
    manifest = prepare_cache(root, cache, data.RATE, wav=True)
    assert len(manifest["tracks"]) == 4 and (track / "track.json").is_file()
    assert not [p for p in leftovers if p.exists()] and mine.read_text() == "keep"


def test_two_prepares_on_one_cache_are_refused(root, tmp_path, capsys, data):
    cache = tmp_path / "cache"
    with process_lock(cache / ".prepare.lock", "a test"):
        code = main(["prepare", "--musdb-root", str(root), "--wav", "--cache", str(cache), "--sample-rate",
                     str(data.RATE)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert f"cache {cache} is in use by another process (pid {os.getpid()})" in err
    assert not (cache / "manifest.json").exists()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process tree from /proc (Linux)")
def test_kill_9_of_prepare_jobs_2_leaves_no_worker_behind(tmp_path, data):
    root = make_synthetic_dataset(tmp_path / "root", tracks=8, test_tracks=0, seconds=6, seed=5)
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "waveunet_tf.cli", "prepare", "--musdb-root", str(root), "--wav", "--cache",
            str(cache), "--sample-rate", str(data.RATE), "--jobs", "2"]
    parent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    try:
        deadline, workers = time.monotonic() + 60, []
        while time.monotonic() < deadline and parent.poll() is None:
            workers = [p for p in _children(parent.pid)
                       if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
            if len(workers) >= 2:
                break
            time.sleep(0.05)
        assert len(workers) >= 2, "prepare --jobs 2 never had two workers"
        children = _children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        assert not [p for p in children if _alive(p)], "workers outlived their killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        for p in children:  # when the test fails: do not leave the orphans running
            if _alive(p):
                os.kill(p, signal.SIGKILL)
    # and the same command resumes: every track, no leftover of the killed run
    subprocess.run(argv, check=True, capture_output=True)
    assert len(json.loads((cache / "manifest.json").read_text())["tracks"]) == 8
    assert not [p for p in cache.rglob("*") if ".partial" in p.name]
