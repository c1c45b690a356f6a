"""Finding and decoding the tracks a cache is prepared from, in the three layouts it reads.

- MUSDB18: ``ROOT/{train,test}/<track>.stem.mp4`` (five streams: mixture, drums, bass, other, vocals), decoded
  with stempeg / ffmpeg; ``"dataset": "musdb"``;
- folders of WAVs (``wav=True``): ``ROOT/{train,test}/<track>/<stem>.wav`` with stems among bass, drums, other,
  vocals and accompaniment (MUSDB18-HQ has the first four: ``"dataset": "musdb"``; any other set is your own
  songs: ``"dataset": "own"``); a missing ``mixture.wav`` is the sum of the stems. Every track of a root must
  hold the same stems, so a missing file is named rather than taken for a smaller song;
- CCMixter (:func:`find_ccmixter`): ``DIR/<song>/{mix,source-01,source-02}.wav`` (mixture, accompaniment,
  vocals), the 50 songs listed in ``ccmixter.json``; training tracks only: ``"dataset": "ccmixter"``.

A track is ``{"name", "subset", "source", "format", "dataset", "stems", "dir"}``; ``dir`` is its folder in the
cache. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from data_pipeline.cache import ACCOMPANIMENT, MIXTURE, STEMS
from waveunet_tf.errors import UserError, first_line

SUBSETS = ("train", "test")
WAV_STEMS = STEMS + (ACCOMPANIMENT,)  # the stem files a WAV track folder may hold
_STEM_IDS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}  # MUSDB18 .stem.mp4 stream order
CCMIXTER = json.loads((Path(__file__).parent / "ccmixter.json").read_text())
CCMIXTER_DIR = "ccmixter"  # the cache folder of its songs


class BadTrack(UserError):
    """A track that cannot be prepared (missing stem, mismatched lengths, unreadable file)."""


def _track(name, subset, source, fmt, dataset, stems, folder=None) -> dict:
    return {"name": name, "subset": subset, "source": os.path.abspath(source), "format": fmt, "dataset": dataset,
            "stems": list(stems), "dir": f"{folder or subset}/{name}"}


def _wav_stems(root: Path, folders: list[Path]) -> list[str]:
    """The stems of a root of WAV folders: every stem file any of its tracks holds, in :data:`WAV_STEMS` order."""
    found = {s for f in folders for s in WAV_STEMS if (f / f"{s}.wav").is_file()}
    stems = [s for s in WAV_STEMS if s in found]
    if not stems:
        raise UserError(f"the track folders of {root} hold none of {', '.join(s + '.wav' for s in WAV_STEMS)}: "
                        f"each song needs its stems (mixture.wav alone cannot train a model)")
    parts = [s for s in stems if s in STEMS and s != "vocals"]
    if ACCOMPANIMENT in stems and parts:
        raise UserError(f"the tracks of {root} hold both accompaniment.wav and {parts[0]}.wav: give the songs "
                        f"either their accompaniment or its parts (bass, drums, other), not both")
    return stems


def find_tracks(root, wav: bool) -> list[dict]:
    """Every track under ``root`` (sorted by subset, then name), MUSDB18 or, with ``wav``, WAV folders."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"MUSDB root {root} does not exist or is not a folder")
    subsets = [s for s in SUBSETS if (root / s).is_dir()]
    if not subsets:
        raise UserError(f"{root} has neither a train/ nor a test/ folder: expected the MUSDB18 layout "
                        f"ROOT/{{train,test}}/<track>.stem.mp4 (or with --wav, ROOT/{{train,test}}/<track>/*.wav)")
    if wav:
        folders = [(s, p) for s in subsets for p in sorted((root / s).iterdir())
                   if p.is_dir() and not p.name.startswith(".")]
        stems = _wav_stems(root, [p for _, p in folders]) if folders else []
        dataset = "musdb" if stems == list(STEMS) else "own"
        tracks = [_track(p.name, s, p, "wav", dataset, stems) for s, p in folders]
    else:
        tracks = [_track(p.name[: -len(".stem.mp4")], s, p, "stem.mp4", "musdb", STEMS)
                  for s in subsets for p in sorted((root / s).iterdir()) if p.name.endswith(".stem.mp4")]
    if not tracks:
        if wav:
            hint = " (for MUSDB18 .stem.mp4 files leave out --wav)" if list(root.glob("*/*.stem.mp4")) else ""
            raise UserError(f"{root} holds no track folders under {' or '.join(s + '/' for s in subsets)}{hint}")
        hint = " (for MUSDB18-HQ WAV folders pass --wav)" if list(root.glob("*/*/*.wav")) else ""
        raise UserError(f"{root} holds no .stem.mp4 files under {' or '.join(s + '/' for s in subsets)}{hint}")
    return tracks


def find_ccmixter(root) -> tuple[list[dict], list[str]]:
    """The 50 songs of CCMixter under ``root`` as training tracks, and the names of folders there that are not
    among them. A song whose folder is missing is still listed: reading it fails with one line naming it."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"CCMixter root {root} does not exist or is not a folder")
    songs = CCMIXTER["songs"]
    extra = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and p.name not in set(songs))
    tracks = [_track(name, "train", root / name, "ccmixter", "ccmixter", (ACCOMPANIMENT, "vocals"), CCMIXTER_DIR)
              for name in songs]
    return tracks, extra


def _files(track: dict) -> dict[str, Path]:
    """``{stem or "mixture": WAV path}`` of a WAV or CCMixter track (the mixture may not exist)."""
    folder = Path(track["source"])
    if track["format"] == "ccmixter":
        if not folder.is_dir():
            raise BadTrack(f"CCMixter song {track['name']!r} is missing: no folder {folder}")
        return {stem: folder / CCMIXTER["files"][stem] for stem in (MIXTURE,) + tuple(track["stems"])}
    return {stem: folder / f"{stem}.wav" for stem in (MIXTURE,) + tuple(track["stems"])}


def _read_wavs(track: dict) -> tuple[dict, int]:
    import soundfile as sf
    audio, rates = {}, {}
    for stem, path in _files(track).items():
        if not path.is_file():
            if stem == MIXTURE and track["format"] == "wav":
                continue
            raise BadTrack(f"track {track['name']!r} lacks {path.name} (in {path.parent})")
        try:
            audio[stem], rates[stem] = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:
            raise BadTrack(f"cannot read {path}: {first_line(e)}") from e
    if len(set(rates.values())) > 1:
        raise BadTrack(f"track {track['name']!r}: stems have different sample rates "
                       f"({', '.join(f'{k} {v} Hz' for k, v in rates.items())})")
    return audio, rates[track["stems"][0]]


def _read_stem_mp4(track: dict) -> tuple[dict, int]:
    import stempeg
    path = track["source"]
    try:
        streams, rate = stempeg.read_stems(path, dtype=np.float32, always_3d=True)
    except Exception as e:
        why = first_line(e).replace(" (see ffprobe output below)", "")
        raise BadTrack(f"cannot decode {path}: corrupt or not a MUSDB18 .stem.mp4 ({why})") from e
    if streams.ndim != 3 or streams.shape[0] < len(_STEM_IDS):
        raise BadTrack(f"{path} holds {streams.shape[0] if streams.ndim == 3 else 1} audio streams, not the "
                       f"5 of MUSDB18 (mixture, drums, bass, other, vocals)")
    return {stem: np.ascontiguousarray(streams[i]) for stem, i in _STEM_IDS.items()}, rate


def read_track(track: dict) -> tuple[dict, int]:
    """Decode a track: ``({stem or "mixture": float32 [T, C]}, rate)``; :class:`BadTrack` names what is wrong."""
    name = track["name"]
    audio, rate = _read_stem_mp4(track) if track["format"] == "stem.mp4" else _read_wavs(track)
    lengths = {k: v.shape[0] for k, v in audio.items()}
    if len(set(lengths.values())) > 1:
        raise BadTrack(f"track {name!r}: stems have different lengths "
                       f"({', '.join(f'{k} {v}' for k, v in lengths.items())} samples)")
    channels = {k: v.shape[1] for k, v in audio.items()}
    if len(set(channels.values())) > 1 or max(channels.values()) > 2:
        raise BadTrack(f"track {name!r}: stems must all be mono or all stereo, not "
                       f"{', '.join(f'{k} {v}' for k, v in channels.items())} channels")
    if next(iter(lengths.values())) == 0:
        raise BadTrack(f"track {name!r} holds no audio samples")
    for k, v in audio.items():
        if not np.all(np.isfinite(v)):
            raise BadTrack(f"track {name!r}: {k} holds NaN or infinite samples")
    if MIXTURE not in audio:
        audio[MIXTURE] = np.sum([audio[s] for s in track["stems"]], axis=0)
    return audio, int(rate)
