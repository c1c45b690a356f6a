"""Listening excerpts for the evaluation report: per track and source, about 10 s of the mixture, the reference and
the estimate around the 1-s frames where the model did best, typically (the frame nearest the median SDR) and
worst, as small MP3 files every browser plays.

Layout, beside ``report.html``: ``report_files/<track folder>/`` holds ``mixture-<start>s.mp3``,
``<source>-reference-<start>s.mp3``, ``<source>-estimate-<start>s.mp3`` and ``excerpts.json``, the manifest the
report reads: ``{"scores": sha256 of the track's score file, "length": s, "sources": {source: [{"label", "frame",
"sdr", "start", "seconds", "mixture", "reference", "estimate"}]}}``. A manifest whose ``scores`` no longer match the
score file (a resumed or repeated evaluation) is rewritten with its excerpts.

Size: mono, 22.05 kHz, MP3 at 32 kbit/s (libsndfile's LAME; 4 kB per second), so a 50-track, 4-source MUSDB18
test set takes at most 50 x 4 x 3 x 3 excerpts x 10 s x 4 kB = 72 MB, less where windows coincide (one mixture
excerpt per window serves every source; a short track has one window). Levels are kept (no normalisation), so
mixture, reference and estimate compare by ear.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from waveunet_tf.audio import load_audio, resample
from waveunet_tf.files import atomic_path, atomic_write_text
from waveunet_tf.evaluation.record import SCORES_DIR
from waveunet_tf.evaluation.scores import read_track_scores

FILES_DIR = "report_files"  # beside report.html, as a browser's "save page" would name it
MANIFEST = "excerpts.json"
SECONDS = 10.0  # excerpt length (the whole track when shorter)
RATE = 22050  # an MPEG-2 rate: the bandwidth of a 32 kbit/s stream, and half the size of 44.1 kHz
# libsndfile maps compression level linearly onto LAME's bitrate: 0.85 gives 32 kbit/s at 22.05 kHz mono
# (measured: 40,229 bytes for 10 s). A test checks the budget on synthetic audio.
COMPRESSION = 0.85
FADE = 0.01  # seconds of fade in and out: no click where an excerpt cuts into a note
LABELS = ("best", "typical", "worst")


def track_folder(track: str) -> str:
    """A file-system and URL safe folder name for ``track`` (any unicode name): its ASCII letters and digits, and
    a hash of the whole name so two names never share a folder."""
    ascii_part = re.sub(r"[^A-Za-z0-9]+", "-", track).strip("-")[:40]
    digest = hashlib.sha256(track.encode("utf-8")).hexdigest()[:8]
    return f"{ascii_part}-{digest}" if ascii_part else digest


def pick_frames(sdr: np.ndarray) -> list[tuple[str, int]]:
    """``[(label, frame index)]`` of the best, typical (nearest the median) and worst frame of a frame-wise SDR
    array [frames] (NaN frames ignored); a frame chosen twice is listed once, under its first label. Empty when no
    frame is defined (a silent reference)."""
    sdr = np.asarray(sdr, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(sdr))
    if finite.size == 0:
        return []
    values = sdr[finite]
    picks = [finite[np.argmax(values)], finite[np.argmin(np.abs(values - np.median(values)))],
             finite[np.argmin(values)]]
    out, seen = [], set()
    for label, frame in zip(LABELS, picks):
        if int(frame) not in seen:
            seen.add(int(frame))
            out.append((label, int(frame)))
    return out


def window_start(frame: int, length: float, seconds: float = SECONDS) -> int:
    """Whole-second start of the excerpt centred on 1-s ``frame`` of a ``length``-s track, moved inside it."""
    span = min(seconds, length)
    start = round(frame + 0.5 - span / 2)
    return int(max(0, min(start, int(np.floor(length - span)))))


def write_mp3(path: Path, audio: np.ndarray, rate: int) -> None:
    """``audio`` [time, channels] at ``rate`` -> a mono 22.05 kHz 32 kbit/s MP3 at ``path``, atomically."""
    import soundfile as sf
    mono = np.asarray(audio, dtype=np.float32).mean(axis=1, keepdims=True)
    y = np.clip(resample(mono, rate, RATE), -1.0, 1.0)
    n = min(len(y) // 2, int(FADE * RATE))
    if n:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
        y[:n] *= ramp
        y[len(y) - n:] *= ramp[::-1]
    with atomic_path(path, suffix=".mp3") as tmp:
        sf.write(str(tmp), y, RATE, format="MP3", subtype="MPEG_LAYER_III", compression_level=COMPRESSION,
                 bitrate_mode="CONSTANT")


def _scores_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(folder: Path) -> dict | None:
    """The excerpts manifest in ``folder``; None if missing or unreadable (then it is written again)."""
    try:
        doc = json.loads((folder / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("sources"), dict) else None


def up_to_date(out: Path, subset: str, track: str) -> bool:
    """Whether the excerpts of ``track`` describe its current score file."""
    score_file = out / SCORES_DIR / subset / f"{track}.json"
    manifest = read_manifest(out / FILES_DIR / track_folder(track))
    return bool(manifest) and score_file.is_file() and manifest.get("scores") == _scores_digest(score_file)


def write_track_excerpts(track, out: Path, subset: str, sources) -> bool:
    """Write the excerpts of one musdb ``track`` (mixture ``track.audio`` [T, C], references
    ``track.targets[source].audio``, estimates from ``out/<subset>/<track>/<source>.wav``) around the frames its
    score file ranks best, typical and worst per source. Skips (returns False) when they are up to date."""
    if up_to_date(out, subset, track.name):
        return False
    score_file = out / SCORES_DIR / subset / f"{track.name}.json"
    digest, scores = _scores_digest(score_file), read_track_scores(score_file) or {}
    folder = out / FILES_DIR / track_folder(track.name)
    mixture = np.asarray(track.audio, dtype=np.float32)
    rate, length = int(track.rate), len(mixture) / track.rate
    span = min(SECONDS, length)
    written, doc = set(), {"scores": digest, "length": length, "sources": {}}

    def excerpt(name: str, audio: np.ndarray, start: int) -> str:
        if name not in written:
            a = int(start * rate)
            write_mp3(folder / name, audio[a:a + int(round(span * rate))], rate)
            written.add(name)
        return name

    for source in sources:
        sdr = scores.get(source, {}).get("SDR", np.array([]))
        estimate_file = out / subset / track.name / f"{source}.wav"
        if not estimate_file.is_file():  # deleted by the user since scoring: nothing to listen to
            doc["sources"][source] = []
            continue
        estimate = load_audio(estimate_file)[0]
        reference = np.asarray(track.targets[source].audio, dtype=np.float32)
        entries = []
        for label, frame in pick_frames(sdr):
            start = window_start(frame, length)
            entries.append({"label": label, "frame": frame, "sdr": float(sdr[frame]), "start": start,
                            "seconds": span,
                            "mixture": excerpt(f"mixture-{start}s.mp3", mixture, start),
                            "reference": excerpt(f"{source}-reference-{start}s.mp3", reference, start),
                            "estimate": excerpt(f"{source}-estimate-{start}s.mp3", estimate, start)})
        doc["sources"][source] = entries
    atomic_write_text(folder / MANIFEST, json.dumps(doc, indent=1) + "\n")
    for old in folder.glob("*.mp3"):  # excerpts of earlier scores that no window uses now
        if old.name not in written:
            old.unlink()
    return True
