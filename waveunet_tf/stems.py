"""The write protocol of one song's stems, ``OUT/<song>/<source>.wav``, so that nothing is lost or mixed.

:class:`StemWriter` claims the song (a lock in its folder), clears what a killed run left there, streams each
stem into a temporary WAV (32-bit float) as it comes, and moves the whole set in together once every stem is
complete: the folder never holds a partial or mixed set, and nothing of an old set is replaced before the new
one is ready. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
from pathlib import Path

from waveunet_tf.errors import UserError, first_line
from waveunet_tf.files import atomic_write_text, process_lock, remove_partials, temporary_dir_beside

# Held (flock) by the run writing a song's stems: a second run into the same folder is refused until it is done.
LOCK_NAME = ".stems.lock"
# Present only while a run moves its stems into place (it lists them): a run killed in between leaves it, and the
# next run that claims the song removes that mixed set before anything else.
MOVING_NAME = ".stems.moving"
WAV_HEADER_BYTES = 4096  # generous: a float WAV header is 58 bytes


def song_name(path) -> str:
    """``OUT/<song>/``: the file name without its extension (and without ``.stem`` of ``x.stem.mp4``)."""
    name = Path(path).stem
    return name[:-len(".stem")] if name.endswith(".stem") and len(name) > len(".stem") else name


class WriteFailed(UserError):
    """Writing the stems failed (a full disk, an I/O error): the next songs would fail alike."""


def refuse_existing(folder: Path, sources, force: bool, path) -> None:
    """The refusals that need no model and no audio: ``folder`` a file, a stem's name taken by a folder (even
    with ``force``: it is not ours to delete), or existing stems without ``force``."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, so the stems of {path} cannot go in a folder of that name; "
                        "move the file away or choose another -o")
    for s in sources:
        stem = folder / f"{s}.wav"
        if stem.is_dir():
            raise UserError(f"{stem} is a folder, not a stem; move it away (the stems of {path} go there)")
    if force or (folder / MOVING_NAME).is_file():
        return  # a killed run's half-moved set is not a result to keep (removed when the song is claimed)
    existing = [folder / f"{s}.wav" for s in sources if (folder / f"{s}.wav").exists()]
    if existing:
        raise UserError(f"{existing[0]} exists; pass --force to overwrite")


def check_space(folder: Path, needed: int, path) -> None:
    """Fail with one line when ``folder``'s disk has less than ``needed`` bytes free for ``path``'s stems."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise WriteFailed(f"not enough space in {folder} for the stems of {path}: they need "
                          f"{needed / 1e6:.1f} MB, {free / 1e6:.1f} MB are free")


class StemWriter:
    """``with StemWriter(folder, sources, rate, channels, force, path) as w: w.write({source: [n, C]})...``:
    the stems of the song ``path`` (named in messages) streamed into temporary files and, when the block ends
    without an error, moved into ``folder`` together. On an error (or kill -9) nothing of the set is moved in;
    the next run claiming the song removes the leftovers."""

    def __init__(self, folder, sources, rate: int, channels: int, force: bool, path, command: str = "separate"):
        self.folder, self.sources, self.rate, self.channels = Path(folder), tuple(sources), int(rate), channels
        self.force, self.path, self.command = force, path, command
        self._stack = contextlib.ExitStack()
        self._files, self._tmp = {}, None

    def __enter__(self) -> "StemWriter":
        import soundfile as sf
        try:
            self._stack.enter_context(process_lock(self.folder / LOCK_NAME, f"the output folder {self.folder}"))
            remove_partials(self.folder, recursive=False)  # stems of a killed run of this song (we hold its lock)
            self._remove_mixed_set()
            refuse_existing(self.folder, self.sources, self.force, self.path)  # another run may have written since
            self._tmp = temporary_dir_beside(self.folder / "stems")
            self._stack.callback(shutil.rmtree, self._tmp, ignore_errors=True)
            for s in self.sources:
                self._files[s] = self._stack.enter_context(
                    sf.SoundFile(str(self._tmp / f"{s}.wav"), "w", self.rate, self.channels, "FLOAT", format="WAV"))
        except OSError as e:
            self._stack.close()
            raise self._failed(e) from e
        except BaseException:
            self._stack.close()
            raise
        return self

    def write(self, stems: dict) -> None:
        """Append ``{source: float32 [n, channels]}`` (the same n for every source) to the temporary stems."""
        import soundfile as sf
        for s in self.sources:
            try:
                self._files[s].write(stems[s])
            except sf.LibsndfileError as e:
                # libsndfile reports a failed write(2) as "System error." without its errno: a full disk, usually
                vfs = os.statvfs(self._tmp)
                full = vfs.f_bavail * vfs.f_frsize < max(stems[s].nbytes, 1 << 16)
                raise self._failed(OSError(errno.ENOSPC if full else errno.EIO,
                                           os.strerror(errno.ENOSPC) if full else e.error_string)) from e

    def __exit__(self, kind, error, tb) -> None:
        with self._stack:
            if kind is not None:
                return
            try:
                for f in self._files.values():
                    f.close()  # a full disk can fail here too, flushing the last block
                self._move_in()
            except OSError as e:
                raise self._failed(e) from e

    def _move_in(self) -> None:
        for s in self.sources:  # every new stem is ready: only now may the old set be replaced
            if (self.folder / f"{s}.wav").is_dir():
                raise IsADirectoryError(errno.EISDIR, f"{s}.wav is a folder")
        atomic_write_text(self.folder / MOVING_NAME, "\n".join(f"{s}.wav" for s in self.sources) + "\n")
        for s in self.sources:
            os.replace(self._tmp / f"{s}.wav", self.folder / f"{s}.wav")
        os.unlink(self.folder / MOVING_NAME)

    def _remove_mixed_set(self) -> None:
        """A run killed while moving its stems into place left :data:`MOVING_NAME`: the stems it lists may come
        from two runs, so they go (only files: anything else there is not ours)."""
        marker = self.folder / MOVING_NAME
        if not marker.is_file():
            return
        for name in marker.read_text().split():
            stem = self.folder / Path(name).name
            if stem.is_file() or stem.is_symlink():
                stem.unlink()
        marker.unlink()
        print(f"waveunet {self.command}: note: removed the stems a killed run left half moved into {self.folder}",
              file=sys.stderr)

    def _failed(self, e: OSError) -> UserError:
        why = e.strerror or first_line(e)
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return UserError(f"cannot write the stems of {self.path} into {self.folder}: {why}; make the folder "
                             "writable or choose another -o")
        return WriteFailed(f"cannot write the stems of {self.path} to {self.folder}: {why}")
