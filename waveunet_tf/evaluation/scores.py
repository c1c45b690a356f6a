"""The two aggregates of BSSEval v4 scores that the paper and SiSEC 2018 report, from museval JSON files.

A museval JSON file scores one track: ``{"targets": [{"name": source, "frames": [{"time", "duration",
"metrics": {"SDR", "SIR", "SAR", "ISR"}}, ...]}, ...]}``, one frame per 1-second window. Frames where a metric is
undefined (e.g. a silent reference source) hold NaN (or null). This is the format of ``museval.eval_mus_track``
and of the SiSEC 2018 submissions.

- ``paper``: pool the frames of every track, ignore NaN, and report median, MAD (median absolute deviation from
  the median), mean and standard deviation per source and metric, as the official Wave-U-Net code computed the
  paper's table (``np.nanmedian``, ``np.nanmean``, ``np.nanstd``).
- ``sisec``: per track the median over its frames (ignoring NaN), then the median over tracks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from waveunet_tf.errors import UserError

METRICS = ("SDR", "SIR", "SAR", "ISR")
# The order sources appear in tables: the paper's (voice task first, then the four-source task).
SOURCE_ORDER = ("vocals", "accompaniment", "bass", "drums", "other")


def _frames(target: dict, path: Path) -> dict:
    """{metric: float array over frames} of one museval target entry; null or missing values become NaN."""
    try:
        frames = target["frames"]
        out = {}
        for m in METRICS:
            out[m] = np.array([math.nan if f["metrics"].get(m) is None else float(f["metrics"][m])
                               for f in frames], dtype=np.float64)
        return out
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{path} is not a museval score file: each target needs frames with metrics "
                        f"{', '.join(METRICS)}") from e


def read_track_scores(path) -> dict | None:
    """One museval JSON file -> {source: {metric: frames array}}; None when the JSON is not a museval score file
    (e.g. ``results.json`` beside the scores)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("targets"), list):
        return None
    scores = {}
    for target in doc["targets"]:
        if not isinstance(target, dict) or "name" not in target:
            raise UserError(f"{path} is not a museval score file: a target has no name")
        scores[str(target["name"])] = _frames(target, path)
    return scores


def load_scores(json_dir) -> dict:
    """Every museval JSON file under ``json_dir`` (recursively) -> {track: {source: {metric: frames}}}.

    The track is the file's name without ``.json`` (museval's convention). A track scored twice (two methods, or
    a model and its baseline, in one folder) is refused, since pooling them would mix two systems.
    """
    json_dir = Path(json_dir)
    if not json_dir.is_dir():
        raise UserError(f"{json_dir} is not a folder of museval JSON files")
    tracks, where = {}, {}
    for path in sorted(json_dir.rglob("*.json")):
        scores = read_track_scores(path)
        if scores is None:
            continue
        name = path.stem
        if name in tracks:
            raise UserError(f"track {name!r} is scored twice ({where[name]} and {path}): point at the folder of "
                            "one method's scores")
        tracks[name], where[name] = scores, path
    if not tracks:
        raise UserError(f"{json_dir} holds no museval JSON score files (*.json with a 'targets' list)")
    return tracks


def ordered_sources(names) -> list[str]:
    """Sources in the paper's order; unknown names after, alphabetically."""
    names = set(names)
    return [s for s in SOURCE_ORDER if s in names] + sorted(names - set(SOURCE_ORDER))


def _nan_to_none(x: float):
    return None if x is None or not np.isfinite(x) else float(x)


def paper_stats(frames: np.ndarray) -> dict:
    """Median, MAD, mean, SD of pooled frames, NaN ignored (None where no frame is defined)."""
    x = np.asarray(frames, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"median": None, "mad": None, "mean": None, "sd": None}
    med = float(np.median(x))
    return {"median": med, "mad": float(np.median(np.abs(x - med))), "mean": float(np.mean(x)),
            "sd": float(np.std(x))}


def sisec_stat(per_track_frames: list) -> float | None:
    """Median over tracks of each track's median over frames (NaN ignored at both levels)."""
    medians = []
    for frames in per_track_frames:
        x = np.asarray(frames, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size:
            medians.append(float(np.median(x)))
    return float(np.median(medians)) if medians else None


def aggregate(tracks: dict, only=None) -> dict:
    """{track: {source: {metric: frames}}} -> ``{"paper": {source: {metric: {median, mad, mean, sd}}},
    "sisec": {source: {metric: value}}, "tracks": N}`` (the shape of ``results.json``).

    ``only``: an optional collection of track names to restrict to.
    """
    if only is not None:
        only = set(only)
        tracks = {t: s for t, s in tracks.items() if t in only}
    sources = ordered_sources({s for scores in tracks.values() for s in scores})
    paper, sisec = {}, {}
    for source in sources:
        paper[source], sisec[source] = {}, {}
        for m in METRICS:
            per_track = [scores[source][m] for scores in tracks.values() if source in scores]
            pooled = np.concatenate(per_track) if per_track else np.array([])
            paper[source][m] = paper_stats(pooled)
            sisec[source][m] = _nan_to_none(sisec_stat(per_track))
    return {"paper": paper, "sisec": sisec, "tracks": len(tracks)}


def stats_of_folder(json_dir) -> dict:
    """Both aggregates of every museval JSON file under ``json_dir``."""
    return aggregate(load_scores(json_dir))


def pooled_frames(tracks: dict, source: str, metric: str = "SDR") -> np.ndarray:
    """All defined frames of one source and metric, pooled over tracks (for box plots)."""
    parts = [scores[source][metric] for scores in tracks.values() if source in scores]
    x = np.concatenate(parts) if parts else np.array([])
    return x[np.isfinite(x)]


def format_db(x) -> str:
    """A score in dB as the tables print it (two decimals; ``-`` where it is undefined)."""
    return f"{x:.2f}" if isinstance(x, (int, float)) else "-"


def format_metrics(stats: dict, markdown: bool = False) -> str:
    """Both aggregates of ``stats`` (the shape of ``results.json``) as a table, one line per source and metric:
    median, MAD, mean, SD (paper) and SiSEC's median; aligned text, or a markdown table."""
    head = ["source", "metric", "median", "MAD", "mean", "SD", "sisec"]
    rows = [[source, m] + [format_db(per_metric[m][k]) for k in ("median", "mad", "mean", "sd")]
            + [format_db(stats["sisec"][source][m])]
            for source, per_metric in stats["paper"].items() for m in METRICS]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [14, 6] + [7] * (len(head) - 2)

    def line(cells):
        return " ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [f"{stats['tracks']} tracks; paper = pooled frames (NaN ignored), sisec = median over tracks of "
             "per-track medians", line(head)]
    lines.append("-" * len(lines[-1]))
    return "\n".join(lines + [line(r) for r in rows])
