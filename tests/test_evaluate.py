"""`waveunet evaluate`: its scoring path against museval's reference scores of a real MUSDB18 track; on tiny
synthetic MUSDB18-HQ data with a tiny untrained model: files, shapes, aggregates that numpy computes from the
score files, resuming, stale results, and one-line errors."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_pipeline import make_synthetic_dataset
from waveunet_tf import build_model, cli, variant_config
from waveunet_tf.errors import UserError
from waveunet_tf.evaluation import excerpts
from waveunet_tf.evaluation.evaluate import default_out, evaluate_track
from waveunet_tf.evaluation.record import claim, read_record
from waveunet_tf.evaluation.scores import read_track_scores

SECONDS = 3
MUSDB_SAMPLE = Path(__file__).parents[2] / "shared" / "fixtures" / "musdb18_sample"


def test_scoring_matches_museval_reference_frames(tmp_path):
    """museval's regression reference: random estimates (``np.random.seed(0)``, vocals then accompaniment) of
    the real track, scored by ``museval.eval_mus_track``. Our scoring path (estimates written as 16-bit WAVs and
    read back, scored, written, read) must give every frame within 0.1 dB, museval's own tolerance."""
    import musdb
    (track,) = musdb.DB(root=str(MUSDB_SAMPLE), subsets="train").tracks
    np.random.seed(0)
    random = {"vocals": np.random.random(track.audio.shape), "accompaniment": np.random.random(track.audio.shape)}

    def separate(mixture, rate):
        assert rate == 44100 and mixture.shape == track.audio.shape
        return random
    assert evaluate_track(track, separate, ["vocals", "accompaniment"], tmp_path, "train", baseline=False)
    ours = read_track_scores(tmp_path / "scores" / "train" / f"{track.name}.json")
    reference = json.loads((MUSDB_SAMPLE / "museval_reference_random_estimates.json").read_text())
    for target in reference["targets"]:
        for metric in ("SDR", "SIR", "SAR", "ISR"):
            want = [f["metrics"][metric] for f in target["frames"]]
            np.testing.assert_allclose(ours[target["name"]][metric], want, atol=0.1,
                                       err_msg=f"{target['name']} {metric}")


def _pooled_by_hand(folder: Path, source: str) -> np.ndarray:
    """Every defined SDR frame of ``source`` in the museval files under ``folder``, read with json alone."""
    frames = [f["metrics"]["SDR"] for p in sorted(folder.rglob("*.json"))
              for t in json.loads(p.read_text())["targets"] if t["name"] == source for f in t["frames"]]
    x = np.array([np.nan if v is None else v for v in frames], dtype=np.float64)
    return x[np.isfinite(x)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
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
    for source in ("vocals", "accompaniment"):
        x = _pooled_by_hand(out / "scores", source)
        assert x.size > 0
        want = {"median": np.median(x), "mad": np.median(np.abs(x - np.median(x))), "mean": x.mean(), "sd": x.std()}
        assert results["paper"][source]["SDR"] == pytest.approx(want, abs=1e-9)
    # the mixture baseline: the mixture of a two-source task scores the same median SDR for the two sources
    # with opposite signs (its SDR is the source-to-rest power ratio per frame)
    base = json.loads((out / "baseline.json").read_text())["paper"]
    assert base["vocals"]["SDR"]["median"] == pytest.approx(-base["accompaniment"]["SDR"]["median"], abs=0.05)
    assert (out / "sdr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "results.md").read_text()
    assert "M4 published (SiSEC 2018 STL1)" in md and "Median SDR gain over the mixture as estimate" in md
    assert json.loads((out / "config.json").read_text())["name"] == "M4"
    # the report: excerpts of every track written from its current scores, the page from results.json
    assert all(excerpts.up_to_date(out, "test", t) for t in tracks)
    median = results["paper"]["vocals"]["SDR"]["median"]
    assert f'data-key="results.json#paper.vocals.SDR.median">{median:.2f}<' in (out / "report.html").read_text()

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
    assert all(excerpts.up_to_date(out, "test", t) for t in tracks)  # rewritten for the new model's scores
    # every file written (and rewritten by --force) has the mode open() gives under the umask, not mkstemp's 0600
    mask = os.umask(0o022)
    os.umask(mask)
    found = {p.relative_to(out): p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert len(found) > 10 and set(found.values()) == {0o666 & ~mask}, found


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


def test_starting_over_removes_the_old_model_results_before_claiming(tmp_path):
    """``--force`` with another model deletes the old scores and aggregates before the new record names the new
    model: an evaluation killed right after never presents the old model's results as the new one's."""
    old = {"model": "/m/a.keras", "model_fingerprint": "a", "musdb_root": "/d", "wav": True, "subset": "test"}
    new = dict(old, model="/m/b.keras", model_fingerprint="b")
    claim(tmp_path, old, [], force=False)
    scores, results = tmp_path / "scores", tmp_path / "results.json"
    (scores / "test").mkdir(parents=True)
    (scores / "test" / "Song.json").write_text("{}")
    results.write_text("{}")
    with pytest.raises(UserError, match="another model"):
        claim(tmp_path, new, [scores, results], force=False)
    assert results.is_file() and read_record(tmp_path) == old
    claim(tmp_path, old, [scores, results], force=True)  # the same model: nothing is discarded
    assert results.is_file() and (scores / "test" / "Song.json").is_file()
    claim(tmp_path, new, [scores, results], force=True)
    assert not scores.exists() and not results.exists() and read_record(tmp_path) == new


def test_default_output_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert default_out(run) == run  # a run directory evaluates into itself
    assert default_out(tmp_path / "m4.keras") == tmp_path / "m4-evaluation"
    assert default_out("official:M4") == Path("official-M4-evaluation")  # here, not in the model cache
