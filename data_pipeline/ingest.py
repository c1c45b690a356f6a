"""Preparing the WAV cache from a MUSDB18 / MUSDB18-HQ root or your own songs (see :mod:`data_pipeline.tracks` for
the layouts), plus, for the singing-voice models, the 50 songs of CCMixter as training tracks.

Each track is decoded once, checked (every stem present, same length and rate), resampled with soxr and written
as one WAV per stem plus the mixture; ``track.json`` is written last, so an interrupted run resumes and finished
tracks are skipped. One ``prepare`` at a time per cache (a lock), which first removes the temporary files of an
interrupted one. A cache belongs to one root: another root is refused (``force`` rebuilds the cache from it).
The validation split is drawn from the tracks that were prepared; its rules are documented in
``waveunet prepare --help``. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from concurrent.futures import as_completed
from functools import partial
from pathlib import Path

import numpy as np

from data_pipeline.cache import FORMAT, MIXTURE, SPLITS
from data_pipeline.tracks import CCMIXTER_DIR, SUBSETS, WAV_STEMS, find_ccmixter, find_tracks, read_track
from data_pipeline.workers import worker_pool
from waveunet_tf.audio import resample, write_wav
from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.files import atomic_write_text, process_lock, remove_partials
from waveunet_tf.progress import Progress

PAPER_VALID_TRACKS = 25
PAPER_SPLIT_SEED = 1234
# The official code (f90/Wave-U-Net, Datasets.py) draws its validation songs with NumPy's global generator,
# which Sacred seeds with the experiment's seed (Training.py: 1337) when the run starts.
OFFICIAL_SPLIT_SEED = 1337
MUSDB_TRAIN_TRACKS = 100
LOCK_FILE = ".prepare.lock"
SPLIT_RULES = ("musdb", "paper", "official")


def musdb_validation_tracks() -> list[str]:
    """The official validation track names, from the musdb package's setup file."""
    import yaml
    import musdb
    setup = Path(musdb.__file__).parent / "configs" / "mus.yaml"
    return list(yaml.safe_load(setup.read_text())["validation_tracks"])


def official_validation_tracks(train: list[str]) -> set[str]:
    """The official code's 25 validation songs among MUSDB18's 100 train tracks ``train`` (names).

    Its ``np.random.choice(len(dsd_train), size=25, replace=False)`` runs right after Sacred's
    ``set_global_seed(1337)`` (sacred 0.7.3, ``Run.__call__``) with nothing drawing from NumPy in between, over
    musdb 0.2.3's track order: the ``.stem.mp4`` file names of ``train/``, sorted. NumPy's legacy generator
    keeps its stream across versions, so the same call here gives the same indices.
    """
    if len(train) != MUSDB_TRAIN_TRACKS:
        raise UserError(f"--split official reconstructs the official draw over MUSDB18's {MUSDB_TRAIN_TRACKS} train "
                        f"tracks, but the root has {len(train)}; use --split paper or musdb")
    order = sorted(train, key=lambda name: name + ".stem.mp4")
    picked = np.random.RandomState(OFFICIAL_SPLIT_SEED).choice(len(order), size=PAPER_VALID_TRACKS, replace=False)
    return {order[i] for i in picked}


def _quarter(n: int) -> int:
    """Validation tracks held out of ``n`` train tracks: a quarter, at least one when there are two or more."""
    return max(n // 4, 1 if n >= 2 else 0)


def assign_splits(tracks: list[dict], split: str) -> str:
    """Set each track's ``split`` (train/valid/test) by the rule ``split`` (one of :data:`SPLIT_RULES`, checked by
    :func:`check_arguments`); returns the rule used, in words, for the manifest."""
    train = sorted(t["name"] for t in tracks if t["subset"] == "train" and t.get("dataset") != "ccmixter")
    if split == "official":
        valid = official_validation_tracks(train)
        rule = (f"official: the {PAPER_VALID_TRACKS} songs the official code draws with NumPy seed "
                f"{OFFICIAL_SPLIT_SEED} over musdb's sorted train tracks")
    elif split == "musdb":
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
        primary = t.get("dataset") != "ccmixter"
        t["split"] = "test" if t["subset"] == "test" else ("valid" if primary and t["name"] in valid else "train")
    return rule


def prepare_track(track: dict, cache: str, sample_rate: int, subtype: str) -> dict:
    """Decode, resample and write one track into the cache; returns its ``track.json`` record."""
    audio, rate = read_track(track)
    folder = Path(cache) / track["dir"]
    length = None
    for stem, x in audio.items():
        y = resample(x, rate, sample_rate)
        if subtype == "PCM_16":  # resampling can overshoot full scale; 16-bit PCM must not wrap
            y = np.clip(y, -1.0, 32767 / 32768)
        write_wav(folder / f"{stem}.wav", y, sample_rate, subtype=subtype)
        length = y.shape[0]
    record = {"name": track["name"], "subset": track["subset"], "length": int(length),
              "channels": int(next(iter(audio.values())).shape[1]), "source_rate": rate,
              "sample_rate": int(sample_rate), "subtype": subtype, "dir": track["dir"],
              "dataset": track["dataset"], "stems": track["stems"], "source": track["source"]}
    atomic_write_text(folder / "track.json", json.dumps(record, indent=1) + "\n")
    return record


def _finished(cache: Path, track: dict, sample_rate: int, subtype: str) -> dict | None:
    path = cache / track["dir"] / "track.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("sample_rate") != sample_rate or record.get("subtype") != subtype:
        raise UserError(f"cache {cache} already holds {track['name']!r} at {record.get('sample_rate')} Hz "
                        f"{record.get('subtype')}, not {sample_rate} Hz {subtype}; use another --cache")
    if record.get("source", track["source"]) != track["source"]:  # an interrupted prepare of another root
        raise UserError(_other_root(cache, os.path.dirname(record["source"]), track["source"]))
    if all((path.parent / f"{s}.wav").is_file() for s in (MIXTURE,) + tuple(track["stems"])):
        return record
    return None


def _other_root(cache, old, new) -> str:
    return (f"cache {cache} was prepared from {old}, not {new}: a cache holds one root's tracks; use another "
            f"--cache, or --force to delete this cache's tracks and prepare it from the new root")


def check_arguments(sample_rate: int, jobs: int, split: str = "musdb") -> None:
    """The cache's sample rate, the number of worker processes and the split rule, checked once for every
    caller, before any work."""
    if split not in SPLIT_RULES:
        raise UsageError(f"unknown --split {split!r}; use {' or '.join(SPLIT_RULES)}")
    if int(sample_rate) < 1000:
        raise UsageError(f"--sample-rate must be at least 1000 Hz, not {sample_rate}")
    if int(jobs) < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")


def _old_manifest(cache: Path) -> dict:
    try:
        old = json.loads((cache / "manifest.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        old = {}  # none, or damaged: it is rewritten; the tracks' own records are checked one by one
    return old if isinstance(old, dict) else {}


def _check_cache_folder(cache: Path, sample_rate: int, subtype: str, roots: dict, force: bool) -> None:
    """Refuse a ``cache`` that is not a folder, was prepared at another rate or WAV subtype, or (without
    ``force``) from other ``roots`` (``{"source_root": path, "ccmixter_root": path or None}``)."""
    if cache.exists() and not cache.is_dir():
        raise UserError(f"cache {cache} exists and is not a folder")
    old = _old_manifest(cache)
    if old.get("sample_rate") not in (None, sample_rate) or old.get("subtype") not in (None, subtype):
        raise UserError(f"cache {cache} was prepared at {old.get('sample_rate')} Hz {old.get('subtype')}, not "
                        f"{sample_rate} Hz {subtype}; use another --cache")
    for key, root in roots.items():
        if not force and root and old.get(key) not in (None, root):
            raise UserError(_other_root(cache, old[key], root))


def _rebuild(cache: Path) -> None:
    """``--force``: delete what prepare wrote in ``cache`` (its manifest and track folders), nothing else."""
    for name in SUBSETS + (CCMIXTER_DIR,):
        if (cache / name).is_dir():
            shutil.rmtree(cache / name)
    (cache / "manifest.json").unlink(missing_ok=True)


def _prepare_all(todo: list, run, jobs: int, skip_bad: bool, bar) -> tuple[dict, list]:
    """``run(track) -> record`` for every track, ``jobs`` at a time -> ({dir: record}, skipped)."""
    records, skipped = {}, []

    def finish(t, fn):
        try:
            records[t["dir"]] = fn()
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


def _find_all(musdb_root, wav: bool, ccmixter_root, skip_bad: bool) -> tuple[list, list]:
    """The tracks of the root and of CCMixter, and the skipped entries for CCMixter folders not of its 50 songs."""
    tracks, skipped = find_tracks(musdb_root, wav), []
    if ccmixter_root is not None:
        songs, extra = find_ccmixter(ccmixter_root)
        if extra and not skip_bad:
            raise UserError(f"{ccmixter_root} holds {len(extra)} folder(s) that are not among CCMixter's 50 songs, "
                            f"e.g. {extra[0]!r} (the list: data_pipeline/ccmixter.json); --skip-bad leaves them out")
        tracks += songs
        skipped += [{"name": name, "subset": CCMIXTER_DIR, "error": "not one of CCMixter's 50 songs"}
                    for name in extra]
    return tracks, skipped


def _kept_ccmixter(cache: Path, ccmixter_root) -> list[dict]:
    """Without ``--ccmixter-root``, the CCMixter tracks the cache already lists stay in it."""
    if ccmixter_root is not None:
        return []
    return [t for t in _old_manifest(cache).get("tracks", []) if t.get("dataset") == "ccmixter"
            and (cache / t["dir"] / "track.json").is_file()]


def _manifest(tracks, records, split, rule, roots, wav, sample_rate, subtype, skipped) -> dict:
    listed = []
    for t in tracks:
        r = records[t["dir"]]
        listed.append({"name": r["name"], "subset": r["subset"], "split": t["split"], "length": r["length"],
                       "channels": r["channels"], "dir": r["dir"], "dataset": t["dataset"], "stems": t["stems"]})
    stems = [s for s in WAV_STEMS if any(s in t["stems"] for t in listed)]
    return {"format": FORMAT, "sample_rate": sample_rate, "subtype": subtype, "stems": stems, "split": split,
            "split_rule": rule, **roots, "source_format": "wav" if wav else "stem.mp4", "tracks": listed,
            "skipped": skipped}


def prepare_cache(musdb_root, cache, sample_rate: int, wav: bool = False, split: str = "musdb", jobs: int = 1,
                  float_wav: bool = False, skip_bad: bool = False, progress: bool = False, ccmixter_root=None,
                  force: bool = False) -> dict:
    """Prepare the WAV cache from a MUSDB18(-HQ) root (or your own songs) and, with ``ccmixter_root``, CCMixter's
    50 songs as training tracks; returns the manifest (also written as manifest.json).

    Idempotent and resumable: finished tracks are skipped; every file is written under a temporary name and
    renamed, and the temporary files of an interrupted run are removed first. A bad track raises
    :class:`UserError` naming it (tracks already written stay); with ``skip_bad`` it is skipped and listed in
    the manifest's ``skipped``. Validation tracks are drawn from the tracks that were prepared. A cache prepared
    from another root is refused; ``force`` deletes its tracks first and prepares it anew.
    """
    cache, sample_rate, jobs = Path(cache), int(sample_rate), int(jobs)
    check_arguments(sample_rate, jobs, split)
    subtype = "FLOAT" if float_wav else "PCM_16"
    roots = {"source_root": os.path.abspath(musdb_root),
             "ccmixter_root": os.path.abspath(ccmixter_root) if ccmixter_root is not None else None}
    _check_cache_folder(cache, sample_rate, subtype, roots, force)
    tracks, skipped = _find_all(musdb_root, wav, ccmixter_root, skip_bad)
    with process_lock(cache / LOCK_FILE, f"cache {cache}"):
        if force:
            _rebuild(cache)
        remove_partials(cache)  # leftovers of a prepare killed while writing (we hold the lock: none is ours)
        kept = _kept_ccmixter(cache, ccmixter_root)
        roots["ccmixter_root"] = roots["ccmixter_root"] or (_old_manifest(cache).get("ccmixter_root") if kept else None)
        done, todo = {t["dir"]: t for t in kept}, []
        for t in tracks:
            record = _finished(cache, t, sample_rate, subtype)
            if record:
                done[t["dir"]] = record
            else:
                todo.append(t)
        with Progress(len(tracks), "prepare", "track", initial=len(tracks) - len(todo), enabled=progress) as bar:
            records, bad = _prepare_all(todo, partial(prepare_track, cache=str(cache), sample_rate=sample_rate,
                                                      subtype=subtype), jobs, skip_bad, bar)
        records.update(done)
        prepared = [t for t in tracks if t["dir"] in records] + kept
        if not prepared:
            raise UserError(f"no track of {musdb_root} could be prepared ({len(bad)} bad)")
        rule = assign_splits(prepared, split)
        manifest = _manifest(prepared, records, split, rule, roots, wav, sample_rate, subtype, bad + skipped)
        atomic_write_text(cache / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    _warn_empty_splits(cache, manifest["tracks"])
    return manifest
