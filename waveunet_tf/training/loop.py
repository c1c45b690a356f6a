"""The training step and the loop that runs the protocol with it.

Why a custom step rather than ``model.fit``: Keras 3 ``fit`` fails under ``MultiWorkerMirroredStrategy`` on
TF 2.16 (keras-team/keras#20585). The step here is ``strategy.run`` inside a ``tf.function`` on the same Keras
model and optimizer, with the per-replica loss divided by the global batch, so the default, mirrored and
multi-worker strategies share every line of it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

import waveunet_tf.training.protocol as protocol
from waveunet_tf.builder import build_model
from waveunet_tf.errors import UserError
from waveunet_tf.fingerprint import model_fingerprint
from waveunet_tf.training.checkpoints import best_name, latest_name
from waveunet_tf.training.distribute import worker_seed

DATA_RAM_BUDGET = 256 * 2 ** 20  # bytes tf.data's AUTOTUNE may spend on buffers


@dataclasses.dataclass(frozen=True)
class Data:
    """What a run trains and validates on: ``train(per_replica_batch, seed)`` -> an infinite dataset,
    ``valid(batch)`` -> every validation window once, ``valid_windows`` of them."""

    train: object
    valid: object
    valid_windows: int


class Trainer:
    """The model, its optimizer and the distributed train / eval steps, created under ``strategy.scope()``.

    Data functions return a ``tf.data.Dataset`` of batches ``(mixture [b, input_length, C], {source: [b,
    output_length, C]})``: ``train_data(per_replica_batch, seed)`` an infinite one, ``valid_data(batch)`` every
    validation window once.
    """

    def __init__(self, config, strategy, precision: str = "float32", batch_parts: int = 1):
        import keras
        import tensorflow as tf
        self.tf, self.config, self.strategy = tf, config, strategy
        self.batch_parts = batch_parts
        keras.utils.set_random_seed(config.seed)  # same initial weights for the same seed, whatever the strategy
        with strategy.scope():
            # the weights (and so the checkpoint) are float32 in every precision; only the compute dtype differs
            self.model = build_model(config, precision)
            optimizer = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2)
            if precision == "float16":  # bfloat16 has float32's range: no loss scaling
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
        """Replicas in sync: every device of every worker."""
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
            # Summed over this replica's examples and divided by the global batch: the all-reduced (summed)
            # gradients are then those of the mean loss over the global batch. Each part of the batch is a separate
            # forward and backward pass that meet only where the gradients add up, so TensorFlow's executor runs
            # the parts at once, one per inter-op thread (see distribute.training_threads).
            loss = tf.add_n([tf.reduce_sum(self.per_example_loss(t, self.model(m, training=True))) / global_batch
                             for m, t in self._batch_parts(mixture, targets)])
            scaled = self.optimizer.scale_loss(loss)
        return loss, tape.gradient(scaled, self.model.trainable_variables)

    def _batch_parts(self, mixture, targets):
        """[(mixture, targets)]: the replica's batch cut into ``batch_parts`` parts of (nearly) equal size; whole
        when its size is unknown while tracing or smaller than the number of parts."""
        b = mixture.shape[0]
        if self.batch_parts < 2 or b is None or b < self.batch_parts:
            return [(mixture, targets)]
        sizes = [b // self.batch_parts + (i < b % self.batch_parts) for i in range(self.batch_parts)]
        mixtures = self.tf.split(mixture, sizes)
        split_targets = {s: self.tf.split(targets[s], sizes) for s in targets}
        return [(m, {s: split_targets[s][i] for s in targets}) for i, m in enumerate(mixtures)]

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

        def replica(mixture, targets, weight):
            losses = tf.cast(self.per_example_loss(targets, self.model(mixture, training=False)), tf.float64)
            return tf.reduce_sum(losses * weight), tf.reduce_sum(weight)

        total, count = self.strategy.run(replica, args=batch)
        sum_ = tf.distribute.ReduceOp.SUM
        return self.strategy.reduce(sum_, total, axis=None), self.strategy.reduce(sum_, count, axis=None)

    def train_step(self, batch, global_batch: int) -> tuple[float, int]:
        """One optimizer step on a distributed batch -> (mean loss over the global batch, examples in it)."""
        loss, examples = self._train_step(batch, self.tf.constant(float(global_batch)))
        return float(loss), int(examples)

    def distribute(self, dataset_fn):
        """``dataset_fn(tf.distribute.InputContext)`` -> a dataset of per-replica batches, as a distributed dataset."""
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

    def evaluate(self, valid_data, num_windows: int, global_batch: int) -> float:
        """The exact mean per-example loss over the ``num_windows`` windows of ``valid_data``, shared among the
        workers. Every replica runs the same number of steps (collectives must match): each pipeline takes every
        n-th window and pads its share with zero windows of weight 0 to ``steps`` full batches per replica."""
        tf = self.tf
        if num_windows < 1:
            raise UserError("the validation set is empty: the cache needs validation tracks (split 'valid')")
        per_replica = global_batch // self.num_replicas
        steps = -(-num_windows // global_batch)

        def fn(ctx):
            local_replicas = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            windows = valid_data(per_replica).unbatch().shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
            zeros = tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype), windows.element_spec)
            padding = tf.data.Dataset.from_tensors((*zeros, tf.constant(0.0, tf.float64))).repeat()
            weighted = windows.map(lambda mixture, targets: (mixture, targets, tf.constant(1.0, tf.float64)))
            ds = weighted.concatenate(padding).take(steps * local_replicas * per_replica)
            return ds.batch(per_replica, drop_remainder=True).prefetch(2).with_options(self._data_options())

        batches = iter(self.distribute(fn))
        total = count = 0.0
        for _ in range(steps):
            s, n = self._eval_step(next(batches))
            total, count = total + float(s), count + float(n)
        if round(count) != num_windows:
            raise UserError(f"validated {count:.0f} windows instead of the {num_windows} of the validation set")
        return total / count

    @property
    def learning_rate(self) -> float:
        """The optimizer's learning rate (float32, rounded to the 6 digits it holds)."""
        return float(f"{float(self.tf.convert_to_tensor(self.optimizer.learning_rate.value)):.6g}")

    def set_learning_rate(self, lr: float) -> None:
        """Set the optimizer's learning rate (the stage's)."""
        self.optimizer.learning_rate.assign(lr)

    def fingerprint(self) -> str:
        """The model's :func:`~waveunet_tf.fingerprint.model_fingerprint` with its config."""
        return model_fingerprint(self.model, self.config)

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


class Progress:
    """Progress of one epoch on stderr: a bar in a terminal; elsewhere (a log file) a line at each quarter of
    the epoch, so a redirected log grows by a few lines per epoch."""

    def __init__(self, enabled: bool, log, total: int, initial: int, desc: str):
        self.log, self.total, self.desc = log, total, desc
        self.bar, self.lines = None, False
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", file=sys.stderr, leave=False,
                            dynamic_ncols=True)
        else:
            self.lines = enabled
        self.next_line = (4 * initial // max(1, total) + 1) * total // 4

    def update(self, done: int, loss: float) -> None:
        """After step ``done`` of the epoch, whose mean loss so far is ``loss``."""
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.5f}")
        elif self.lines and done >= self.next_line and done < self.total:
            self.log(f"{self.desc}: step {done}/{self.total}, loss {loss:.5f}")
            self.next_line = (4 * done // self.total + 1) * self.total // 4

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Loop:
    """Runs the protocol (:mod:`~waveunet_tf.training.protocol`) with a :class:`Trainer`, writing checkpoints
    (``ckpts``) and the run dir's files (``files``; a worker's twin writes nothing)."""

    def __init__(self, trainer: Trainer, files, ckpts, data: Data, *, log, max_steps=None,
                 checkpoint_steps: int = 100, progress: bool = True):
        self.t, self.files, self.ckpts, self.data = trainer, files, ckpts, data
        self.config = trainer.config
        self.max_steps, self.checkpoint_steps, self.progress, self.log = max_steps, checkpoint_steps, progress, log

    def run(self, state: protocol.RunState) -> protocol.RunState:
        """Train from ``state`` until the protocol finishes or ``max_steps``; returns the final state."""
        config, stream = self.config, None
        self.t.set_learning_rate(protocol.stage_settings(config, state.stage).learning_rate)
        while True:
            action, reason = protocol.next_action(state, config, self.max_steps)
            if action == protocol.PAUSE:
                state = state.replace(stop_reason=reason)
                break
            if action == protocol.TRAIN:
                batch_size = protocol.stage_settings(config, state.stage).batch_size
                stream = stream or self.t.training_stream(self.data.train, batch_size, state.data_seed)
                state = self.validate(self.train_epoch(state, stream, batch_size), batch_size)
                continue
            self.ckpts.read(state.best_checkpoint)  # both a new stage and the end go back to the best weights
            if action == protocol.FINE_TUNE:
                self.log(f"{reason}; fine-tuning from the best weights (epoch {state.best_epoch}): batch "
                         f"{protocol.stage_settings(config, 1).batch_size}, learning rate "
                         f"{protocol.stage_settings(config, 1).learning_rate:g}")
                state, stream = protocol.start_fine_tuning(state, config), None
                self.t.set_learning_rate(protocol.stage_settings(config, 1).learning_rate)
            else:
                state = protocol.finish(state, reason)
            state = self.commit(state)
            if state.finished:
                break
        state = state.replace(fingerprint=self.t.fingerprint())
        self.files.write_state(state)
        self.files.plot(state)
        return state

    def train_epoch(self, state, stream, batch_size: int):
        """Steps until the epoch's end (or ``max_steps``), with a checkpoint every ``checkpoint_steps``."""
        last = protocol.epoch_target(state, self.config, self.max_steps)
        bar = Progress(self.progress, self.log, last, state.epoch_step,
                       f"epoch {state.epoch + 1} (stage {state.stage + 1})")
        try:
            while state.epoch_step < last:
                t0 = time.perf_counter()
                batch = next(stream)
                t1 = time.perf_counter()
                loss, examples = self.t.train_step(batch, batch_size)
                if not math.isfinite(loss):
                    raise UserError(f"the training loss became {loss} at step {state.step + 1}; lower the "
                                    "learning rate")
                state = protocol.add_step(state, loss, examples, t1 - t0, time.perf_counter() - t0)
                if state.step % 10 == 0 or state.epoch_step == last:
                    self.files.scalars(state.step, {"train/step_loss": loss})
                bar.update(state.epoch_step, state.epoch_loss_sum / state.epoch_step)
                if state.epoch_step < last and self.checkpoint_steps and state.step % self.checkpoint_steps == 0:
                    state = self.commit(state)
        finally:
            bar.close()
        return state

    def validate(self, state, batch_size: int):
        """The epoch's validation loss, the protocol's bookkeeping, the best weights if they are, a checkpoint."""
        t0 = time.perf_counter()
        valid = self.t.evaluate(self.data.valid, self.data.valid_windows, batch_size)
        lr = self.t.learning_rate
        state = protocol.end_epoch(state, valid, lr, seconds=time.perf_counter() - t0)
        if protocol.improved(state):
            state = self.save_best(state)
        self.log(protocol.epoch_summary(state))
        row = state.history[-1]
        self.files.scalars(state.epoch, {"epoch/train_loss": row["train_loss"], "epoch/valid_loss": valid,
                                         "epoch/learning_rate": lr, "epoch/batch_size": batch_size})
        self.files.flush()
        state = self.commit(state)
        self.files.plot(state)
        return state

    def validate_start(self, state):
        """``--init``: the starting weights' validation loss as the epoch-0 row, saved as the best weights."""
        t0 = time.perf_counter()
        batch_size = protocol.stage_settings(self.config, 0).batch_size
        valid = self.t.evaluate(self.data.valid, self.data.valid_windows, batch_size)
        state = self.save_best(protocol.start_from(state, valid, self.t.learning_rate, time.perf_counter() - t0))
        self.log(f"epoch 0 (the starting weights): validation loss {valid:.6f}")
        return self.commit(state)

    def save_best(self, state):
        """Checkpoint the current (best) weights and export them as ``best.keras`` with their fingerprint."""
        name = self.ckpts.write(best_name(state))
        self.files.write_best(self.t.model)
        return state.replace(best_checkpoint=name, best_fingerprint=self.t.fingerprint())

    def commit(self, state):
        """Save model + optimizer under a new name, atomically point ``state.json`` at it, drop the rest."""
        state = state.replace(checkpoint=self.ckpts.write(latest_name(state)))
        self.files.write_state(state)
        self.ckpts.prune({state.checkpoint, state.best_checkpoint})
        return state

    def restore(self, state, source):
        """Continue from ``state``'s checkpoints in ``source`` (the run dir's: every worker reads the chief's).
        best.keras is rewritten from the best checkpoint: a kill between the two writes may have left it newer
        than the state."""
        if state.best_checkpoint:
            self.ckpts.read(state.best_checkpoint, source)
            if source != self.ckpts.folder:  # a worker's private copy, for the stage switch
                self.ckpts.write(state.best_checkpoint)
            self.files.write_best(self.t.model)
            state = state.replace(best_fingerprint=self.t.fingerprint())
        self.ckpts.read(state.checkpoint, source)
        return state
