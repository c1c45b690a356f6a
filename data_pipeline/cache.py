"""The prepared WAV cache: its layout, its manifest, and the checks a config makes against it.

Layout (written by :func:`data_pipeline.prepare_cache`)::

    CACHE/manifest.json                      the index below
    CACHE/<subset>/<track>/<stem>.wav        mixture, bass, drums, other, vocals at the cache's sample rate
    CACHE/<subset>/<track>/track.json        written last: the track is complete (a resumed prepare skips it)

``manifest.json``::

    {"format": "waveunet-cache/1", "sample_rate": 22050, "subtype": "PCM_16", "stems": [...],
     "split": "musdb", "split_rule": "<how validation tracks were chosen>", "source_root": "...",
     "tracks": [{"name", "subset": "train|test", "split": "train|valid|test", "length": samples,
                 "channels": 1|2, "dir": "<subset>/<track>"}, ...]}

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from waveunet_tf.errors import UserError

FORMAT = "waveunet-cache/1"
STEMS = ("bass", "drums", "other", "vocals")  # MUSDB18's sources; the mixture is stored beside them
MIXTURE = "mixture"
SPLITS = ("train", "valid", "test")
SUBTYPES = {"PCM_16": "int16", "FLOAT": "float32"}  # WAV subtype -> sample dtype tensorflow-io reads

log = logging.getLogger("data_pipeline")


def source_stems(source: str, stems=STEMS) -> list[str]:
    """The cached stems a task source is made of: a stem itself, or ``accompaniment`` = every stem but vocals.

    Several stems are summed and clipped to [-1, 1], as the official code builds the accompaniment.
    """
    if source in stems:
        return [source]
    if source == "accompaniment":
        rest = [s for s in stems if s != "vocals"]
        if rest and "vocals" in stems:
            return rest
    raise UserError(f"the cache has no source {source!r}: it holds {', '.join(stems)} "
                    f"(and accompaniment = everything but vocals)")


class Cache:
    """A prepared cache opened for reading: the manifest, and paths to its WAVs."""

    def __init__(self, root, manifest: dict):
        self.root = Path(root)
        self.manifest = manifest
        self.sample_rate = int(manifest["sample_rate"])
        self.subtype = manifest["subtype"]
        self.stems = tuple(manifest["stems"])
        self.tracks = list(manifest["tracks"])

    @property
    def dtype(self) -> str:
        """Sample dtype of the WAVs (``int16`` or ``float32``)."""
        return SUBTYPES[self.subtype]

    def path(self, track: dict, stem: str) -> Path:
        """The WAV of ``stem`` (a stem or ``mixture``) of a manifest track."""
        return self.root / track["dir"] / f"{stem}.wav"

    def tracks_in(self, split: str) -> list[dict]:
        """Tracks of a split (``train``, ``valid``, ``test``), in manifest order; fails with one line if none."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        tracks = [t for t in self.tracks if t["split"] == split]
        if not tracks:
            counts = ", ".join(f"{s}: {sum(t['split'] == s for t in self.tracks)}" for s in SPLITS)
            raise UserError(f"cache {self.root} has no {split} tracks ({counts}); prepare it from a dataset with "
                            f"{split} tracks")
        return tracks

    def check(self, config) -> None:
        """Fail with one line when the cache cannot feed ``config`` (sample rate, sources)."""
        if self.sample_rate != config.sample_rate:
            raise UserError(f"cache {self.root} holds audio at {self.sample_rate} Hz but {config.name} needs "
                            f"{config.sample_rate} Hz; prepare a cache with --sample-rate {config.sample_rate}")
        for source in config.sources:
            source_stems(source, self.stems)

    def warn_channels(self, config, tracks) -> None:
        """A mono file feeding a stereo model is duplicated: say so once."""
        mono = [t["name"] for t in tracks if t["channels"] == 1]
        if config.channels == 2 and mono:
            log.warning("%d mono track(s) (e.g. %r) feed a stereo model: their channel is duplicated",
                        len(mono), mono[0])


def open_cache(cache) -> Cache:
    """Open a prepared cache folder; fails with one line if it is missing, empty or not a cache."""
    root = Path(cache)
    if not root.is_dir():
        raise UserError(f"cache {root} does not exist; create it with `waveunet prepare --cache {root} ...`")
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{root} is not a prepared cache (no manifest.json); run `waveunet prepare --cache {root}"
                        f" ...` (an interrupted prepare resumes)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {manifest_path}: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{manifest_path} is not a {FORMAT} manifest; prepare the cache again with this version")
    if not manifest.get("tracks"):
        raise UserError(f"cache {root} is empty (its manifest lists no tracks); prepare it again")
    if manifest.get("subtype") not in SUBTYPES:
        raise UserError(f"{manifest_path}: unknown WAV subtype {manifest.get('subtype')!r}")
    return Cache(root, manifest)
