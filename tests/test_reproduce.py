"""`waveunet reproduce`: the embedded default data, the whole prepare -> train -> evaluate -> table chain on a
tiny model (and its resumption), and one-line errors before any work starts."""

import json

import numpy as np
import pytest
import soundfile as sf

import browser
from waveunet_tf import cli
from waveunet_tf import reproduction as reproduce

TINY_SYNTH = {"tracks": 4, "test_tracks": 1, "seconds": 3, "seed": 0}
# a tiny quick model: 25 steps per epoch, one epoch per stage (enough to beat the mixture as estimate)
TINY_SETS = ["num_layers=4", "num_initial_filters=8", "requested_output=512", "steps_per_epoch=25", "patience=1",
             "fine_tune_patience=1", "max_epochs=1", "batch_size=4", "learning_rate=1e-3"]


@pytest.fixture
def tiny_synth(monkeypatch):
    monkeypatch.setattr(reproduce, "SYNTH", TINY_SYNTH)


def test_embedded_dataset_adds_the_real_example_as_a_test_track(tmp_path, tiny_synth):
    import musdb
    import stempeg
    groups = reproduce.embedded_dataset(tmp_path / "data")
    example = reproduce.example_track_name()
    assert groups == {reproduce.SYNTHETIC_GROUP: ["synth test 000"], reproduce.EXAMPLE_GROUP: [example]}
    db = musdb.DB(root=str(tmp_path / "data"), is_wav=True, subsets="test")
    assert sorted(t.name for t in db.tracks) == sorted(["synth test 000", example])
    stems, rate = stempeg.read_stems(stempeg.example_stem_path())
    for i, name in enumerate(reproduce.STEM_ORDER):
        audio, file_rate = sf.read(tmp_path / "data" / "test" / example / f"{name}.wav", dtype="float32")
        assert file_rate == rate == 44100 and audio.shape == stems[i].shape == (268288, 2)
        np.testing.assert_allclose(audio, stems[i], atol=1e-6)  # float WAV: the decoded stems, unclipped
    # made once: a second call does not rewrite it
    mtime = (tmp_path / "data" / "dataset.json").stat().st_mtime_ns
    assert reproduce.embedded_dataset(tmp_path / "data") == groups
    assert (tmp_path / "data" / "dataset.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_reproduce_tiny_end_to_end_then_resume(tmp_path, tiny_synth, capsys):
    run = tmp_path / "run"
    argv = ["reproduce", "--variant", "M4", "--quick", "--run-dir", str(run)] + \
           [x for s in TINY_SETS for x in ("--set", s)]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert out[-1] == str(run)  # the run dir is the last line on stdout
    assert "[reproduce] note: the paper trained M4 on MUSDB18 plus CCMixter's 50 songs" in captured.err
    assert any(line.startswith("| M4 (run) | 2 |") for line in out)
    assert any(line.strip().startswith("synthetic test tracks: vocals") for line in out)
    for name in ("config.json", "best.keras", "history.csv", "results.json", "baseline.json", "results.md",
                 "sdr.png", "groups.json", "cache/manifest.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["name"] == "M4" and config["sample_rate"] == 8192 and config["num_layers"] == 4
    results = json.loads((run / "results.json").read_text())
    assert results["tracks"] == 2 and set(results["paper"]) == {"vocals", "accompaniment"}
    groups = json.loads((run / "groups.json").read_text())
    synthetic = groups[reproduce.SYNTHETIC_GROUP]
    assert synthetic["tracks"] == ["synth test 000"]
    gain = synthetic["results"]["paper"]["vocals"]["SDR"]["median"] - \
        synthetic["baseline"]["paper"]["vocals"]["SDR"]["median"]
    assert synthetic["gain"]["vocals"] == pytest.approx(gain)
    # learning: a few dozen steps of a tiny model beat the mixture as estimate on the synthetic and the real
    # tracks (the vocals: the mixture is a poor estimate of them, and an untrained model a worse one)
    for title in (reproduce.SYNTHETIC_GROUP, reproduce.EXAMPLE_GROUP):
        assert groups[title]["gain"]["vocals"] > 0, (title, groups[title]["gain"])
    md = (run / "results.md").read_text()
    assert "## synthetic test tracks (1 track: synth test 000)" in md and "## real example track" in md

    # rerun: everything is done, nothing is redone
    stamps = {p: p.stat().st_mtime_ns for p in sorted(run.glob("*/test/*.json"))}  # scores and baseline
    assert len(stamps) == 4
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(run)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((run / "results.json").read_text()) == results

    # the results name the weights they scored: those training recorded for best.keras
    scored = json.loads((run / "evaluation.json").read_text())["model_fingerprint"]
    assert scored == json.loads((run / "state.json").read_text())["best_fingerprint"] != ""
    assert cli.main(["table", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["stale"] is None
    # train --force starts the run over: the old results are no longer presented as the run's
    assert cli.main(["train", "--variant", "M4", "--quick", "--cache", str(run / "cache"), "--run-dir", str(run),
                     "--force", "--max-steps", "1"] + [x for s in TINY_SETS for x in ("--set", s)]) == 0
    assert json.loads((run / "state.json").read_text())["best_fingerprint"] not in ("", scored)
    capsys.readouterr()
    assert cli.main(["table", str(run)]) == 0
    captured = capsys.readouterr()
    assert "| M4 (run) [stale] | 2 |" in captured.out and "trained again" in captured.err
    # report.html (of the results, now stale): audio, images and numbers checked in headless Chromium; last, as
    # it skips, saying why, where Chromium cannot be installed
    seen = browser.check_page(run / "report.html", tmp_path / "report.png")
    assert seen["numbers"] > 0 and len(seen["durations"]) >= 2 * 3  # per track: mixture, reference, estimate
    assert seen["images"] == 2 + 2  # sdr.png, the run's loss.png, a frame plot per test track


@pytest.mark.parametrize("extra, message, code", [
    (["--variant", "M9"], "unknown variant 'M9'", 2),
    (["--variant", "M4", "--set", "num_layerz=3"], "unknown config key 'num_layerz'", 2),
    (["--variant", "M4", "--jobs", "0"], "--jobs must be at least 1", 2),
    (["--variant", "M4", "--musdb-root", "{tmp}"], "has no 'test' subset", 1),
    (["--variant", "M4", "--run-dir", "{tmp}/a-file/run"], "cannot write to the output folder", 1),
    (["--variant", "M4", "--wav"], "--wav describes a --musdb-root", 2),
    (["--variant", "M6", "--ccmixter-root", "{tmp}"], "trained M6 (bass, drums, other, vocals) on MUSDB18 alone", 2),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, extra, message, code):
    (tmp_path / "a-file").write_text("")
    argv = ["reproduce", "--run-dir", str(tmp_path / "run")] + [x.replace("{tmp}", str(tmp_path)) for x in extra]
    assert cli.main(argv) == code
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run" / "data").exists()  # nothing was generated
