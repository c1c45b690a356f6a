"""The paper's training protocol, one loop for every ``tf.distribute`` strategy.

Protocol (official ``Training.py``; ``training`` in the reference facts): the loss is the mean over sources of
each source's MSE on raw audio; Adam; an epoch is ``steps_per_epoch`` steps, after which the validation loss is
computed over every window of the validation tracks; after ``patience`` epochs without a new best, a fine-tuning
stage starts from the best weights (and their Adam state) with the batch multiplied by ``fine_tune_batch_factor``
and the learning rate ``fine_tune_learning_rate``, until ``fine_tune_patience`` epochs without a new best. The
result is the model with the best validation loss over both stages, ``best.keras``.

Why a custom step rather than ``model.fit``: Keras 3 ``fit`` fails under ``MultiWorkerMirroredStrategy`` on
TF 2.16 (keras-team/keras#20585). The step here is ``strategy.run`` inside a ``tf.function`` on the same Keras
model and optimizer, with the per-replica loss divided by the global batch, so the default, mirrored and
multi-worker strategies share every line of it.

Run directory (only the chief writes it)::

    config.json     the resolved config and package versions
    state.json      the resumable state: stage, epoch, early-stopping counter, best loss, data seed, history
    checkpoints/    model + optimizer (tf.train.Checkpoint): the latest and the best, named by state.json
    best.keras      the best model so far
    history.csv     one row per finished epoch
    logs/           TensorBoard
    loss.png        training and validation loss per epoch, with the stage boundary

Every write is atomic (a checkpoint is written under a new name, then ``state.json`` is renamed over the old
one), so ``kill -9`` at any moment loses at most the steps since the last checkpoint, and ``--resume`` never
repeats a finished epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from waveunet_tf.config import WaveUNetConfig
from waveunet_tf.errors import UserError

STATE_FILE = "state.json"
CHECKPOINTS = "checkpoints"
# Everything a run writes: what --force removes (and nothing else in the folder).
RUN_FILES = ("config.json", STATE_FILE, CHECKPOINTS, "best.keras", "history.csv", "logs", "loss.png")
# Keys a resumed run may change: they do not change what is being trained.
RESUMABLE_CHANGES = ("jit_compile", "max_epochs", "description")
DATA_RAM_BUDGET = 256 * 2 ** 20  # bytes tf.data's AUTOTUNE may spend on buffers
HISTORY_COLUMNS = ("epoch", "stage", "steps", "step", "batch_size", "learning_rate", "train_loss", "valid_loss",
                   "best_valid_loss", "improved", "wait", "seconds", "input_wait_s")


@dataclasses.dataclass
class RunState:
    """Everything needed to continue a run exactly where its last checkpoint left it."""

    stage: int = 0  # 0: training, 1: fine-tuning
    epoch: int = 0  # finished epochs, both stages
    stage_epoch: int = 0  # finished epochs in this stage
    wait: int = 0  # epochs without a new best in this stage
    best_loss: float | None = None
    best_epoch: int = 0
    step: int = 0  # optimizer steps, both stages
    epoch_step: int = 0  # steps into the unfinished epoch
    epoch_loss_sum: float = 0.0  # sum of the unfinished epoch's step losses
    epoch_examples: int = 0  # examples trained on in the unfinished epoch
    epoch_input_wait_s: float = 0.0
    epoch_seconds: float = 0.0
    data_seed: int = 0  # seed of the current stretch of the data stream (worker i uses data_seed + i)
    checkpoint: str = ""  # name of the latest checkpoint under checkpoints/
    best_checkpoint: str = ""
    finished: bool = False
    stop_reason: str = ""
    fingerprint: str = ""  # sha256 of the weights the run ended with (the same on every worker)
    stage_starts: list = dataclasses.field(default_factory=lambda: [0])  # epoch at which each stage began
    history: list = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "RunState":
        try:
            d = json.loads(path.read_text())
            return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})
        except (json.JSONDecodeError, TypeError) as e:
            raise UserError(f"{path} is damaged ({e}); start over with --force") from None


def stage_settings(config: WaveUNetConfig, stage: int) -> tuple[int, float, int]:
    """(global batch size, learning rate, patience) of a stage."""
    if stage == 0:
        return config.batch_size, config.learning_rate, config.patience
    return (config.batch_size * config.fine_tune_batch_factor, config.fine_tune_learning_rate,
            config.fine_tune_patience)


def segment_seed(config: WaveUNetConfig, step: int) -> int:
    """Seed of the data stream (re)started at optimizer step ``step``: deterministic, and different for every
    restart, so a resumed run does not replay the windows it has already trained on. Worker ``i`` adds ``i``."""
    return (config.seed * 1_000_003 + 1000 * step) % (2 ** 31 - 1)


def package_versions() -> dict:
    from importlib import metadata
    out = {"python": sys.version.split()[0]}
    for name in ("waveunet-tf", "tensorflow", "keras", "numpy", "tensorflow-io"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def weights_fingerprint(model) -> str:
    """sha256 of every weight's bytes, in order: equal fingerprints mean identical weights."""
    import hashlib
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()[:16]


# --- the step: one code path for every strategy --------------------------------------------------------
class Trainer:
    """The model, its optimizer and the distributed train / eval steps, created under ``strategy.scope()``.

    Data functions take a ``tf.distribute.InputContext`` and return a ``tf.data.Dataset`` of per-replica batches
    ``(mixture [b, input_length, C], {source: [b, output_length, C]})``.
    """

    def __init__(self, config: WaveUNetConfig, strategy, mixed_precision: bool = False):
        import keras
        import tensorflow as tf
        from waveunet_tf.builder import build_model
        self.tf, self.config, self.strategy = tf, config, strategy
        self.mixed_precision = mixed_precision
        if mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        keras.utils.set_random_seed(config.seed)  # same initial weights for the same seed, whatever the strategy
        with strategy.scope():
            self.model = build_model(config)
            optimizer = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2)
            if mixed_precision:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        # XLA compiles the forward and backward pass; the optimizer update (with its all-reduce) stays outside.
        self._gradients = tf.function(self._gradients_fn, jit_compile=bool(config.jit_compile))
        self._train_step = tf.function(self._train_step_fn)
        self._eval_step = tf.function(self._eval_step_fn)

    @property
    def num_replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def per_example_loss(self, targets, estimates):
        """[b]: the mean over sources of each source's mean squared error over time and channels."""
        tf = self.tf
        losses = [tf.reduce_mean(tf.square(tf.cast(estimates[s], tf.float32) - targets[s]), axis=[1, 2])
                  for s in self.config.sources]
        return tf.add_n(losses) / len(losses)

    def _gradients_fn(self, mixture, targets, global_batch):
        tf = self.tf
        with tf.GradientTape() as tape:
            estimates = self.model(mixture, training=True)
            # Summed over this replica's examples and divided by the global batch: the all-reduced (summed)
            # gradients are then those of the mean loss over the global batch.
            loss = tf.reduce_sum(self.per_example_loss(targets, estimates)) / global_batch
            scaled = self.optimizer.scale_loss(loss)
        return loss, tape.gradient(scaled, self.model.trainable_variables)

    def _replica_step(self, mixture, targets, global_batch):
        loss, grads = self._gradients(mixture, targets, global_batch)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss, self.tf.cast(self.tf.shape(mixture)[0], self.tf.float32)

    def _train_step_fn(self, batch, global_batch):
        mixture, targets = batch
        loss, examples = self.strategy.run(self._replica_step, args=(mixture, targets, global_batch))
        sum_ = self.tf.distribute.ReduceOp.SUM
        return self.strategy.reduce(sum_, loss, axis=None), self.strategy.reduce(sum_, examples, axis=None)

    def _eval_step_fn(self, batch):
        tf = self.tf

        def replica(mixture, targets):
            losses = self.per_example_loss(targets, self.model(mixture, training=False))
            return tf.reduce_sum(losses), tf.cast(tf.shape(losses)[0], tf.float32)

        total, count = self.strategy.run(replica, args=batch)
        sum_ = tf.distribute.ReduceOp.SUM
        return self.strategy.reduce(sum_, total, axis=None), self.strategy.reduce(sum_, count, axis=None)

    def train_step(self, batch, global_batch: int) -> tuple[float, int]:
        """One optimizer step on a distributed batch -> (mean loss over the global batch, examples in it)."""
        loss, examples = self._train_step(batch, self.tf.constant(float(global_batch)))
        return float(loss), int(examples)

    def distribute(self, dataset_fn):
        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def training_stream(self, dataset_fn, global_batch: int, seed: int):
        """An iterator over distributed training batches: each input pipeline (worker) gets its share of the
        global batch and its own seed (``seed + pipeline id``), so workers draw different excerpts."""
        if global_batch % self.num_replicas:
            raise UserError(f"the batch size {global_batch} must be a multiple of the number of replicas "
                            f"({self.num_replicas}): the config's batch_size is the global batch")

        return iter(self.distribute(self.pipeline_fn(dataset_fn, global_batch, seed)))

    def pipeline_fn(self, dataset_fn, global_batch: int, seed: int):
        """The function ``distribute_datasets_from_function`` calls once per input pipeline (worker)."""
        from waveunet_tf.distribute import worker_seed

        def fn(ctx):
            ds = dataset_fn(ctx.get_per_replica_batch_size(global_batch), worker_seed(seed, ctx.input_pipeline_id))
            return ds.prefetch(2).with_options(self._data_options())

        return fn

    def _data_options(self):
        """Two batches ready ahead of the step are enough (a window reads in milliseconds); the RAM budget caps what
        AUTOTUNE may buffer (by default up to half the RAM) while a slow step runs."""
        options = self.tf.data.Options()
        options.autotune.ram_budget = DATA_RAM_BUDGET
        return options

    def evaluate(self, dataset_fn, global_batch: int) -> float:
        """Mean per-example loss over a finite dataset (every validation window), shared among the workers."""
        def fn(ctx):
            ds = dataset_fn(ctx.get_per_replica_batch_size(global_batch))
            return ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id).prefetch(2).with_options(
                self._data_options())

        total = count = 0.0
        for batch in self.distribute(fn):
            s, n = self._eval_step(batch)
            total, count = total + float(s), count + float(n)
        if count == 0:
            raise UserError("the validation set is empty: the cache needs validation tracks (split 'valid')")
        return total / count

    @property
    def learning_rate(self) -> float:
        """The optimizer's learning rate (float32, rounded to the 6 digits it holds)."""
        return float(f"{float(self.tf.convert_to_tensor(self.optimizer.learning_rate.value)):.6g}")

    def set_learning_rate(self, lr: float) -> None:
        self.optimizer.learning_rate.assign(lr)

    def agree(self, values) -> bool:
        """Whether every worker holds the same numbers (e.g. the step it resumed from): the mean over replicas
        equals this worker's value and the variance is zero."""
        tf = self.tf
        x = tf.constant([float(v) for v in values], tf.float64)

        @tf.function
        def moments():
            per_replica = self.strategy.run(lambda: tf.stack([x, x * x]))
            return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

        mean, mean_sq = moments().numpy()
        return bool((abs(mean_sq - mean * mean) <= 1e-9 * (1 + mean_sq)).all() and (abs(mean - x.numpy()) < 1e-9).all())


# --- the run directory ---------------------------------------------------------------------------------
def prepare_run_dir(run_dir: Path, resume: bool, force: bool) -> bool:
    """Make ``run_dir`` ready (chief only). Returns whether a previous run is there to resume."""
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing and not (resume or force):
        raise UserError(f"run dir {run_dir} already holds a run ({', '.join(existing)}); continue it with --resume "
                        "or start over with --force")
    if existing and force and not resume:
        for name in existing:
            p = run_dir / name
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        existing = []
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test-")
        probe.close()
    except OSError as e:
        raise UserError(f"cannot write the run dir {run_dir}: {e.strerror or e}; choose a writable --run-dir") from None
    return (run_dir / STATE_FILE).exists()


def check_same_config(saved: WaveUNetConfig, config: WaveUNetConfig, run_dir: Path) -> WaveUNetConfig:
    """The config to resume with: the saved one, with only :data:`RESUMABLE_CHANGES` taken from ``config``."""
    a, b = saved.to_dict(), config.to_dict()
    changed = [k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES]
    if changed:
        k = changed[0]
        raise UserError(f"run dir {run_dir} was started with {k}={a[k]!r}, not {b[k]!r}; resume with the same "
                        "config (variant, --config, --set, --quick) or start over with --force")
    return saved.replace(**{k: b[k] for k in RESUMABLE_CHANGES})


def write_history_csv(path: Path, history: list) -> None:
    from waveunet_tf.audio import atomic_write_text
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in HISTORY_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def plot_loss(path: Path, history: list, stage_starts: list) -> None:
    """``loss.png``: training and validation loss per epoch (log scale), a dashed line where fine-tuning began."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from waveunet_tf.audio import atomic_path
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], label="training", marker=".")
    ax.plot(epochs, [r["valid_loss"] for r in history], label="validation", marker=".")
    for start in stage_starts[1:]:
        ax.axvline(start + 0.5, color="gray", linestyle="--", label="fine-tuning starts")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean over sources of the MSE)")
    if history and min(min(r["train_loss"], r["valid_loss"]) for r in history) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


# --- the loop -------------------------------------------------------------------------------------------
class _Run:
    """One training run: the loop, its checkpoints and its files."""

    def __init__(self, trainer: Trainer, cluster, run_dir: Path, state: RunState, train_data, valid_data,
                 max_steps, checkpoint_steps: int, progress: bool, log):
        self.t, self.cluster, self.run_dir, self.state = trainer, cluster, run_dir, state
        self.train_data, self.valid_data = train_data, valid_data
        self.max_steps, self.checkpoint_steps, self.progress, self.log = max_steps, checkpoint_steps, progress, log
        self.config = trainer.config
        # Non-chief workers keep their own checkpoints (the same weights) in a private folder, deleted at the end.
        self._private = None if cluster.is_chief else tempfile.mkdtemp(prefix="waveunet-worker-")
        self.ckpt_dir = run_dir / CHECKPOINTS if cluster.is_chief else Path(self._private)
        self.writer = None
        if cluster.is_chief:
            import tensorflow as tf
            self.writer = tf.summary.create_file_writer(str(run_dir / "logs"))

    # checkpoints
    def _write_checkpoint(self, name: str) -> str:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.t.checkpoint.write(str(self.ckpt_dir / name))
        return name

    def _read_checkpoint(self, name: str, directory: Path | None = None) -> None:
        self.t.checkpoint.read(str((directory or self.ckpt_dir) / name)).expect_partial()

    def commit(self) -> None:
        """Save model + optimizer under a new name, then atomically point ``state.json`` at it."""
        s = self.state
        s.checkpoint = self._write_checkpoint(f"ckpt-{s.step:09d}-{s.epoch:05d}-{s.stage}")
        self._write_state()
        self._prune()

    def _write_state(self) -> None:
        if self.cluster.is_chief:
            from waveunet_tf.audio import atomic_write_text
            atomic_write_text(self.run_dir / STATE_FILE, json.dumps(dataclasses.asdict(self.state), indent=1) + "\n")
            write_history_csv(self.run_dir / "history.csv", self.state.history)

    def _prune(self) -> None:
        keep = {self.state.checkpoint, self.state.best_checkpoint}
        for f in self.ckpt_dir.glob("*"):
            if f.name.split(".")[0] not in keep and f.name != "checkpoint":
                f.unlink(missing_ok=True)

    def save_best(self) -> None:
        """Checkpoint the current (best) weights; the chief also exports them as ``best.keras``."""
        self.state.best_checkpoint = self._write_checkpoint(f"best-{self.state.epoch:05d}")
        if self.cluster.is_chief:
            self._export_best()

    def _export_best(self) -> None:
        from waveunet_tf.audio import atomic_path
        with atomic_path(self.run_dir / "best.keras", suffix=".keras") as tmp:
            self.t.model.save(tmp)

    def restore(self, source_dir: Path) -> None:
        """Continue from the state's checkpoint in ``source_dir`` (the run dir: every worker reads the chief's)."""
        s = self.state
        if s.best_checkpoint:
            self._read_checkpoint(s.best_checkpoint, source_dir)
            if self.cluster.is_chief:  # best.keras may be older than the state if the kill came between them
                self._export_best()
            else:  # a private copy of the best weights, for the stage switch
                self._write_checkpoint(s.best_checkpoint)
        self._read_checkpoint(s.checkpoint, source_dir)

    # the protocol
    def stage_done(self) -> bool:
        s, c = self.state, self.config
        patience = stage_settings(c, s.stage)[2]
        return s.wait >= patience or (c.max_epochs > 0 and s.stage_epoch >= c.max_epochs)

    def start_fine_tuning(self) -> None:
        s = self.state
        batch, lr, _ = stage_settings(self.config, 1)
        self.log(f"fine-tuning from the best weights (epoch {s.best_epoch}): batch {batch}, learning rate {lr:g}")
        self._read_checkpoint(s.best_checkpoint)
        s.stage, s.stage_epoch, s.wait = 1, 0, 0
        s.stage_starts = list(s.stage_starts) + [s.epoch]
        s.data_seed = segment_seed(self.config, s.step)

    def finish(self) -> None:
        s = self.state
        self._read_checkpoint(s.best_checkpoint)
        s.finished, s.stop_reason = True, "early stopping in the fine-tuning stage"

    def run(self) -> RunState:
        try:
            return self._loop()
        finally:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._private:
            shutil.rmtree(self._private, ignore_errors=True)

    def _loop(self) -> RunState:
        s = self.state
        self.t.set_learning_rate(stage_settings(self.config, s.stage)[1])
        stream = None
        while not s.finished:
            if self.stage_done():
                if s.stage == 0:
                    self.start_fine_tuning()
                    self.t.set_learning_rate(stage_settings(self.config, 1)[1])
                    stream = None
                else:
                    self.finish()
                self.commit()
                continue
            if self.max_steps is not None and s.step >= self.max_steps:
                s.stop_reason = f"--max-steps {self.max_steps} reached"
                break
            batch_size = stage_settings(self.config, s.stage)[0]
            if stream is None:
                stream = self.t.training_stream(self.train_data, batch_size, s.data_seed)
            self.run_epoch(stream, batch_size)
        s.fingerprint = weights_fingerprint(self.t.model)
        self._write_state()
        if self.cluster.is_chief and s.history:
            plot_loss(self.run_dir / "loss.png", s.history, s.stage_starts)
        return s

    def run_epoch(self, stream, batch_size: int) -> None:
        import tensorflow as tf
        s, c = self.state, self.config
        last = c.steps_per_epoch
        if self.max_steps is not None:
            last = min(last, s.epoch_step + self.max_steps - s.step)
        bar = None
        if self.progress and self.cluster.is_chief:
            from tqdm import tqdm
            bar = tqdm(total=last, initial=s.epoch_step, desc=f"epoch {s.epoch + 1} (stage {s.stage + 1})",
                       unit="step", file=sys.stderr, leave=False, dynamic_ncols=True)
        while s.epoch_step < last:
            t0 = time.perf_counter()
            batch = next(stream)
            t1 = time.perf_counter()
            loss, examples = self.t.train_step(batch, batch_size)
            t2 = time.perf_counter()
            if not math.isfinite(loss):
                raise UserError(f"the training loss became {loss} at step {s.step + 1}; lower the learning rate")
            s.step, s.epoch_step = s.step + 1, s.epoch_step + 1
            s.epoch_loss_sum += loss
            s.epoch_examples += examples
            s.epoch_input_wait_s += t1 - t0
            s.epoch_seconds += t2 - t0
            if self.writer is not None and (s.step % 10 == 0 or s.epoch_step == last):
                with self.writer.as_default():
                    tf.summary.scalar("train/step_loss", loss, step=s.step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{s.epoch_loss_sum / s.epoch_step:.5f}")
            if s.epoch_step < last and self.checkpoint_steps and s.step % self.checkpoint_steps == 0:
                self.commit()
        if bar is not None:
            bar.close()
        self.end_epoch(batch_size)

    def end_epoch(self, batch_size: int) -> None:
        import tensorflow as tf
        s = self.state
        t0 = time.perf_counter()
        valid = self.t.evaluate(self.valid_data, batch_size)
        s.epoch_seconds += time.perf_counter() - t0
        s.epoch += 1
        s.stage_epoch += 1
        improved = s.best_loss is None or valid < s.best_loss
        if improved:
            s.best_loss, s.best_epoch, s.wait = valid, s.epoch, 0
            self.save_best()
        else:
            s.wait += 1
        train = s.epoch_loss_sum / max(1, s.epoch_step)
        lr = self.t.learning_rate
        s.history = list(s.history) + [{
            "epoch": s.epoch, "stage": s.stage + 1, "steps": s.epoch_step, "step": s.step,
            "batch_size": s.epoch_examples / max(1, s.epoch_step),  # measured: examples per step
            "learning_rate": lr, "train_loss": train, "valid_loss": valid, "best_valid_loss": s.best_loss,
            "improved": int(improved), "wait": s.wait, "seconds": round(s.epoch_seconds, 3),
            "input_wait_s": round(s.epoch_input_wait_s, 3)}]
        self.log(f"epoch {s.epoch} (stage {s.stage + 1}): train loss {train:.6f}, validation loss {valid:.6f}"
                 f"{' (best)' if improved else f', {s.wait} without improvement'}, {s.epoch_seconds:.0f} s")
        s.epoch_step, s.epoch_loss_sum, s.epoch_examples, s.epoch_input_wait_s, s.epoch_seconds = 0, 0.0, 0, 0.0, 0.0
        if self.writer is not None:
            with self.writer.as_default():
                for name, value in (("epoch/train_loss", train), ("epoch/valid_loss", valid),
                                    ("epoch/learning_rate", lr), ("epoch/batch_size", batch_size)):
                    tf.summary.scalar(name, value, step=s.epoch)
            self.writer.flush()
        self.commit()
        if self.cluster.is_chief:
            plot_loss(self.run_dir / "loss.png", s.history, s.stage_starts)


def train(config: WaveUNetConfig, run_dir, *, train_data, valid_data, strategy, cluster, resume: bool = False,
          force: bool = False, max_steps: int | None = None, mixed_precision: bool = False,
          checkpoint_steps: int = 100, progress: bool = True, log=None) -> RunState:
    """Train ``config`` into ``run_dir`` following the paper's protocol; returns the final :class:`RunState`.

    ``train_data(per_replica_batch, seed)`` -> infinite ``tf.data.Dataset``; ``valid_data(per_replica_batch)`` ->
    finite dataset of every validation window; both of ``(mixture, {source: target})`` batches.
    ``strategy``/``cluster`` from :func:`waveunet_tf.distribute.make_strategy`. ``max_steps`` caps the total
    number of optimizer steps (the epoch it falls in is cut short and validated). A checkpoint is written after
    every epoch and every ``checkpoint_steps`` steps.
    """
    run_dir = Path(run_dir)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if not cluster.is_chief:
        log = lambda msg: None  # noqa: E731  (the chief reports)
    if cluster.is_chief:
        resuming = prepare_run_dir(run_dir, resume, force)
    else:
        resuming = resume and (run_dir / STATE_FILE).exists()
    if resuming:
        config = check_same_config(WaveUNetConfig.from_json(run_dir / "config.json"), config, run_dir)
        state = RunState.load(run_dir / STATE_FILE)
    else:
        state = RunState(data_seed=segment_seed(config, 0))
    if cluster.is_chief:
        config.to_json(run_dir / "config.json", extra={"package_versions": package_versions(),
                                                       "strategy": strategy.__class__.__name__,
                                                       "replicas": strategy.num_replicas_in_sync})

    trainer = Trainer(config, strategy, mixed_precision=mixed_precision)
    run = _Run(trainer, cluster, run_dir, state, train_data, valid_data, max_steps, checkpoint_steps, progress, log)
    if resuming and state.checkpoint:
        run.restore(run_dir / CHECKPOINTS)
        if state.finished:
            log(f"{run_dir} has already finished ({state.stop_reason}); best validation loss {state.best_loss:.6f}")
        else:
            state.stop_reason = ""
            state.data_seed = segment_seed(config, state.step)
            log(f"resuming {run_dir} at epoch {state.epoch + 1} (stage {state.stage + 1}), step {state.step}")
    if cluster.num_workers > 1 and not trainer.agree([state.step, state.epoch, state.stage]):
        raise UserError("the workers resumed from different states: the run dir must be on a filesystem every "
                        "worker sees (or start over with --force)")
    if state.finished:
        run.close()
        return state
    return run.run()
