"""Model + optimizer checkpoints (``tf.train.Checkpoint``) of a run, named by its state.

A checkpoint is written under a new name and becomes current only when ``state.json`` names it (the run dir
renames that file into place), so a write interrupted by ``kill -9`` or a full disk leaves files nobody names:
:meth:`Checkpoints.prune` removes them, whatever they are (TensorFlow's ``<name>_temp/`` folder included).
A read must restore every variable of the model and the optimizer and use every value of the checkpoint, or
it fails with one line naming what is missing.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from waveunet_tf.errors import UserError, first_line
from waveunet_tf.training.protocol import RunState


def latest_name(state: RunState) -> str:
    """Name of the checkpoint of ``state``'s step, epoch and stage (unique within a run). The end of a run
    writes the best weights at the step of its last epoch: it gets its own name, so that it never overwrites
    the checkpoint ``state.json`` still names."""
    return f"ckpt-{state.step:09d}-{state.epoch:05d}-{state.stage}" + ("-final" if state.finished else "")


def best_name(state: RunState) -> str:
    """Name of the checkpoint of the best weights, found at ``state``'s epoch."""
    return f"best-{state.epoch:05d}"


class Checkpoints:
    """The checkpoints of ``checkpoint`` (a ``tf.train.Checkpoint`` of model and optimizer) in ``folder``."""

    def __init__(self, checkpoint, folder):
        self.checkpoint = checkpoint
        self.folder = Path(folder)

    def write(self, name: str) -> str:
        """Save model and optimizer as ``name``; returns ``name``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.checkpoint.write(str(self.folder / name))
        return name

    def read(self, name: str, folder=None) -> None:
        """Restore checkpoint ``name`` (from ``folder``, default this one's) into the model and optimizer."""
        import tensorflow as tf
        path = Path(folder or self.folder) / name
        try:
            self.checkpoint.read(str(path)).assert_consumed()
        except (tf.errors.NotFoundError, tf.errors.DataLossError) as e:
            raise UserError(f"cannot read checkpoint {path}: {first_line(e)}; start over with --force") from e
        except AssertionError as e:
            raise UserError(f"checkpoint {path} does not match the model and optimizer: {_mismatch(e)}; it was "
                            "written by another config or is damaged (start over with --force)") from e

    def prune(self, keep) -> None:
        """Remove every entry of the folder except the checkpoints named in ``keep``: older checkpoints and
        the leftovers of interrupted writes (files or folders)."""
        if not self.folder.is_dir():
            return
        for entry in self.folder.iterdir():
            if entry.name.split(".")[0] in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)

    def close(self) -> None:
        """The run dir's checkpoints stay."""


def _mismatch(error: AssertionError) -> str:
    """TensorFlow's long assertion (it lists whole variable values) as one line naming a missing variable."""
    text = str(error)
    count = re.search(r"Found (\d+) Python objects that were not bound", text)
    name = re.search(r"path=([^,\s>]+)", text)
    if count and name:
        return f"{count.group(1)} variables are missing from it, e.g. {name.group(1)}"
    return first_line(error)


class PrivateCheckpoints(Checkpoints):
    """A non-chief worker's own checkpoints (the same weights as the chief's) in a temporary folder, deleted
    by :meth:`close`: it needs them to go back to the best weights, and must not write into the run dir."""

    def __init__(self, checkpoint):
        super().__init__(checkpoint, tempfile.mkdtemp(prefix="waveunet-worker-"))

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
