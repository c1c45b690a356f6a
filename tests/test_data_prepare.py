"""prepare: MUSDB18-HQ and .stem.mp4 ingest, manifest and splits, resumption, bad input; bench input."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_pipeline import evaluation_dataset, open_cache, prepare_cache, training_dataset
from waveunet_tf import shapes
from waveunet_tf.audio import resample
from waveunet_tf.cli import main
from waveunet_tf.errors import UserError

pytest_plugins = ["conftest_data"]


@pytest.fixture()
def root(synth_root, tmp_path):
    """A private copy of the session's synthetic root, to break."""
    return shutil.copytree(synth_root, tmp_path / "root")


def test_manifest_and_resampled_wavs(synth_root, synth_cache, data):
    manifest = json.loads((synth_cache / "manifest.json").read_text())
    assert manifest["sample_rate"] == data.RATE and manifest["subtype"] == "PCM_16"
    assert manifest["stems"] == ["bass", "drums", "other", "vocals"]
    rows = [(t["name"], t["subset"], t["split"], t["length"], t["channels"]) for t in manifest["tracks"]]
    assert rows == [("synth 000", "train", "train", 16000, 2), ("synth 001", "train", "train", 16000, 2),
                    ("synth 002", "train", "valid", 16000, 2), ("synth test 000", "test", "test", 16000, 2)]
    assert "last 1 of 3 train tracks" in manifest["split_rule"]
    track = manifest["tracks"][0]
    for stem in ("mixture", "bass", "drums", "other", "vocals"):
        info = sf.info(str(synth_cache / track["dir"] / f"{stem}.wav"))
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (data.RATE, 16000, 2, "PCM_16")
    # the cached mixture is the resampled mixture: the sum of the cached stems up to 16-bit rounding
    mix = data.cached(synth_cache, track, "mixture")
    stems = sum(data.cached(synth_cache, track, s) for s in ("bass", "drums", "other", "vocals"))
    assert np.abs(mix - stems).max() <= 3 / 32768
    # and it matches the source resampled by soxr
    src, rate = sf.read(str(synth_root / "train" / "synth 000" / "mixture.wav"), dtype="float32")
    np.testing.assert_allclose(mix, resample(src, rate, data.RATE), atol=1 / 32768)


def test_resume_skips_finished_tracks_and_redoes_unfinished(root, tmp_path, data):
    cache = tmp_path / "cache"
    prepare_cache(root, cache, data.RATE, wav=True)
    done = {p: p.stat().st_mtime_ns for p in cache.rglob("*.wav")}
    # an interrupted track: its track.json never got written
    (cache / "train" / "synth 001" / "track.json").unlink()
    (cache / "train" / "synth 001" / "vocals.wav").unlink()
    manifest = prepare_cache(root, cache, data.RATE, wav=True)
    assert len(manifest["tracks"]) == 4
    after = {p: p.stat().st_mtime_ns for p in cache.rglob("*.wav")}
    changed = {p.parent.name for p in after if after[p] != done.get(p)}
    assert changed == {"synth 001"}
    assert [p.name for p in cache.rglob(".*")] == [".prepare.lock"]  # no temporary files left


def test_paper_split_and_a_real_musdb_name(root, tmp_path, data):
    manifest = prepare_cache(root, tmp_path / "cache", data.RATE, wav=True, split="paper")
    assert [t["split"] for t in manifest["tracks"]].count("valid") == 1  # a quarter of 3, at least one
    assert "was never published" in manifest["split_rule"]
    # train tracks named as MUSDB18's: the official validation list applies
    (root / "train" / "synth 000").rename(root / "train" / "Actions - One Minute Smile")
    manifest = prepare_cache(root, tmp_path / "cache2", data.RATE, wav=True, split="musdb")
    split = {t["name"]: t["split"] for t in manifest["tracks"]}
    assert split["Actions - One Minute Smile"] == "valid" and split["synth 001"] == split["synth 002"] == "train"
    assert "official" in manifest["split_rule"]


@pytest.mark.slow
def test_parallel_jobs_give_the_same_cache(root, tmp_path, data):
    one = prepare_cache(root, tmp_path / "one", data.RATE, wav=True, jobs=1)
    two = prepare_cache(root, tmp_path / "two", data.RATE, wav=True, jobs=2)
    assert one["tracks"] == two["tracks"]
    for t in one["tracks"]:
        a = (tmp_path / "one" / t["dir"] / "vocals.wav").read_bytes()
        assert a == (tmp_path / "two" / t["dir"] / "vocals.wav").read_bytes()


def test_float_cache_streams_the_same_windows(root, tmp_path, data):
    prepare_cache(root, tmp_path / "f", data.RATE, wav=True, float_wav=True)
    assert sf.info(str(tmp_path / "f" / "train" / "synth 000" / "vocals.wav")).subtype == "FLOAT"
    prepare_cache(root, tmp_path / "i", data.RATE, wav=True)
    cfg = data.tiny("M4")
    a = next(iter(training_dataset(tmp_path / "f", cfg, 4, seed=0)))[0].numpy()
    b = next(iter(training_dataset(tmp_path / "i", cfg, 4, seed=0)))[0].numpy()
    np.testing.assert_allclose(a, b, atol=4 / 32768)


def one_error_line(err):
    """Besides the progress bar: exactly one line, the error, and no traceback."""
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and not line.startswith("prepare: ")]
    return len(lines) == 1 and lines[0].startswith("waveunet prepare: error: ") and "Traceback" not in err


def run_cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_prepare(root, tmp_path, capsys):
    cache = tmp_path / "cache"
    code, out, err = run_cli(["prepare", "--musdb-root", str(root), "--wav", "--cache", str(cache),
                              "--sample-rate", "8000"], capsys)
    assert code == 0 and out.strip() == str(cache)
    assert "2 train, 1 valid, 1 test tracks at 8000 Hz" in err
    # the same cache at another rate is refused, and nothing is touched
    before = (cache / "manifest.json").read_text()
    code, _, err = run_cli(["prepare", "--musdb-root", str(root), "--wav", "--cache", str(cache),
                            "--sample-rate", "16000"], capsys)
    assert code == 1 and "prepared at 8000 Hz" in err and one_error_line(err)
    assert (cache / "manifest.json").read_text() == before
    code, _, err = run_cli(["prepare", "--musdb-root", str(root), "--wav", "--cache", str(cache), "--jobs", "0"],
                           capsys)
    assert code == 2 and one_error_line(err)


@pytest.mark.parametrize("damage,message", [
    ("no_subsets", "has neither a train/ nor a test/ folder"),
    ("missing_stem", "lacks bass.wav"),
    ("lengths", "stems have different lengths"),
    ("rates", "stems have different sample rates"),
    ("corrupt", "cannot read .*drums.wav"),
    ("mp4_without_wav", "holds no .stem.mp4 files .*pass --wav"),
])
def test_bad_input_one_clear_line(root, tmp_path, capsys, damage, message, data):
    track = root / "train" / "synth 001"
    wav = True
    if damage == "no_subsets":
        (root / "train").rename(root / "training")
        (root / "test").rename(root / "testing")
    elif damage == "missing_stem":
        (track / "bass.wav").unlink()
    elif damage == "lengths":
        x, rate = sf.read(str(track / "other.wav"))
        sf.write(str(track / "other.wav"), x[:-10], rate, subtype="PCM_16")
    elif damage == "rates":
        x, rate = sf.read(str(track / "other.wav"))
        sf.write(str(track / "other.wav"), x, 48000, subtype="PCM_16")
    elif damage == "corrupt":
        (track / "drums.wav").write_bytes(b"RIFF\x00\x00not really a wav file")
    elif damage == "mp4_without_wav":
        wav = False
    cache = tmp_path / "cache"
    argv = ["prepare", "--musdb-root", str(root), "--cache", str(cache), "--sample-rate", "8000"]
    code, _, err = run_cli(argv + (["--wav"] if wav else []), capsys)
    assert code == 1 and one_error_line(err)
    assert re.search(message, err), err
    if damage in ("missing_stem", "lengths", "rates", "corrupt"):
        assert "synth 001" in err
        # the tracks before the bad one are kept; --skip-bad finishes the others and lists the bad one
        assert (cache / "train" / "synth 000" / "track.json").is_file()
        code, _, err = run_cli(argv + ["--wav", "--skip-bad"], capsys)
        assert code == 0 and "skipped 1 bad track(s)" in err and "train/synth 001" in err
        manifest = json.loads((cache / "manifest.json").read_text())
        assert [t["name"] for t in manifest["tracks"]] == ["synth 000", "synth 002", "synth test 000"]
        assert manifest["skipped"][0]["name"] == "synth 001"


def test_empty_cache_and_empty_root(tmp_path, capsys):
    (tmp_path / "root" / "train").mkdir(parents=True)
    code, _, err = run_cli(["prepare", "--musdb-root", str(tmp_path / "root"), "--wav", "--cache",
                            str(tmp_path / "c")], capsys)
    assert code == 1 and "holds no track folders" in err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.json").write_text(json.dumps({"format": "waveunet-cache/1", "tracks": []}))
    with pytest.raises(UserError, match="is empty"):
        open_cache(tmp_path / "c")


MUSDB_SAMPLE = Path(__file__).parents[2] / "shared" / "fixtures" / "musdb18_sample"
SAMPLE_TRACK = "Music Delta - 80s Rock"


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    """The real MUSDB18 track of the shared fixtures (a 7-s .stem.mp4 of sigsep's test data), prepared at 8 kHz
    from its read-only folder."""
    cache = tmp_path_factory.mktemp("musdb") / "cache"
    prepare_cache(MUSDB_SAMPLE, cache, 8000)
    return MUSDB_SAMPLE, cache


def test_real_stem_mp4_stems_sum_to_the_mixture(real_cache, data):
    """MUSDB18's mixture is the sum of its four stems before each of the five streams was AAC-coded on its own, so
    after decoding, resampling and 16-bit rounding they agree up to the coding noise of five streams: the residual
    must stay 25 dB below the mixture (on this track it is 31.6 dB below at 44.1 and 8 kHz). A stream taken in the
    wrong order, or a stem left out, leaves a residual 4 to 9 dB below the mixture on this track."""
    _, cache = real_cache
    manifest = json.loads((cache / "manifest.json").read_text())
    (track,) = manifest["tracks"]
    assert (track["name"], track["subset"], track["split"], track["channels"]) == (SAMPLE_TRACK, "train", "train", 2)
    assert manifest["source_format"] == "stem.mp4"
    mix = data.cached(cache, track, "mixture")
    stems = {s: data.cached(cache, track, s) for s in ("bass", "drums", "other", "vocals")}
    residual = mix - sum(stems.values())
    assert 10 * np.log10(np.sum(mix ** 2) / np.sum(residual ** 2)) > 25
    assert all(np.abs(x).max() > 0.05 for x in stems.values())  # music, not silence, in each stem
    # 7 s of MUSDB18 at 44.1 kHz (300032 decoded samples) at 8 kHz
    assert track["length"] == round(300032 * 8000 / 44100)


def test_real_track_streams(real_cache, data):
    _, cache = real_cache
    track = open_cache(cache).tracks_in("train")[0]
    for name in ("M4", "M6"):
        cfg = data.tiny(name)
        left, _ = shapes.context(cfg)
        ds = evaluation_dataset(cache, cfg, split="train", batch_size=64)
        mix = np.concatenate([m.numpy() for m, _ in ds])
        tgt = {s: np.concatenate([t[s].numpy() for _, t in ds]) for s in cfg.sources}
        n = -(-track["length"] // cfg.output_length)
        assert mix.shape == (n, cfg.input_length, 2)
        stems = {s: data.cached(cache, track, s) for s in ("bass", "drums", "other", "vocals")}
        stems["accompaniment"] = np.clip(stems["bass"] + stems["drums"] + stems["other"], -1, 1)
        pad = n * cfg.output_length - track["length"]
        for s in cfg.sources:
            np.testing.assert_array_equal(tgt[s].reshape(-1, 2)[:track["length"]], stems[s])
            assert np.all(tgt[s].reshape(-1, 2)[track["length"]:] == 0) and pad > 0
        # training windows from the real track: the targets sum to the centre of the mixture window
        for m, t in training_dataset(cache, cfg, 4, seed=0).take(2):
            np.testing.assert_allclose(sum(t.values()).numpy(), m.numpy()[:, left:left + cfg.output_length],
                                       atol=1e-6)


@pytest.mark.slow
def test_bench_input_json(capsys):
    """The bench on a synthetic cache: JSON shape, and numbers that are numbers (figures: see README)."""
    code = main(["bench", "input", "--variant", "M4", "--minutes", "0.5", "--runs", "2", "--batches", "4", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"variant", "windows_per_s", "peak_rss_mb"} and result["variant"] == "M4"
    assert result["windows_per_s"] > 10 and 100 < result["peak_rss_mb"] < 4000
    assert out.count("\n") == 1


def test_corrupt_stem_mp4_is_named(tmp_path, capsys):
    (tmp_path / "root" / "train").mkdir(parents=True)
    (tmp_path / "root" / "train" / "Broken Song.stem.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but no audio")
    code, _, err = run_cli(["prepare", "--musdb-root", str(tmp_path / "root"), "--cache", str(tmp_path / "c")],
                           capsys)
    assert code == 1 and one_error_line(err)
    assert "cannot decode" in err and "Broken Song.stem.mp4" in err and "corrupt" in err
