"""Issue 19: CCMixter beside MUSDB, your own songs with only some stems, the official validation draw; issue 21
#4: a cache holds one root. The corpora are generated here in their published layouts (tiny WAVs)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_pipeline import evaluation_dataset, open_cache, prepare_cache, training_dataset
from data_pipeline.ingest import assign_splits
from waveunet_tf.cli import main
from waveunet_tf.errors import UserError

pytest_plugins = ["conftest_data"]

def ccmixter_names():
    """The 50 folder names, read from the package data."""
    import data_pipeline
    return json.loads((Path(data_pipeline.__file__).parent / "ccmixter.json").read_text())["songs"]


def make_ccmixter(root: Path, rate: int, names=None, seconds=0.25) -> Path:
    """CCMixter's published layout: DIR/<song>/{mix,source-01,source-02}.wav (instrumental, voice), 16-bit."""
    rng = np.random.default_rng(7)
    for name in names if names is not None else ccmixter_names():
        n = int(seconds * rate)
        acc = np.round(rng.uniform(-0.3, 0.3, (n, 2)) * 32767) / 32768
        voc = np.round(rng.uniform(-0.3, 0.3, (n, 2)) * 32767) / 32768
        folder = root / name
        folder.mkdir(parents=True)
        for file, x in (("source-01.wav", acc), ("source-02.wav", voc), ("mix.wav", acc + voc)):
            sf.write(str(folder / file), x, rate, subtype="PCM_16")
    return root


def one_line(err, command="prepare"):
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and
             not line.startswith(f"{command}: ")]
    assert len(lines) == 1 and lines[0].startswith(f"waveunet {command}: error: "), err
    return lines[0]


def test_the_ccmixter_list_is_the_official_xmls_50_songs():
    names = ccmixter_names()
    assert len(names) == len(set(names)) == 50
    # the folder names of the corpus as published: "<artist>_-_<title>", one folder per song
    assert all("_-_" in n and "/" not in n for n in names)
    assert "AlexBeroza_-_To_Be_Sensitive_(with_mindmapthat)" in names


def test_ccmixter_prepares_as_50_training_tracks_and_m6_leaves_them_out(synth_root, tmp_path, data, capsys):
    ccm = make_ccmixter(tmp_path / "ccm", data.RATE)
    cache = tmp_path / "cache"
    manifest = prepare_cache(synth_root, cache, data.RATE, wav=True, ccmixter_root=ccm)
    songs = [t for t in manifest["tracks"] if t["dataset"] == "ccmixter"]
    assert len(songs) == 50 and {t["split"] for t in songs} == {"train"}
    assert {t["dataset"] for t in manifest["tracks"] if t not in songs} == {"musdb"}
    assert [t["split"] for t in manifest["tracks"] if t["dataset"] == "musdb"].count("valid") == 1  # as before
    song = next(t for t in songs if t["name"] == ccmixter_names()[0])
    assert song["stems"] == ["accompaniment", "vocals"] and song["dir"].startswith("ccmixter/")
    # the cached files are the corpus's: source-01 the accompaniment, source-02 the vocals
    for stem, file in (("accompaniment", "source-01.wav"), ("vocals", "source-02.wav"), ("mixture", "mix.wav")):
        want, _ = sf.read(str(ccm / song["name"] / file), dtype="int16")
        have, _ = sf.read(str(cache / song["dir"] / f"{stem}.wav"), dtype="int16")
        np.testing.assert_array_equal(have, want)

    # a later prepare without --ccmixter-root keeps the songs; another CCMixter root is refused
    again = prepare_cache(synth_root, cache, data.RATE, wav=True)
    assert again["tracks"] == manifest["tracks"] and again["ccmixter_root"] == str(ccm)
    shutil.copytree(ccm, tmp_path / "ccm2")
    with pytest.raises(UserError, match=f"was prepared from {ccm}, not {tmp_path / 'ccm2'}"):
        prepare_cache(synth_root, cache, data.RATE, wav=True, ccmixter_root=tmp_path / "ccm2")

    opened = open_cache(cache)
    m4, m6 = data.tiny("M4"), data.tiny("M6")
    assert opened.left_out(m4) == ""
    assert opened.left_out(m6) == ("M6 trains on 4 of the cache's 54 tracks: 50 ccmixter track(s) lack bass.wav, "
                                   "drums.wav, other.wav and are left out")
    assert len(opened.tracks_in("train", m4)) == 52 and len(opened.tracks_in("train", m6)) == 2
    # M4's training windows come from both corpora: a CCMixter vocals window is one of the song's own samples
    for mixture, targets in training_dataset(cache, m4, 64, seed=0, augment=False).take(1):
        mixture, vocals, acc = mixture.numpy(), targets["vocals"].numpy(), targets["accompaniment"].numpy()
    # the mixture of each example is the sum of its sources (centre crop), for MUSDB and CCMixter tracks alike
    left = (m4.input_length - m4.output_length) // 2
    np.testing.assert_allclose(mixture[:, left:left + m4.output_length], vocals + acc, atol=1e-6)
    # every 4-sample run of every song's vocals: a window that starts with one comes from CCMixter
    runs = {sig[i:i + 4].tobytes() for t in songs for sig in [data.cached(cache, t, "vocals")]
            for i in range(len(sig) - 3)}
    from_ccmixter = sum(v[:4].tobytes() in runs for v in vocals if np.any(v[:4]))
    assert from_ccmixter > 0  # 50 of the 52 training tracks, drawn by length: 64 draws must hit some
    # M6 streams only the MUSDB tracks (every window's bass exists)
    for _, targets in training_dataset(cache, m6, 4, seed=0, augment=False).take(1):
        assert set(targets) == {"bass", "drums", "other", "vocals"}


def test_ccmixter_missing_and_extra_songs_are_named(synth_root, tmp_path, data, capsys):
    names = ccmixter_names()
    ccm = make_ccmixter(tmp_path / "ccm", data.RATE)
    shutil.rmtree(ccm / names[3])
    (ccm / "not_a_song").mkdir()
    argv = ["prepare", "--musdb-root", str(synth_root), "--wav", "--cache", str(tmp_path / "cache"),
            "--sample-rate", str(data.RATE), "--ccmixter-root", str(ccm)]
    assert main(argv) == 1
    assert "'not_a_song'" in one_line(capsys.readouterr().err)
    shutil.rmtree(ccm / "not_a_song")
    assert main(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert f"CCMixter song {names[3]!r} is missing" in line
    (ccm / names[5] / "source-02.wav").unlink()
    assert main(argv + ["--skip-bad"]) == 0
    err = capsys.readouterr().err
    assert f"train/{names[3]}: CCMixter song {names[3]!r} is missing" in err
    assert f"train/{names[5]}: track {names[5]!r} lacks source-02.wav" in err
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert sum(t["dataset"] == "ccmixter" for t in manifest["tracks"]) == 48


def own_songs(root: Path, synth_root: Path) -> Path:
    """Your own songs: each folder of the synthetic root with only vocals.wav and accompaniment.wav."""
    for src in sorted(synth_root.glob("*/*/vocals.wav")):
        folder = root / src.parent.parent.name / src.parent.name
        folder.mkdir(parents=True)
        shutil.copy(src, folder / "vocals.wav")
        parts = [sf.read(str(src.parent / f"{s}.wav"), dtype="int16", always_2d=True) for s in ("bass", "drums",
                                                                                               "other")]
        acc = sum(x.astype(np.int32) for x, _ in parts)
        sf.write(str(folder / "accompaniment.wav"), acc.astype(np.int16), parts[0][1], subtype="PCM_16")
    return root


def test_own_songs_with_two_stems_prepare_and_feed_m4_but_not_m6(synth_root, tmp_path, data, capsys):
    root = own_songs(tmp_path / "own", synth_root)
    cache = tmp_path / "cache"
    manifest = prepare_cache(root, cache, data.RATE, wav=True)
    assert {t["dataset"] for t in manifest["tracks"]} == {"own"}
    assert manifest["stems"] == ["vocals", "accompaniment"]
    track = next(t for t in manifest["tracks"] if t["split"] == "valid")
    # mixture.wav was absent: it is the sum of the two stems
    mix = data.cached(cache, track, "mixture")
    np.testing.assert_allclose(mix, data.cached(cache, track, "vocals") + data.cached(cache, track, "accompaniment"),
                               atol=2 / 32768)  # three roundings to 16 bits
    # the validation windows' accompaniment is the song's accompaniment.wav
    m4 = data.tiny("M4")
    _, targets = next(iter(evaluation_dataset(cache, m4, batch_size=4)))
    np.testing.assert_array_equal(targets["accompaniment"].numpy()[0],
                                  data.cached(cache, track, "accompaniment")[:m4.output_length])
    with pytest.raises(UserError, match=r"cannot give M6's sources .* lack bass.wav, drums.wav, other.wav"):
        training_dataset(cache, data.tiny("M6"), 2)
    # a song that lacks one of the root's stems is named, as in MUSDB18
    (root / "train" / "synth 001" / "vocals.wav").unlink()
    with pytest.raises(UserError, match=r"'synth 001' lacks vocals.wav"):
        prepare_cache(root, tmp_path / "cache2", data.RATE, wav=True)


def test_own_songs_train_m4(synth_root, tmp_path, data):
    from waveunet_tf.training import train_on_cache
    root = own_songs(tmp_path / "own", synth_root)
    prepare_cache(root, tmp_path / "cache", data.RATE, wav=True)
    cfg = data.tiny("M4", batch_size=2, steps_per_epoch=2)
    state = train_on_cache(cfg, tmp_path / "cache", tmp_path / "run", progress=False, log=lambda line: None,
                           max_steps=1)
    assert state.step == 1 and state.epoch == 1 and np.isfinite(state.best_loss) and (tmp_path / "run" /
                                                                                      "best.keras").is_file()


def test_a_second_root_is_refused_and_force_rebuilds(synth_root, tmp_path, data, capsys):
    """Issue 21 #4: before, the manifest named the new root while the tracks kept the old root's audio."""
    first = tmp_path / "first"
    shutil.copytree(synth_root, first)
    second = own_songs(tmp_path / "second", synth_root)
    shutil.rmtree(second / "train" / "synth 002")
    cache = tmp_path / "cache"
    argv = ["prepare", "--wav", "--cache", str(cache), "--sample-rate", str(data.RATE)]
    assert main(argv + ["--musdb-root", str(first)]) == 0
    capsys.readouterr()
    before = (cache / "manifest.json").read_text()
    assert main(argv + ["--musdb-root", str(second)]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"was prepared from {first}, not {second}" in line and "--force" in line
    assert (cache / "manifest.json").read_text() == before
    # an interrupted prepare of the first root (no manifest yet) is recognised by its tracks
    (cache / "manifest.json").unlink()
    assert main(argv + ["--musdb-root", str(second)]) == 1
    assert "was prepared from" in one_line(capsys.readouterr().err)
    assert main(argv + ["--musdb-root", str(second), "--force"]) == 0
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["source_root"] == str(second)
    assert sorted(t["name"] for t in manifest["tracks"]) == ["synth 000", "synth 001", "synth test 000"]
    assert not (cache / "train" / "synth 002").exists()  # the first root's own track is gone
    track = manifest["tracks"][0]
    assert track["stems"] == ["vocals", "accompaniment"] and not (cache / track["dir"] / "bass.wav").exists()


def test_a_manifest_without_datasets_still_opens_as_musdb(synth_cache, tmp_path, data):
    old = tmp_path / "old"
    shutil.copytree(synth_cache, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for t in manifest["tracks"]:
        del t["dataset"], t["stems"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    opened = open_cache(old)
    assert opened.left_out(data.tiny("M6")) == ""
    a = next(iter(evaluation_dataset(old, data.tiny("M4"), batch_size=4)))
    b = next(iter(evaluation_dataset(synth_cache, data.tiny("M4"), batch_size=4)))
    np.testing.assert_array_equal(a[1]["accompaniment"].numpy(), b[1]["accompaniment"].numpy())


def test_the_official_validation_draw():
    # MUSDB18's 100 train tracks (stand-in names; the draw depends only on their sorted order), given shuffled
    names = [f"Track {i:03d}" for i in range(100)]
    tracks = [{"name": n, "subset": "train"} for n in reversed(names)] + [{"name": "T", "subset": "test"}]
    rule = assign_splits(tracks, "official")
    valid = sorted(t["name"] for t in tracks if t["split"] == "valid")
    # the official Datasets.py, after Sacred's set_global_seed(1337) (numpy's global generator)
    saved = np.random.get_state()
    np.random.seed(1337)
    official = np.random.choice(len(names), size=25, replace=False)
    np.random.set_state(saved)
    assert valid == sorted(names[i] for i in official)
    assert len(valid) == 25 and "1337" in rule
    assert [t["split"] for t in tracks if t["subset"] == "test"] == ["test"]
    # the order is that of the .stem.mp4 file names: "Song 009 B.stem.mp4" sorts before "Song 009.stem.mp4"
    # (by name it is the other way round); the draw's index 10 tells them apart
    names = [f"Song {i:03d}" for i in range(9)] + ["Song 009", "Song 009 B"] + [f"Song {i:03d}" for i in range(11, 100)]
    by_file = sorted(names, key=lambda n: n + ".stem.mp4")
    assert 10 in official and by_file[10] == "Song 009" and sorted(names)[10] == "Song 009 B"
    tracks = [{"name": n, "subset": "train"} for n in names]
    assign_splits(tracks, "official")
    assert sorted(t["name"] for t in tracks if t["split"] == "valid") == sorted(by_file[i] for i in official)
    with pytest.raises(UserError, match="over MUSDB18's 100 train tracks, but the root has 3"):
        assign_splits([{"name": str(i), "subset": "train"} for i in range(3)], "official")
