"""The run directory: the files a training run writes, and the lock that keeps a second trainer out.

::

    config.json     the resolved config and package versions
    state.json      the resumable state (:class:`~waveunet_tf.training.protocol.RunState`)
    checkpoints/    model + optimizer: the latest and the best, named by state.json
    best.keras      the best model so far (its fingerprint is state.json's best_fingerprint)
    history.csv     one row per finished epoch
    logs/           TensorBoard
    loss.png        training and validation loss per epoch, with the stage boundary
    .train.lock     held by the trainer while it runs (released by the kernel even on kill -9)
    .waveunet-run   the marker that makes the folder a run: written when the run starts

A folder is a run only by its marker (or, for runs written before the marker, by ``state.json`` beside a
``config.json`` that this package wrote). A new run goes only into an empty folder (or one that is not there
yet); ``--force`` starts a run over by deleting the files of the run and nothing else.

Only the chief writes: the other workers get a :class:`WorkerRunDir`, which reads the chief's files and writes
nothing. Every file is replaced atomically.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import sys
from importlib import metadata
from pathlib import Path

from waveunet_tf.config import WaveUNetConfig
from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.files import (atomic_path, atomic_write_text, check_writable, is_partial, process_lock,
                              remove_partials)
from waveunet_tf.training.protocol import RunState

CONFIG_FILE, STATE_FILE, CHECKPOINTS, BEST, HISTORY, LOGS, PLOT = (
    "config.json", "state.json", "checkpoints", "best.keras", "history.csv", "logs", "loss.png")
LOCK, MARKER = ".train.lock", ".waveunet-run"
# Everything a run writes: what --force removes (in logs/ only TensorBoard's event files; checkpoints/ is the
# run's own, as Checkpoints.prune treats it).
RUN_FILES = (CONFIG_FILE, STATE_FILE, CHECKPOINTS, BEST, HISTORY, LOGS, PLOT)
EVENTS = "events.out.tfevents.*"
# Keys a resumed run may change: they do not change what is being trained.
RESUMABLE_CHANGES = ("jit_compile", "max_epochs", "description")
HISTORY_COLUMNS = ("epoch", "stage", "steps", "step", "batch_size", "learning_rate", "train_loss", "valid_loss",
                   "best_valid_loss", "improved", "wait", "seconds", "input_wait_s")


class RunDir:
    """The chief's run directory: reads and writes the run's files."""

    def __init__(self, path):
        self.path = Path(path)
        self.checkpoints = self.path / CHECKPOINTS
        self._summary_writer = None

    def has_state(self) -> bool:
        """Whether a run to resume is here (``state.json``)."""
        return (self.path / STATE_FILE).is_file()

    def read_state(self) -> RunState:
        """The run's state, or one line saying ``state.json`` is damaged."""
        path = self.path / STATE_FILE
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{path} is damaged ({e}); start over with --force") from e
        return RunState.from_dict(d, source=str(path))

    def resume_config(self, config: WaveUNetConfig) -> WaveUNetConfig:
        """The config to resume with: the saved one, with only :data:`RESUMABLE_CHANGES` taken from ``config``."""
        saved = WaveUNetConfig.from_json(self.path / CONFIG_FILE)
        a, b = saved.to_dict(), config.to_dict()
        changed = [k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES]
        if changed:
            k = changed[0]
            raise UsageError(f"run dir {self.path} was started with {k}={a[k]!r}, not {b[k]!r}; resume with the "
                             "same config (variant, --config, --set, --quick) or start over with --force")
        return saved.replace(**{k: b[k] for k in RESUMABLE_CHANGES})

    def write_config(self, config: WaveUNetConfig, **extra) -> None:
        """``config.json``: the resolved config, the package versions and ``extra`` keys."""
        config.to_json(self.path / CONFIG_FILE, extra={"package_versions": package_versions(), **extra})

    def write_state(self, state: RunState) -> None:
        """``state.json`` (renamed into place: the commit point of a checkpoint) and ``history.csv``."""
        atomic_write_text(self.path / STATE_FILE, json.dumps(state.to_dict(), indent=1) + "\n")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in state.history:
            writer.writerow({k: row.get(k, "") for k in HISTORY_COLUMNS})
        atomic_write_text(self.path / HISTORY, buf.getvalue())

    def write_best(self, model) -> None:
        """``best.keras``: ``model`` saved atomically."""
        with atomic_path(self.path / BEST, suffix=".keras") as tmp:
            model.save(tmp)

    def plot(self, state: RunState) -> None:
        """``loss.png`` from the state's history."""
        if state.history:
            plot_loss(self.path / PLOT, state.history, state.stage_starts)

    def scalars(self, step: int, values: dict) -> None:
        """TensorBoard scalars ``{tag: value}`` at ``step``."""
        import tensorflow as tf
        if self._summary_writer is None:
            self._summary_writer = tf.summary.create_file_writer(str(self.path / LOGS))
        with self._summary_writer.as_default():
            for tag, value in values.items():
                tf.summary.scalar(tag, value, step=step)

    def flush(self) -> None:
        """Write the TensorBoard events so far."""
        if self._summary_writer is not None:
            self._summary_writer.flush()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._summary_writer is not None:
            self._summary_writer.close()
            self._summary_writer = None


class WorkerRunDir(RunDir):
    """A non-chief worker's view of the chief's run dir (on a filesystem every worker sees): it reads the state,
    config and checkpoints there to resume, and writes nothing."""

    def write_config(self, config, **extra) -> None:
        pass

    def write_state(self, state) -> None:
        pass

    def write_best(self, model) -> None:
        pass

    def plot(self, state) -> None:
        pass

    def scalars(self, step, values) -> None:
        pass


def require_run_dir(path) -> None:
    """``--resume`` continues a run: a run dir that does not exist is a mistyped path, not a new run."""
    if not Path(path).is_dir():
        raise UsageError(f"run dir {path} does not exist, so there is nothing to resume; check the path, or leave "
                         "out --resume to start a new run")


@contextlib.contextmanager
def open_run_dir(path, *, chief: bool, resume: bool, force: bool):
    """The run dir of this worker for the ``with`` block: the chief's is locked (a second trainer is refused
    with one line), made writable, cleared with ``force`` and cleaned of interrupted writes."""
    path = Path(path)
    if resume:
        require_run_dir(path)
    if not chief:
        run_dir = WorkerRunDir(path)
        try:
            yield run_dir
        finally:
            run_dir.close()
        return
    check_writable(path, "the run dir")
    with process_lock(path / LOCK, f"run dir {path}"):
        _clear(path, resume, force)
        remove_partials(path, recursive=False)
        if not (path / MARKER).is_file():
            atomic_write_text(path / MARKER, "a waveunet-tf training run: `waveunet train --force` may delete "
                              f"the run's own files here ({', '.join(RUN_FILES)})\n")
        run_dir = RunDir(path)
        try:
            yield run_dir
        finally:
            run_dir.close()


def is_run(path) -> bool:
    """Whether the folder ``path`` holds a run of this package: its marker, or (a run written before there was
    a marker) ``state.json`` beside a ``config.json`` with the package versions this package writes there."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    try:
        saved = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return (path / STATE_FILE).is_file() and isinstance(saved, dict) and "package_versions" in saved


def _clear(path: Path, resume: bool, force: bool) -> None:
    existing = [name for name in RUN_FILES if (path / name).exists()]
    if not is_run(path):
        # --resume starts a run where there is none yet, beside other files (reproduce keeps its data there),
        # but never over files of a run's names that this package did not write
        others = existing if resume else sorted(p.name for p in path.iterdir() if p.name not in (LOCK, MARKER)
                                                and not is_partial(p))
        if others:
            raise UsageError(f"{path} is not a run dir of this package (no {MARKER}) and holds other files "
                             f"({', '.join(others[:4])}{', ...' if len(others) > 4 else ''}); give a new or "
                             "empty folder to --run-dir" + (" (--force deletes only a run's own files)" * force))
        return
    if existing and not (resume or force):
        raise UsageError(f"run dir {path} already holds a run ({', '.join(existing)}); continue it with --resume "
                         "or start over with --force")
    if force and not resume:
        for name in existing:
            _remove_run_file(path / name)


def _remove_run_file(p: Path) -> None:
    if p.name == LOGS and p.is_dir():  # the user's notes beside TensorBoard's events stay
        for events in p.glob(EVENTS):
            events.unlink()
        with contextlib.suppress(OSError):
            p.rmdir()  # only when nothing else is left
    elif p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()


def package_versions() -> dict:
    """Python's and the main packages' versions, for ``config.json``."""
    out = {"python": sys.version.split()[0]}
    for name in ("waveunet-tf", "tensorflow", "keras", "numpy", "tensorflow-io"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def plot_loss(path: Path, history, stage_starts) -> None:
    """``loss.png``: training and validation loss per epoch (log scale), a dashed line where fine-tuning began."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    trained = [r for r in history if r["train_loss"] is not None]  # not the epoch-0 row of a run from --init
    ax.plot([r["epoch"] for r in trained], [r["train_loss"] for r in trained], label="training", marker=".")
    ax.plot([r["epoch"] for r in history], [r["valid_loss"] for r in history], label="validation", marker=".")
    for start in stage_starts[1:]:
        ax.axvline(start + 0.5, color="gray", linestyle="--", label="fine-tuning starts")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean over sources of the MSE)")
    if min([r["train_loss"] for r in trained] + [r["valid_loss"] for r in history]) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
