"""issue 20: ``report.html``, the evaluation to look at and listen to, checked in headless Chromium; and
``waveunet table --html``. The evaluation folders here are written by hand in museval's format (no model, no
museval run): unicode track names, NaN frames, a silent source and a track shorter than a second."""

import json
import shutil
from pathlib import Path
from urllib.parse import quote

import matplotlib.pyplot as plt
import numpy as np
import pytest

import browser
from waveunet_tf import cli
from waveunet_tf.audio import write_wav
from waveunet_tf.evaluation import excerpts
from waveunet_tf.evaluation.evaluate import summarize
from waveunet_tf.files import PARTIAL

RATE = 44100
SOURCES = ("vocals", "accompaniment")
LONG, SHORT = "Café – 東京 «ü»", "tiny"


class Target:
    def __init__(self, audio):
        self.audio = audio


class Track:
    """The parts of a musdb track the excerpts read."""

    def __init__(self, name, seconds, seed):
        rng = np.random.default_rng(seed)
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        vocals = (0.3 * np.sin(2 * np.pi * 440 * t))[:, None].repeat(2, axis=1).astype(np.float32)
        accompaniment = (0.1 * rng.standard_normal((n, 2))).astype(np.float32)
        self.name, self.rate = name, RATE
        self.targets = {"vocals": Target(vocals), "accompaniment": Target(accompaniment)}
        self.audio = vocals + accompaniment


def _score_file(path: Path, sdr: dict) -> None:
    """A museval score file whose SDR frames are ``sdr[source]`` (None: undefined); SIR = SDR + 1, SAR = SDR + 2,
    ISR = SDR + 3."""
    def metrics(v):
        return {m: None if v is None else v + k for k, m in enumerate(("SDR", "SIR", "SAR", "ISR"))}
    doc = {"targets": [{"name": s, "frames": [{"time": float(i), "duration": 1.0, "metrics": metrics(v)}
                                              for i, v in enumerate(frames)]} for s, frames in sdr.items()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


LONG_SDR = {"vocals": [3.0, None, 7.5, 1.0, -2.0, 4.0] + [2.0] * 18 + [9.0],  # best at 24 s, worst at 4 s
            "accompaniment": [0.5 * i for i in range(25)]}
SHORT_SDR = {"vocals": [None], "accompaniment": [1.25]}  # a silent vocal: no frame is defined


def _evaluation(out: Path) -> dict:
    """An evaluation folder: estimates, score files and baselines of a 25-s and a 0.6-s track, their excerpts,
    then ``summarize`` (results.json ... report.html). Returns {name: Track}."""
    tracks = {LONG: Track(LONG, 25.3, 0), SHORT: Track(SHORT, 0.6, 1)}
    (out / "evaluation.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps({"subset": "test"}))
    (out / "state.json").write_text("{}")  # a run directory: its training curves go into the report
    plt.imsave(out / "loss.png", np.eye(8))
    for name, track in tracks.items():
        for s in SOURCES:
            write_wav(out / "test" / name / f"{s}.wav", 0.5 * track.targets[s].audio, RATE)
        sdr = LONG_SDR if name == LONG else SHORT_SDR
        _score_file(out / "scores" / "test" / f"{name}.json", sdr)
        _score_file(out / "baseline" / "test" / f"{name}.json",
                    {s: [None if v is None else v - 5 for v in f] for s, f in sdr.items()})
        assert excerpts.write_track_excerpts(track, out, "test", SOURCES)
    summarize(out, label="M4")
    return tracks


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "eval"
    return out, _evaluation(out)


def test_frames_worked_by_hand():
    assert excerpts.pick_frames([1.0, np.nan, 5.0, 3.0, -2.0]) == [("best", 2), ("typical", 0), ("worst", 4)]
    assert excerpts.pick_frames([np.nan, np.nan]) == []
    assert excerpts.pick_frames([4.0]) == [("best", 0)]  # one frame is best, typical and worst: listed once
    assert excerpts.window_start(0, 25.3) == 0 and excerpts.window_start(24, 25.3) == 15
    assert excerpts.window_start(12, 25.3) == 8  # 12.5 s is the middle of 7.5-17.5 s: whole seconds, 8-18 s
    assert excerpts.window_start(0, 0.6) == 0


def test_excerpts_follow_the_scores(evaluation):
    out, _ = evaluation
    manifest = excerpts.read_manifest(out / "report_files" / excerpts.track_folder(LONG))
    vocals = manifest["sources"]["vocals"]
    # the median of the defined frames is 2.0: frame 6 is the first that close to it
    assert [(e["label"], e["frame"], e["sdr"]) for e in vocals] == [("best", 24, 9.0), ("typical", 6, 2.0),
                                                                  ("worst", 4, -2.0)]
    accompaniment = manifest["sources"]["accompaniment"]  # 0, 0.5, ... 12: median 6.0 at frame 12
    assert [(e["label"], e["frame"]) for e in accompaniment] == [("best", 24), ("typical", 12), ("worst", 0)]
    # 10-s windows inside the 25.3-s track, around the frame; one mixture excerpt serves every source there
    assert [e["start"] for e in vocals] == [15, 2, 0] and [e["start"] for e in accompaniment] == [15, 8, 0]
    assert vocals[0]["mixture"] == accompaniment[0]["mixture"] == "mixture-15s.mp3"
    assert sorted(p.name for p in (out / "report_files" / excerpts.track_folder(LONG)).glob("mixture-*")) == \
        ["mixture-0s.mp3", "mixture-15s.mp3", "mixture-2s.mp3", "mixture-8s.mp3"]
    short = excerpts.read_manifest(out / "report_files" / excerpts.track_folder(SHORT))
    assert short["sources"]["vocals"] == []  # silent: nothing to rank
    assert [(e["label"], e["start"], e["seconds"]) for e in short["sources"]["accompaniment"]] == [("best", 0, 0.6)]
    assert not [p for p in out.rglob("*") if PARTIAL in p.name]


def test_excerpt_budget_of_a_full_musdb_test_set(evaluation):
    """50 tracks x 4 sources x 3 moments x (mixture, reference, estimate), none shared: under 100 MB."""
    out, _ = evaluation
    clips = list((out / "report_files" / excerpts.track_folder(LONG)).glob("*.mp3"))
    assert len(clips) >= 8
    per_clip = max(p.stat().st_size for p in clips)  # constant bitrate: every 10-s excerpt has this size
    assert per_clip * 50 * 4 * 3 * 3 < 100e6, per_clip


def test_report_in_a_browser(evaluation):
    out, tracks = evaluation
    shot = out.parent / "report.png"
    # requests, console, audio, images, numbers; then sort the per-track table by SDR
    seen = browser.check_page(out / "report.html", shot, sort="SDR median")
    assert shot.stat().st_size > 0
    manifests = {n: excerpts.read_manifest(out / "report_files" / excerpts.track_folder(n)) for n in tracks}
    expected = {f"report_files/{quote(excerpts.track_folder(name))}/{e[k]}": e["seconds"]
                for name, manifest in manifests.items() for entries in manifest["sources"].values()
                for e in entries for k in ("mixture", "reference", "estimate")}
    # every excerpt has a player, each as long as its window (the MP3 encoder pads under 0.1 s)
    assert set(seen["durations"]) == set(expected)
    for src, seconds in expected.items():
        assert seconds <= seen["durations"][src] < seconds + 0.1, src
    # paper table (our row and baseline: 2 x (4 x 2 + 2) cells) and all metrics (2 x 2 sources x 4 x 5)
    assert seen["numbers"] == 2 * (4 * 2 + 2) + 2 * 2 * 4 * 5
    assert seen["images"] == 2 + len(tracks)  # sdr.png, loss.png and a frame plot per track
    medians = sorted(np.nanmedian(np.array(f, dtype=float)) for sdr in (LONG_SDR, SHORT_SDR)
                     for f in sdr.values() if any(v is not None for v in f))
    up, down = seen["sorted"]
    assert [float(v) for v in up if v] == medians and up[-1] == ""  # the silent vocal sorts last
    assert [float(v) for v in down if v] == medians[::-1]


def test_rebuilt_when_scores_change(evaluation, tmp_path):
    out, tracks = tmp_path / "eval", evaluation[1]
    shutil.copytree(evaluation[0], out)
    changed = dict(LONG_SDR, vocals=[-9.0] + LONG_SDR["vocals"][1:])  # a resumed evaluation scored it again
    _score_file(out / "scores" / "test" / f"{LONG}.json", changed)
    assert not excerpts.up_to_date(out, "test", LONG)
    assert "No excerpts for this track yet" not in (out / "report.html").read_text()
    summarize(out, label="M4")  # before the excerpts are rewritten: the page says so, never shows old ones
    assert "No excerpts for this track yet" in (out / "report.html").read_text()
    assert excerpts.write_track_excerpts(tracks[LONG], out, "test", SOURCES)
    assert not excerpts.write_track_excerpts(tracks[LONG], out, "test", SOURCES)  # up to date: nothing done
    manifest = excerpts.read_manifest(out / "report_files" / excerpts.track_folder(LONG))
    assert manifest["sources"]["vocals"][2]["frame"] == 0  # the new worst frame
    summarize(out, label="M4")
    page = (out / "report.html").read_text()
    results = json.loads((out / "results.json").read_text())
    median = results["paper"]["vocals"]["SDR"]["median"]
    assert f'data-key="results.json#paper.vocals.SDR.median">{median:.2f}<' in page
    assert "No excerpts for this track yet" not in page
    assert sorted(p.name for p in out.glob("report*")) == ["report.html", "report_files"]


def test_table_html_compares_runs(evaluation, tmp_path, capsys):
    out, _ = evaluation
    other = tmp_path / "other"
    shutil.copytree(out, other)
    page = tmp_path / "pages" / "runs.html"
    page.parent.mkdir()
    assert cli.main(["table", str(out), str(other), "--html", str(page)]) == 0
    assert "| eval | 2 |" in capsys.readouterr().out
    seen = browser.check_page(page, tmp_path / "runs.png")
    assert seen["numbers"] == 2 * 2 * (4 * 2 + 2)  # two runs, each with its baseline, keyed to their files
    html = page.read_text()
    assert 'href="../../' in html and "report.html" in html  # links to each run's own report
    assert cli.main(["table", str(out), "--html", str(page)]) == 1
    assert capsys.readouterr().err.strip().endswith("exists; pass --force to overwrite it")
    assert cli.main(["table", str(out), "--html", str(page), "--force"]) == 0
    assert cli.main(["table", str(out), "--html", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_the_browser_check_catches_a_broken_excerpt(evaluation, tmp_path):
    out = tmp_path / "eval"
    shutil.copytree(evaluation[0], out)
    clip = next((out / "report_files" / excerpts.track_folder(LONG)).glob("vocals-estimate-*.mp3"))
    clip.write_bytes(b"not an mp3 at all" * 100)
    with pytest.raises(AssertionError, match="audio that did not load"):
        browser.check_page(out / "report.html", tmp_path / "broken.png")
