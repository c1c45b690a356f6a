"""`waveunet evaluate` on tiny synthetic MUSDB18-HQ data with a tiny untrained model: files, shapes, scores that
agree with `stats`, resuming, and one-line errors."""

import json

import pytest
import soundfile as sf

from waveunet_tf import cli

SECONDS = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from data_pipeline.synth import make_synthetic_dataset
    from waveunet_tf import build_model, variant_config
    root = tmp_path_factory.mktemp("evaluate")
    make_synthetic_dataset(root / "musdb", tracks=0, test_tracks=2, seconds=SECONDS, seed=3)
    models = []
    for seed in (0, 1):
        cfg = variant_config("M4", num_layers=3, num_initial_filters=4, requested_output=512, seed=seed)
        path = root / f"tiny{seed}.keras"
        build_model(cfg).save(path)
        models.append(path)
    return root, models


def _evaluate(root, model, out, *extra):
    return cli.main(["evaluate", "--model", str(model), "--musdb-root", str(root / "musdb"), "--wav",
                     "--out", str(out), *extra])


@pytest.mark.slow
def test_evaluate_writes_estimates_scores_and_aggregates_then_resumes(setup, capsys):
    from waveunet_tf.statistics import stats_of_folder
    root, (model, other) = setup
    out = root / "eval"
    assert _evaluate(root, model, out) == 0
    printed = capsys.readouterr().out
    assert "| M4 (eval) | 2 |" in printed and "| mixture as estimate (eval) | 2 |" in printed

    tracks = sorted(p.name for p in (root / "musdb" / "test").iterdir())
    assert tracks == ["synth test 000", "synth test 001"]
    for t in tracks:
        mixture, rate = sf.read(root / "musdb" / "test" / t / "mixture.wav")
        for s in ("accompaniment", "vocals"):
            est, est_rate = sf.read(out / "test" / t / f"{s}.wav")
            assert est_rate == rate == 44100 and est.shape == mixture.shape  # the track's rate and exact length
        doc = json.loads((out / "scores" / "test" / f"{t}.json").read_text())
        assert {x["name"] for x in doc["targets"]} == {"vocals", "accompaniment"}
        assert all(len(x["frames"]) == SECONDS for x in doc["targets"])  # 1-s windows and hops
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"paper", "sisec", "tracks"} and results["tracks"] == 2
    assert results == json.loads(json.dumps(stats_of_folder(out / "scores")))
    # the mixture baseline: the mixture of a two-source task scores the same median SDR for the two sources
    # with opposite signs (its SDR is the source-to-rest power ratio per frame)
    base = json.loads((out / "baseline.json").read_text())["paper"]
    assert base["vocals"]["SDR"]["median"] == pytest.approx(-base["accompaniment"]["SDR"]["median"], abs=0.05)
    assert (out / "sdr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "results.md").read_text()
    assert "M4 published (SiSEC 2018 STL1)" in md and "Median SDR gain over the mixture as estimate" in md
    assert json.loads((out / "config.json").read_text())["name"] == "M4"

    # resume: one score file lost (as if killed before it was written); the other track is not redone
    kept, lost = out / "scores" / "test" / f"{tracks[0]}.json", out / "scores" / "test" / f"{tracks[1]}.json"
    lost.unlink()
    before = kept.stat().st_mtime_ns, (out / "test" / tracks[1] / "vocals.wav").stat().st_mtime_ns
    assert _evaluate(root, model, out) == 0
    assert kept.stat().st_mtime_ns == before[0]
    assert (out / "test" / tracks[1] / "vocals.wav").stat().st_mtime_ns == before[1]  # estimates reused
    assert json.loads((out / "results.json").read_text()) == results
    capsys.readouterr()

    # another model into the same folder: refused, unless --force (which starts over)
    assert _evaluate(root, other, out) == 1
    err = capsys.readouterr().err.strip()
    assert "holds an evaluation with another model" in err and "--force" in err and len(err.splitlines()) == 1
    assert _evaluate(root, other, out, "--force") == 0
    assert json.loads((out / "results.json").read_text()) != results


def test_bad_input_is_one_line(setup, tmp_path, capsys):
    root, (model, _) = setup
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        (["--musdb-root", str(tmp_path), "--wav"], "has no 'test' subset"),
        (["--musdb-root", str(root / "musdb")], "holds no MUSDB18 tracks (<track>.stem.mp4) (it holds WAV track "
                                                 "folders: add --wav)"),
        (["--musdb-root", str(root / "musdb"), "--wav", "--out", str(blocker / "out")], "cannot write to the "
                                                                                         "output folder"),
        (["--musdb-root", str(root / "musdb"), "--wav", "--out", str(tmp_path / "o"), "--model-x"], None),
    ]
    for args, message in cases:
        if message is None:
            with pytest.raises(SystemExit) as e:
                cli.main(["evaluate", "--model", str(model), *args])
            assert e.value.code == 2
            continue
        assert cli.main(["evaluate", "--model", str(model), *args]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert cli.main(["evaluate", "--model", str(tmp_path / "nope.keras"), "--musdb-root", str(root / "musdb"),
                     "--wav"]) == 1
    assert "does not exist" in capsys.readouterr().err
