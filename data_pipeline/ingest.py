"""Reading MUSDB18 / MUSDB18-HQ (or any folder laid out the same way) into the WAV cache.

- MUSDB18: ``ROOT/{train,test}/<track>.stem.mp4`` (five streams: mixture, drums, bass, other, vocals), decoded
  with stempeg / ffmpeg;
- MUSDB18-HQ (``wav=True``): ``ROOT/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav`` (a missing
  ``mixture.wav`` is taken as the sum of the stems, so your own multitrack folders work too).

Each track is decoded once, checked (every stem present, same length and rate), resampled with soxr and written
as one WAV per stem plus the mixture; ``track.json`` is written last, so an interrupted run resumes and finished
tracks are skipped. One ``prepare`` at a time per cache (a lock), which first removes the temporary files of an
interrupted one. The validation split is drawn from the tracks that were prepared; its rules are documented in
``waveunet prepare --help``. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import as_completed
from functools import partial
from pathlib import Path

import numpy as np

from data_pipeline.cache import FORMAT, MIXTURE, SPLITS, STEMS
from data_pipeline.workers import worker_pool
from waveunet_tf.audio import resample, write_wav
from waveunet_tf.errors import UsageError, UserError, first_line
from waveunet_tf.files import atomic_write_text, process_lock, remove_partials
from waveunet_tf.progress import Progress

SUBSETS = ("train", "test")
_STEM_IDS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}  # MUSDB18 .stem.mp4 stream order
PAPER_VALID_TRACKS = 25
PAPER_SPLIT_SEED = 1234
LOCK_FILE = ".prepare.lock"
SPLIT_RULES = ("musdb", "paper")


class BadTrack(UserError):
    """A track that cannot be prepared (missing stem, mismatched lengths, unreadable file)."""


def musdb_validation_tracks() -> list[str]:
    """The official validation track names, from the musdb package's setup file."""
    import yaml
    import musdb
    setup = Path(musdb.__file__).parent / "configs" / "mus.yaml"
    return list(yaml.safe_load(setup.read_text())["validation_tracks"])


def find_tracks(root, wav: bool) -> list[dict]:
    """``[{"name", "subset", "source"}]`` for every track under ``root`` (sorted by subset, then name)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"MUSDB root {root} does not exist or is not a folder")
    subsets = [s for s in SUBSETS if (root / s).is_dir()]
    if not subsets:
        raise UserError(f"{root} has neither a train/ nor a test/ folder: expected the MUSDB18 layout "
                        f"ROOT/{{train,test}}/<track>.stem.mp4 (or with --wav, ROOT/{{train,test}}/<track>/*.wav)")
    tracks = []
    for subset in subsets:
        folder = root / subset
        if wav:
            found = [{"name": p.name, "subset": subset, "source": str(p)}
                     for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        else:
            found = [{"name": p.name[: -len(".stem.mp4")], "subset": subset, "source": str(p)}
                     for p in sorted(folder.iterdir()) if p.name.endswith(".stem.mp4")]
        tracks += found
    if not tracks:
        if wav:
            hint = " (for MUSDB18 .stem.mp4 files leave out --wav)" if list(root.glob("*/*.stem.mp4")) else ""
            raise UserError(f"{root} holds no track folders under {' or '.join(s + '/' for s in subsets)}{hint}")
        hint = " (for MUSDB18-HQ WAV folders pass --wav)" if list(root.glob("*/*/*.wav")) else ""
        raise UserError(f"{root} holds no .stem.mp4 files under {' or '.join(s + '/' for s in subsets)}{hint}")
    return tracks


def _quarter(n: int) -> int:
    """Validation tracks held out of ``n`` train tracks: a quarter, at least one when there are two or more."""
    return max(n // 4, 1 if n >= 2 else 0)


def assign_splits(tracks: list[dict], split: str) -> str:
    """Set each track's ``split`` (train/valid/test) by the rule ``split`` (one of :data:`SPLIT_RULES`, checked by
    :func:`check_arguments`); returns the rule used, in words, for the manifest."""
    train = sorted(t["name"] for t in tracks if t["subset"] == "train")
    if split == "musdb":
        official = set(musdb_validation_tracks())
        if official & set(train):
            valid, rule = official & set(train), "musdb: the musdb package's official validation tracks"
        else:
            k = _quarter(len(train))
            valid = set(train[len(train) - k:]) if k else set()
            rule = (f"musdb fallback: the train tracks are not MUSDB18's, so the last {k} of {len(train)} train "
                    f"tracks by sorted name are validation tracks")
    else:
        k = PAPER_VALID_TRACKS if len(train) >= 100 else _quarter(len(train))
        order = np.random.default_rng(PAPER_SPLIT_SEED).permutation(len(train))
        valid = {train[i] for i in order[:k]}
        rule = (f"paper: {k} of {len(train)} train tracks drawn with seed {PAPER_SPLIT_SEED} (the paper's own "
                f"list was never published)")
    for t in tracks:
        t["split"] = "test" if t["subset"] == "test" else ("valid" if t["name"] in valid else "train")
    return rule


def read_track(track: dict, wav: bool) -> tuple[dict, int]:
    """Decode a track: ``({stem or "mixture": float32 [T, C]}, rate)``; :class:`BadTrack` names what is wrong."""
    name = track["name"]
    if wav:
        import soundfile as sf
        folder = Path(track["source"])
        audio, rates = {}, {}
        for stem in (MIXTURE,) + STEMS:
            path = folder / f"{stem}.wav"
            if not path.is_file():
                if stem == MIXTURE:
                    continue
                raise BadTrack(f"track {name!r} lacks {stem}.wav (in {folder})")
            try:
                audio[stem], rates[stem] = sf.read(str(path), dtype="float32", always_2d=True)
            except Exception as e:
                raise BadTrack(f"cannot read {path}: {first_line(e)}") from e
        if len(set(rates.values())) > 1:
            raise BadTrack(f"track {name!r}: stems have different sample rates "
                           f"({', '.join(f'{k} {v} Hz' for k, v in rates.items())})")
        rate = rates[STEMS[0]]
    else:
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
        audio = {stem: np.ascontiguousarray(streams[i]) for stem, i in _STEM_IDS.items()}
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
        audio[MIXTURE] = np.sum([audio[s] for s in STEMS], axis=0)
    return audio, int(rate)


def prepare_track(track: dict, wav: bool, cache: str, sample_rate: int, subtype: str) -> dict:
    """Decode, resample and write one track into the cache; returns its ``track.json`` record."""
    audio, rate = read_track(track, wav)
    folder = Path(cache) / track["subset"] / track["name"]
    length = None
    for stem, x in audio.items():
        y = resample(x, rate, sample_rate)
        if subtype == "PCM_16":  # resampling can overshoot full scale; 16-bit PCM must not wrap
            y = np.clip(y, -1.0, 32767 / 32768)
        write_wav(folder / f"{stem}.wav", y, sample_rate, subtype=subtype)
        length = y.shape[0]
    record = {"name": track["name"], "subset": track["subset"], "length": int(length),
              "channels": int(next(iter(audio.values())).shape[1]), "source_rate": rate,
              "sample_rate": int(sample_rate), "subtype": subtype,
              "dir": f"{track['subset']}/{track['name']}"}
    atomic_write_text(folder / "track.json", json.dumps(record, indent=1) + "\n")
    return record


def _finished(cache: Path, track: dict, sample_rate: int, subtype: str) -> dict | None:
    path = cache / track["subset"] / track["name"] / "track.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("sample_rate") != sample_rate or record.get("subtype") != subtype:
        raise UserError(f"cache {cache} already holds {track['name']!r} at {record.get('sample_rate')} Hz "
                        f"{record.get('subtype')}, not {sample_rate} Hz {subtype}; use another --cache")
    if all((path.parent / f"{s}.wav").is_file() for s in (MIXTURE,) + STEMS):
        return record
    return None


def check_arguments(sample_rate: int, jobs: int, split: str = "musdb") -> None:
    """The cache's sample rate, the number of worker processes and the split rule, checked once for every
    caller, before any work."""
    if split not in SPLIT_RULES:
        raise UsageError(f"unknown --split {split!r}; use {' or '.join(SPLIT_RULES)}")
    if int(sample_rate) < 1000:
        raise UsageError(f"--sample-rate must be at least 1000 Hz, not {sample_rate}")
    if int(jobs) < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")


def _check_cache_folder(cache: Path, sample_rate: int, subtype: str) -> None:
    """Refuse a ``cache`` that is not a folder, or was prepared at another rate or WAV subtype."""
    if cache.exists() and not cache.is_dir():
        raise UserError(f"cache {cache} exists and is not a folder")
    manifest_path = cache / "manifest.json"
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            old = {}  # a damaged manifest is rewritten below; the tracks' own records are checked one by one
        if old.get("sample_rate") not in (None, sample_rate) or old.get("subtype") not in (None, subtype):
            raise UserError(f"cache {cache} was prepared at {old.get('sample_rate')} Hz {old.get('subtype')}, not "
                            f"{sample_rate} Hz {subtype}; use another --cache")


def _prepare_all(todo: list, run, jobs: int, skip_bad: bool, bar) -> tuple[dict, list]:
    """``run(track) -> record`` for every track, ``jobs`` at a time -> ({(subset, name): record}, skipped)."""
    records, skipped = {}, []

    def finish(t, fn):
        try:
            records[(t["subset"], t["name"])] = fn()
        except UserError as e:
            if not skip_bad:
                raise UserError(f"{e} (tracks already prepared are kept; --skip-bad continues past bad "
                                f"tracks)") from e
            skipped.append({"name": t["name"], "subset": t["subset"], "error": str(e)})
        bar.update(1)

    if jobs == 1 or len(todo) <= 1:
        for t in todo:
            finish(t, lambda t=t: run(t))
    else:
        with worker_pool(jobs) as ex:
            futures = {ex.submit(run, t): t for t in todo}
            for f in as_completed(futures):
                finish(futures[f], f.result)
    return records, skipped


def _warn_empty_splits(cache: Path, tracks: list) -> None:
    """``train`` needs train and valid tracks: say at once when the split left none."""
    counts = {s: sum(t["split"] == s for t in tracks) for s in SPLITS}
    for split in ("train", "valid"):
        if not counts[split]:
            print(f"warning: cache {cache} has no {split} tracks "
                  f"({', '.join(f'{n} {s}' for s, n in counts.items())}); `waveunet train` will refuse it",
                  file=sys.stderr)


def prepare_cache(musdb_root, cache, sample_rate: int, wav: bool = False, split: str = "musdb", jobs: int = 1,
                  float_wav: bool = False, skip_bad: bool = False, progress: bool = False) -> dict:
    """Prepare the WAV cache from a MUSDB18(-HQ) root; returns the manifest (also written as manifest.json).

    Idempotent and resumable: finished tracks are skipped; every file is written under a temporary name and
    renamed, and the temporary files of an interrupted run are removed first. A bad track raises
    :class:`UserError` naming it (tracks already written stay); with ``skip_bad`` it is skipped and listed in
    the manifest's ``skipped``. Validation tracks are drawn from the tracks that were prepared.
    """
    cache, sample_rate, jobs = Path(cache), int(sample_rate), int(jobs)
    check_arguments(sample_rate, jobs, split)
    subtype = "FLOAT" if float_wav else "PCM_16"
    _check_cache_folder(cache, sample_rate, subtype)
    tracks = find_tracks(musdb_root, wav)
    with process_lock(cache / LOCK_FILE, f"cache {cache}"):
        remove_partials(cache)  # leftovers of a prepare killed while writing (we hold the lock: none is ours)
        done, todo = {}, []
        for t in tracks:
            record = _finished(cache, t, sample_rate, subtype)
            if record:
                done[(t["subset"], t["name"])] = record
            else:
                todo.append(t)
        with Progress(len(tracks), "prepare", "track", initial=len(tracks) - len(todo), enabled=progress) as bar:
            records, skipped = _prepare_all(
                todo, partial(prepare_track, wav=wav, cache=str(cache), sample_rate=sample_rate, subtype=subtype),
                jobs, skip_bad, bar)
        records.update(done)
        prepared = [t for t in tracks if (t["subset"], t["name"]) in records]
        if not prepared:
            raise UserError(f"no track of {musdb_root} could be prepared ({len(skipped)} bad)")
        rule = assign_splits(prepared, split)
        listed = []
        for t in prepared:
            r = records[(t["subset"], t["name"])]
            listed.append({"name": r["name"], "subset": r["subset"], "split": t["split"], "length": r["length"],
                           "channels": r["channels"], "dir": r["dir"]})
        manifest = {"format": FORMAT, "sample_rate": sample_rate, "subtype": subtype, "stems": list(STEMS),
                    "split": split, "split_rule": rule, "source_root": os.path.abspath(musdb_root),
                    "source_format": "wav" if wav else "stem.mp4", "tracks": listed, "skipped": skipped}
        atomic_write_text(cache / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    _warn_empty_splits(cache, listed)
    return manifest

