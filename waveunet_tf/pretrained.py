"""The official authors' trained models by name (``official:M4``, ``official:M6``, ``official:M5-HighSR``):
downloaded once from the official archive, imported exactly with :mod:`waveunet_tf.official_import`, and cached
as ``.keras`` files.

Facts of the official code (f90/Wave-U-Net, README and ``Config.py``): one archive, ``models.zip``, holds one
folder per model, each trained with the named configuration of the same name: ``baseline_stereo`` (M4),
``full_multi_instrument`` (M6, checkpoint ``full_multi_instrument-134067``) and ``full_44KHz`` (M5-HighSR,
checkpoint ``full_44KHz-236118``). M4's step is not published, so every checkpoint is found by its folder's name
and its ``.index`` file, wherever the folders sit in the archive.

Cache layout (``cache_dir()``, ``WAVEUNET_CACHE`` or ``$XDG_CACHE_HOME/waveunet-tf`` or ``~/.cache/waveunet-tf``)::

    official/models.zip         the downloaded archive (kept, so the other models import without the network)
    official/.models.zip.download  an interrupted download, resumed with an HTTP Range request
    official/<NAME>.keras       an imported model
    official/<NAME>.json        where it came from: URL or path, archive size and sha256, checkpoint, date, version
    official/.lock              held while fetching, so two processes never write the same files

Nothing here imports TensorFlow at module level (the importer does, inside its functions).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from waveunet_tf.version import __version__
from waveunet_tf.config import variant_config
from waveunet_tf.download import DownloadFailed, download
from waveunet_tf.errors import UsageError, UserError, first_line
from waveunet_tf.files import (Locked, atomic_path, atomic_write_text, process_lock, remove_partials,
                               temporary_dir_beside)
from waveunet_tf.official_import import import_checkpoint

OFFICIAL_URL = "https://www.dropbox.com/s/oq0woy3cmf5s8y7/models.zip?dl=1"
URL_ENV = "WAVEUNET_OFFICIAL_URL"
CACHE_ENV = "WAVEUNET_CACHE"
ARCHIVE = "models.zip"
PREFIX = "official:"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class OfficialModel:
    """One model of the official archive: our name, the archive's folder (= the official named config it was
    trained with) and the paper's variant whose architecture it has."""
    name: str
    folder: str
    variant: str


MODELS = {m.name: m for m in (OfficialModel("M4", "baseline_stereo", "M4"),
                              OfficialModel("M6", "full_multi_instrument", "M6"),
                              OfficialModel("M5-HighSR", "full_44KHz", "M5-HighSR"))}


def official_model(name: str) -> OfficialModel:
    """The official model called ``name`` (case does not matter); an unknown name fails listing the known ones."""
    found = {k.lower(): m for k, m in MODELS.items()}.get(str(name).lower())
    if found is None:
        raise UsageError(f"unknown official model {name!r}; the official models are "
                         f"{', '.join(PREFIX + k for k in MODELS)}")
    return found


def cache_dir() -> Path:
    """The user cache of this package: ``WAVEUNET_CACHE``, else ``$XDG_CACHE_HOME/waveunet-tf``, else
    ``~/.cache/waveunet-tf``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "waveunet-tf"


def official_dir() -> Path:
    return cache_dir() / "official"


def archive_url() -> str:
    """Where the official archive is downloaded from: ``WAVEUNET_OFFICIAL_URL`` (a mirror), else the official link."""
    return os.environ.get(URL_ENV) or OFFICIAL_URL


def model_path(name: str) -> Path:
    """Where ``name``'s imported model is (or will be) cached."""
    return official_dir() / f"{official_model(name).name}.keras"


def cached_path(name: str) -> Path | None:
    """``name``'s cached ``.keras`` file, or None when it has not been fetched yet (or a fetch was killed
    before its metadata was written)."""
    path = model_path(name)
    return path if path.is_file() and path.with_suffix(".json").is_file() else None


def ensure_model(name: str, progress: bool = True) -> Path:
    """The cached ``.keras`` path of the official model ``name`` ("M4", "M6", "M5-HighSR"); on first use the
    archive is downloaded (or taken from the cache) and the model imported. Later calls touch no network."""
    return fetch_models([name], progress=progress)[0]


def fetch_models(names, source=None, force: bool = False, progress: bool = True) -> list[Path]:
    """Import each official model of ``names`` into the cache -> their ``.keras`` paths, in order.

    ``source`` is None (the cached archive, else a download from :func:`archive_url`), or a local zip archive or
    unzipped folder that holds the models' folders (a hand download). Already cached models are kept unless
    ``force``. Two processes fetching at once: the second waits for the first, then finds its models cached.
    """
    models = [official_model(n) for n in names]
    if source is not None and not Path(source).exists():
        raise UserError(f"{source} does not exist; --from takes the official models.zip or the folder it unzips to")
    if not force and all(cached_path(m.name) for m in models):
        return [model_path(m.name) for m in models]
    with _cache_lock(progress):
        remove_partials(official_dir(), recursive=False)  # what a killed fetch left (we hold the lock)
        wanted = [m for m in models if force or not cached_path(m.name)]
        if wanted and source is not None:
            _import_all(wanted, Path(source), str(Path(source).resolve()), False, progress)
        elif wanted:
            archive, fresh = _cached_archive(progress)
            _import_all(wanted, archive, archive_url() if fresh else str(archive), fresh, progress)
    return [model_path(m.name) for m in models]


@contextlib.contextmanager
def _cache_lock(progress: bool):
    """Hold the official cache's process lock; while another process holds it, wait: it is fetching into the
    same files, and what it leaves is checked again under the lock."""
    what = f"the official model cache {official_dir()}"
    told = False
    while True:
        held = process_lock(official_dir() / ".lock", what)
        try:
            held.__enter__()
        except Locked as e:
            if progress and not told:
                print(f"{first_line(e)}; waiting for it", file=sys.stderr)
                told = True
            time.sleep(0.5)
            continue
        except OSError as e:
            raise UserError(f"cannot use the model cache {official_dir()}: {e.strerror or first_line(e)}; set "
                            f"{CACHE_ENV} to a folder you can write") from e
        break
    try:
        yield
    finally:
        held.__exit__(None, None, None)


def _cached_archive(progress: bool) -> tuple[Path, bool]:
    """The downloaded archive in the cache, and whether it was downloaded just now (call holding the lock)."""
    archive = official_dir() / ARCHIVE
    if archive.is_file():
        return archive, False
    partial = official_dir() / f".{ARCHIVE}.download"  # not a files.PARTIAL name: kept to be resumed
    try:
        download(archive_url(), partial, progress=progress, desc="official models")
    except DownloadFailed as e:
        raise _network_error(archive_url(), e.reason) from e
    except OSError as e:
        raise _disk_error(e, official_dir()) from e
    try:
        _check_zip(partial, archive_url())
    except UserError:
        partial.unlink()
        raise
    os.replace(partial, archive)
    return archive, True


def _import_all(models, origin: Path, where: str, downloaded: bool, progress: bool) -> None:
    """Import ``models`` from ``origin`` (zip or folder; ``where`` names it in messages and metadata) into the
    cache. A downloaded archive that does not give a model is removed, so that the next try downloads again."""
    is_zip = origin.is_file()
    if is_zip and not downloaded:
        _check_zip(origin, origin)
    names = _zip_names(origin) if is_zip else _folder_names(origin)
    archive = _archive_facts(origin if is_zip else None)
    try:
        for m in models:
            found = find_checkpoint(names, m.folder)
            if found is None:
                raise UserError(f"{where} has no checkpoint of {m.name}: no folder {m.folder}/ with a "
                                f"<name>.index file in it (the official models.zip has baseline_stereo, "
                                f"full_multi_instrument and full_44KHz)")
            if progress:
                print(f"importing official:{m.name} from {found}", file=sys.stderr)
            facts = {"source": where, "checkpoint": found, **archive}
            if is_zip:
                _import_from_zip(m, origin, found, facts)
            else:
                _import_checkpoint_to_cache(m, origin.parent / found, facts)
    except UserError as e:
        if downloaded and not isinstance(e, CacheWriteFailed):
            # a fresh download that does not give the model is not kept: the next try downloads again
            origin.unlink(missing_ok=True)
        raise


def find_checkpoint(names, folder: str) -> str | None:
    """The checkpoint prefix (relative posix path, ``.../<folder>/<stem>``) of the model in ``folder`` among
    ``names`` (the relative paths of an archive or folder), or None. Several checkpoints in the folder: the one
    with the highest step (the ``-<step>`` suffix the official trainer writes)."""
    prefixes = [n[:-len(".index")] for n in names
                if n.endswith(".index") and PurePosixPath(n).parent.name == folder
                and not any(part.startswith((".", "__MACOSX")) for part in PurePosixPath(n).parts)]

    def step(prefix):
        m = re.search(r"-(\d+)$", prefix)
        return (int(m.group(1)) if m else -1, prefix)
    return max(prefixes, key=step) if prefixes else None


def _zip_names(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as z:
        return [n for n in z.namelist() if not n.endswith("/")]


def _folder_names(folder: Path) -> list[str]:
    """Paths under ``folder`` relative to its parent, so that a model's own folder given as ``--from`` is found
    by its name too."""
    return [p.relative_to(folder.parent).as_posix() for p in folder.rglob("*.index")]


def _check_zip(path: Path, where) -> None:
    """Fail with one line unless ``path`` is a complete zip archive (every member's CRC is read and checked)."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise UserError(f"{where} is not a complete zip archive ({first_line(e)}); the official models come as "
                        f"models.zip: download it again") from e
    if bad is not None:
        raise UserError(f"{where} is damaged: {bad} fails its CRC check; download the archive again")


def _archive_facts(archive: Path | None) -> dict:
    if archive is None:
        return {"archive_bytes": None, "archive_sha256": None}
    digest = hashlib.sha256()
    with open(archive, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return {"archive_bytes": archive.stat().st_size, "archive_sha256": digest.hexdigest()}


def _import_from_zip(model: OfficialModel, archive: Path, prefix: str, facts: dict) -> None:
    """Extract the checkpoint's files into a temporary folder in the cache, import, remove the folder."""
    tmp = temporary_dir_beside(official_dir() / f"{model.name}-checkpoint")
    try:
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if member == prefix + ".index" or member.startswith(prefix + ".data-"):
                    with z.open(member) as src, open(tmp / PurePosixPath(member).name, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
        extracted = tmp / PurePosixPath(prefix).name
        try:
            _import_checkpoint_to_cache(model, extracted, facts)
        except UserError as e:  # name the checkpoint in the archive, not the temporary copy
            raise UserError(str(e).replace(str(extracted), f"{facts['source']}:{prefix}")) from e
    except OSError as e:
        raise _disk_error(e, official_dir()) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _import_checkpoint_to_cache(model: OfficialModel, prefix: Path, facts: dict) -> None:
    """Import the checkpoint at ``prefix`` as ``model``'s variant; write the ``.keras``, then the metadata."""
    config = variant_config(model.variant)
    keras_model = import_checkpoint(prefix, config)
    target = model_path(model.name)
    meta = {"name": model.name, "official_folder": model.folder, "variant": model.variant, **facts,
            "imported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "package_version": __version__}
    try:  # the model first: metadata never describes a model that is not (yet) there
        with atomic_path(target, suffix=".keras") as tmp:
            keras_model.save(tmp)
        atomic_write_text(target.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    except OSError as e:
        target.with_suffix(".json").unlink(missing_ok=True)  # no metadata of a model that is not there
        raise _disk_error(e, target.parent) from e


class CacheWriteFailed(UserError):
    """The cache could not be written (a full disk, no permission): nothing is wrong with the archive."""


def _disk_error(e: OSError, folder: Path) -> UserError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return CacheWriteFailed(f"the disk holding {folder} is full; free some space or set {CACHE_ENV} to a folder on "
                         "another disk")
    return CacheWriteFailed(f"cannot write to the model cache {folder}: {e.strerror or first_line(e)}")


def _network_error(url: str, reason) -> UserError:
    return UserError(f"cannot download the official models from {url}: {reason}; set {URL_ENV} to a mirror, or "
                     "download the archive by hand and run `waveunet models fetch NAME --from models.zip`")
