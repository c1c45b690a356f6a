"""`waveunet stats`: both aggregates of a folder of museval JSON files, checked against values worked by hand."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from waveunet_tf import cli
from waveunet_tf.evaluation.scores import aggregate, load_scores, stats_of_folder

NAN = float("nan")
# SDR frames per track and source; NaN / None are frames where BSSEval is undefined (a silent source).
FRAMES = {
    "Track A": {"vocals": [1, 3, NAN, 5], "accompaniment": [10, 12, 14, 16]},
    "Track B": {"vocals": [NAN, None, 2], "accompaniment": [8, None, 9]},
    "Track C": {"vocals": [NAN, NAN], "accompaniment": [11, 11]},  # vocals silent throughout
}


def _museval_doc(targets):
    """A museval 0.4 score file; SIR = SDR + 1, SAR = 2 * SDR, ISR = SDR, NaN written as museval does."""
    def metric(x, f):
        return None if x is None else f(x)
    return {"targets": [{"name": name, "frames": [
        {"time": float(i), "duration": 1.0,
         "metrics": {"SDR": metric(x, float), "SIR": metric(x, lambda v: v + 1), "SAR": metric(x, lambda v: 2 * v),
                     "ISR": metric(x, float)}} for i, x in enumerate(frames)]}
        for name, frames in targets.items()], "museval_version": "0.4.1"}


@pytest.fixture
def score_dir(tmp_path):
    folder = tmp_path / "scores" / "test"
    folder.mkdir(parents=True)
    for track, targets in FRAMES.items():
        # allow_nan writes NaN literals, as museval's simplejson output does
        (folder / f"{track}.json").write_text(json.dumps(_museval_doc(targets), allow_nan=True, indent=1))
    (tmp_path / "scores" / "results.json").write_text(json.dumps({"paper": {}, "sisec": {}, "tracks": 0}))
    return tmp_path / "scores"


def test_paper_and_sisec_aggregates_match_hand_computation(score_dir):
    stats = stats_of_folder(score_dir)
    assert stats["tracks"] == 3
    assert list(stats["paper"]) == ["vocals", "accompaniment"]
    voc, acc = stats["paper"]["vocals"]["SDR"], stats["paper"]["accompaniment"]["SDR"]
    # vocals pooled frames without NaN: 1, 3, 5, 2
    assert voc["median"] == pytest.approx(2.5)
    assert voc["mad"] == pytest.approx(1.0)  # |x - 2.5| = 1.5, 0.5, 2.5, 0.5
    assert voc["mean"] == pytest.approx(2.75)
    assert voc["sd"] == pytest.approx(math.sqrt(8.75 / 4))
    # accompaniment pooled: 10, 12, 14, 16, 8, 9, 11, 11
    assert acc["median"] == pytest.approx(11.0)
    assert acc["mad"] == pytest.approx(1.5)
    assert acc["mean"] == pytest.approx(11.375)
    assert acc["sd"] == pytest.approx(math.sqrt(47.875 / 8))
    # SiSEC: per-track medians, then their median; Track C has no defined vocals frame and drops out
    assert stats["sisec"]["vocals"]["SDR"] == pytest.approx(2.5)  # median(3, 2)
    assert stats["sisec"]["accompaniment"]["SDR"] == pytest.approx(11.0)  # median(13, 8.5, 11)
    # the other metrics are read from their own fields
    assert stats["paper"]["vocals"]["SIR"]["median"] == pytest.approx(3.5)
    assert stats["paper"]["vocals"]["SAR"]["median"] == pytest.approx(5.0)
    assert stats["paper"]["vocals"]["SAR"]["mad"] == pytest.approx(2.0)
    assert stats["sisec"]["accompaniment"]["SIR"] == pytest.approx(12.0)


def test_all_nan_source_gives_null_not_nan(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps(_museval_doc({"vocals": [NAN], "accompaniment": [4.0]}),
                                                allow_nan=True))
    stats = aggregate(load_scores(tmp_path))
    assert stats["paper"]["vocals"]["SDR"] == {"median": None, "mad": None, "mean": None, "sd": None}
    assert stats["sisec"]["vocals"]["SDR"] is None
    json.dumps(stats, allow_nan=False)  # strict JSON: no NaN leaks into the output


def test_cli_json_shape(score_dir, capsys):
    assert cli.main(["stats", str(score_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"paper", "sisec", "tracks"}
    assert set(doc["paper"]["vocals"]) == {"SDR", "SIR", "SAR", "ISR"}
    assert set(doc["paper"]["vocals"]["ISR"]) == {"median", "mad", "mean", "sd"}
    assert doc["sisec"]["vocals"]["SDR"] == pytest.approx(2.5)


def test_cli_text_lists_each_source_and_metric(score_dir, capsys):
    assert cli.main(["stats", str(score_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 tracks")
    line = next(l for l in out.splitlines() if l.startswith("accompaniment") and " SDR " in l)
    assert line.split()[2:] == ["11.00", "1.50", "11.38", "2.45", "11.00"]


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a folder"),
    ("empty", "holds no museval JSON"),
    ("broken", "is not valid JSON"),
    ("twice", "is scored twice"),
])
def test_bad_input_is_one_line(tmp_path, capsys, case, message):
    folder = tmp_path / "d"
    if case != "missing":
        folder.mkdir()
    if case == "broken":
        (folder / "a.json").write_text("{")
    if case == "twice":
        for sub in ("m1", "m2"):
            (folder / sub).mkdir()
            (folder / sub / "Song.json").write_text(json.dumps(_museval_doc({"vocals": [1.0]})))
    assert cli.main(["stats", str(folder)]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_evaluation_folder_means_its_model_scores_not_the_baseline(tmp_path, capsys):
    (tmp_path / "evaluation.json").write_text("{}")
    for sub, sdr in (("scores", 7.0), ("baseline", -3.0)):
        (tmp_path / sub / "test").mkdir(parents=True)
        (tmp_path / sub / "test" / "Song.json").write_text(json.dumps(_museval_doc({"vocals": [sdr, sdr + 2]})))
    assert cli.main(["stats", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["paper"]["vocals"]["SDR"]["median"] == pytest.approx(8.0)


MUSEVAL_REFERENCE = (Path(__file__).parents[2] / "shared" / "fixtures" / "musdb18_sample" /
                     "museval_reference_random_estimates.json")


def test_stats_of_museval_reference_frames_match_numpy_on_the_file(tmp_path, capsys):
    """museval's own score file of a real MUSDB18 track (random estimates), aggregated by `stats` and by numpy
    straight from the JSON: median, MAD, mean, SD of the frames, and SiSEC's median (one track: its median)."""
    shutil.copy(MUSEVAL_REFERENCE, tmp_path / "Music Delta - 80s Rock.json")
    assert cli.main(["stats", str(tmp_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    reference = json.loads(MUSEVAL_REFERENCE.read_text())
    assert stats["tracks"] == 1 and list(stats["paper"]) == ["vocals", "accompaniment"]
    for target in reference["targets"]:
        for metric in ("SDR", "SIR", "SAR", "ISR"):
            x = np.array([f["metrics"][metric] for f in target["frames"]], dtype=np.float64)
            want = {"median": np.median(x), "mad": np.median(np.abs(x - np.median(x))), "mean": np.mean(x),
                    "sd": np.std(x)}
            got = stats["paper"][target["name"]][metric]
            assert got == pytest.approx(want, abs=1e-9), (target["name"], metric)
            assert stats["sisec"][target["name"]][metric] == pytest.approx(np.median(x), abs=1e-9)
    # and a number read off the file by eye: the six vocals SDR frames sorted, the middle two averaged
    assert stats["paper"]["vocals"]["SDR"]["median"] == pytest.approx((-15.90668 + -15.33723) / 2)
