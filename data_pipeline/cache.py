"""The prepared WAV cache: its layout, its manifest, and the checks a config makes against it.

Layout (written by :func:`data_pipeline.prepare_cache`)::

    CACHE/manifest.json                      the index below
    CACHE/<subset>/<track>/<stem>.wav        mixture and the track's stems at the cache's sample rate
    CACHE/ccmixter/<song>/<stem>.wav         CCMixter's songs (mixture, accompaniment, vocals), train only
    CACHE/<subset>/<track>/track.json        written last: the track is complete (a resumed prepare skips it)

``manifest.json``::

    {"format": "waveunet-cache/1", "sample_rate": 22050, "subtype": "PCM_16", "stems": [...],
     "split": "musdb", "split_rule": "<how validation tracks were chosen>", "source_root": "...",
     "ccmixter_root": "..." | null,
     "tracks": [{"name", "subset": "train|test", "split": "train|valid|test", "length": samples,
                 "channels": 1|2, "dir": "<subset>/<track>", "dataset": "musdb|ccmixter|own",
                 "stems": [...]}, ...]}

A manifest written before tracks said their dataset and stems reads as MUSDB tracks with the cache's stems.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from waveunet_tf.errors import UserError

FORMAT = "waveunet-cache/1"
STEMS = ("bass", "drums", "other", "vocals")  # MUSDB18's sources; the mixture is stored beside them
ACCOMPANIMENT = "accompaniment"  # a stem of CCMixter and of your own songs; in MUSDB18 the sum of the others
MIXTURE = "mixture"
SPLITS = ("train", "valid", "test")
SUBTYPES = {"PCM_16": "int16", "FLOAT": "float32"}  # WAV subtype -> sample dtype tensorflow-io reads

log = logging.getLogger("data_pipeline")


def source_stems(source: str, stems=STEMS) -> list[str] | None:
    """The stems of a track (``stems``) a task source is made of: the stem itself, or ``accompaniment`` = bass +
    drums + other; ``None`` when the track cannot give it.

    Several stems are summed and clipped to [-1, 1], as the official code builds the accompaniment.
    """
    if source in stems:
        return [source]
    parts = [s for s in STEMS if s != "vocals"]
    if source == ACCOMPANIMENT and all(s in stems for s in parts):
        return parts
    return None


def track_stems(track: dict, default=STEMS) -> list[str]:
    """The stems a manifest track holds (older manifests: the cache's ``default``)."""
    return list(track.get("stems") or default)


def _missing(config, stems) -> list[str]:
    """The files a track of ``stems`` lacks for ``config``'s sources."""
    missing = []
    for source in config.sources:
        if source_stems(source, stems) is None:
            want = [source] if source != ACCOMPANIMENT else [s for s in STEMS if s != "vocals" and s not in stems]
            missing += [f"{s}.wav" for s in want if f"{s}.wav" not in missing]
    return missing


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

    def stems_of(self, track: dict) -> list[str]:
        """The stems ``track`` holds."""
        return track_stems(track, self.stems)

    def tracks_in(self, split: str, config=None) -> list[dict]:
        """Tracks of a split (``train``, ``valid``, ``test``), in manifest order, and with ``config`` only those
        that hold its sources; fails with one line if none."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        tracks = [t for t in self.tracks if t["split"] == split]
        if not tracks:
            counts = ", ".join(f"{s}: {sum(t['split'] == s for t in self.tracks)}" for s in SPLITS)
            raise UserError(f"cache {self.root} has no {split} tracks ({counts}); prepare it from a dataset with "
                            f"{split} tracks")
        if config is not None:
            usable = [t for t in tracks if not _missing(config, self.stems_of(t))]
            if not usable:
                lack = ", ".join(_missing(config, self.stems_of(tracks[0])))
                raise UserError(f"cache {self.root} cannot give {config.name}'s sources ({', '.join(config.sources)})"
                                f" for its {split} tracks: they lack {lack}")
            tracks = usable
        return tracks

    def check(self, config) -> None:
        """Fail with one line when the cache cannot feed ``config``: its sample rate, or no track holding the
        config's sources (the line names the stems they lack)."""
        if self.sample_rate != config.sample_rate:
            raise UserError(f"cache {self.root} holds audio at {self.sample_rate} Hz but {config.name} needs "
                            f"{config.sample_rate} Hz; prepare a cache with --sample-rate {config.sample_rate}")
        if all(_missing(config, self.stems_of(t)) for t in self.tracks):
            raise UserError(f"cache {self.root} cannot give {config.name}'s sources ({', '.join(config.sources)}): "
                            f"its tracks lack {', '.join(_missing(config, self.stems_of(self.tracks[0])))}; prepare "
                            f"it from songs with those stems")

    def left_out(self, config) -> str:
        """One line saying how many tracks lack ``config``'s sources and are left out ("" if none is)."""
        out = [t for t in self.tracks if _missing(config, self.stems_of(t))]
        if not out:
            return ""
        datasets = sorted({t.get("dataset", "musdb") for t in out})
        return (f"{config.name} trains on {len(self.tracks) - len(out)} of the cache's {len(self.tracks)} tracks: "
                f"{len(out)} {'/'.join(datasets)} track(s) lack {', '.join(_missing(config, self.stems_of(out[0])))}"
                f" and are left out")

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
