"""The synthetic dataset: MUSDB18-HQ layout, exact mixtures, determinism, sources that differ, the CLI."""

import hashlib

import numpy as np
import pytest
import soundfile as sf

from data_pipeline import make_synthetic_dataset
from waveunet_tf.cli import main

STEMS = ("vocals", "drums", "bass", "other")


def read_int(path):
    data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    return data.astype(np.int64), rate


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.wav")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_format_and_exact_mixture(tmp_path):
    root = make_synthetic_dataset(tmp_path / "d", tracks=2, test_tracks=1, seconds=1.5, seed=0)
    tracks = sorted(p.relative_to(root).parent for p in root.glob("*/*/mixture.wav"))
    assert [t.parts[0] for t in tracks] == ["test", "train", "train"]
    for t in tracks:
        info = sf.info(str(root / t / "mixture.wav"))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (44100, 2, "PCM_16", 66150)
        mix, _ = read_int(root / t / "mixture.wav")
        stems = [read_int(root / t / f"{s}.wav")[0] for s in STEMS]
        np.testing.assert_array_equal(mix, sum(stems))  # the exact sum, sample for sample
        assert np.abs(mix).max() < 32767 * 0.9  # headroom: nothing clips
        assert all(np.abs(s).max() > 1000 for s in stems)  # every source sounds


def test_deterministic_per_seed(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", tracks=1, test_tracks=1, seconds=1, seed=7)
    b = make_synthetic_dataset(tmp_path / "b", tracks=1, test_tracks=1, seconds=1, seed=7)
    c = make_synthetic_dataset(tmp_path / "c", tracks=1, test_tracks=1, seconds=1, seed=8)
    assert digest(a) == digest(b) != digest(c)
    # train and test tracks are different songs
    x, _ = read_int(a / "train" / "synth 000" / "mixture.wav")
    y, _ = read_int(a / "test" / "synth test 000" / "mixture.wav")
    assert not np.array_equal(x, y)


def spectral_centroid(x, rate):
    spectrum = np.abs(np.fft.rfft(x.mean(axis=1)))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(np.sum(freqs * spectrum) / np.sum(spectrum))


def test_sources_are_distinguishable(tmp_path):
    """Bass lowest, drums brightest and most transient, vocals with vibrato around a sung pitch."""
    root = make_synthetic_dataset(tmp_path / "d", tracks=3, test_tracks=0, seconds=4, seed=1)
    for folder in sorted((root / "train").iterdir()):
        audio = {s: read_int(folder / f"{s}.wav")[0].astype(float) for s in STEMS}
        centroid = {s: spectral_centroid(x, 44100) for s, x in audio.items()}
        assert centroid["bass"] < 400 and centroid["bass"] == min(centroid.values())
        assert centroid["drums"] == max(centroid.values())
        # drums: energy in short bursts (high crest of the 10 ms envelope); other: sustained
        env = {s: np.sqrt(np.mean(x.mean(axis=1)[: len(x) // 441 * 441].reshape(-1, 441) ** 2, axis=1))
               for s, x in audio.items()}
        crest = {s: e.max() / (np.median(e) + 1e-9) for s, e in env.items()}
        assert crest["drums"] > crest["other"]
        assert 300 < centroid["vocals"] < 2500


def test_musdb_reads_it(tmp_path):
    import musdb
    root = make_synthetic_dataset(tmp_path / "d", tracks=2, test_tracks=1, seconds=1, seed=0)
    db = musdb.DB(root=str(root), is_wav=True)
    assert sorted(t.name for t in db.tracks) == ["synth 000", "synth 001", "synth test 000"]
    train = musdb.DB(root=str(root), is_wav=True, subsets="train")
    track = train.tracks[0]
    assert track.rate == 44100 and track.audio.shape == (44100, 2)
    assert sorted(track.sources) == sorted(STEMS)
    np.testing.assert_allclose(track.targets["vocals"].audio, track.sources["vocals"].audio)


def test_cli(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["synth", str(out), "--tracks", "1", "--test-tracks", "1", "--seconds", "0.5", "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert sf.info(str(out / "train" / "synth 000" / "vocals.wav")).frames == 22050
    before = digest(out)
    # a second run refuses to overwrite, with one line and exit code 1; the files stay
    assert main(["synth", str(out), "--tracks", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds 2 tracks" in err and "--force" in err
    assert digest(out) == before
    assert main(["synth", str(out), "--tracks", "1", "--test-tracks", "1", "--seconds", "0.5", "--seed", "4",
                 "--force"]) == 0
    assert digest(out) != before


@pytest.mark.parametrize("argv", [["--tracks", "0", "--test-tracks", "0"], ["--seconds", "0"]])
def test_cli_bad_arguments(tmp_path, capsys, argv):
    assert main(["synth", str(tmp_path / "d")] + argv) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "d").exists()
