"""Running a training: open the run dir, make the strategy, restore, run the loop (imports TensorFlow)."""

from __future__ import annotations

import sys
from pathlib import Path

import data_pipeline
import waveunet_tf.training.distribute as distribute
from waveunet_tf.errors import UserError
from waveunet_tf.precision import require_gpu_for_float16
from waveunet_tf.training.checkpoints import Checkpoints, PrivateCheckpoints
from waveunet_tf.training.init import set_weights
from waveunet_tf.training.loop import Data, Loop, Trainer
from waveunet_tf.training.protocol import RunState, resumed, segment_seed
from waveunet_tf.training.run_dir import open_run_dir


def train_on_cache(config, cache, run_dir, *, strategy: str = "default", resume: bool = False, force: bool = False,
                   max_steps: int | None = None, precision: str = "float32", progress: bool = True,
                   log=None, init=None, batch_parts: int = 1, notes=()) -> RunState:
    """Train ``config`` on a cache made by ``waveunet prepare`` into ``run_dir`` with the paper's protocol.

    The cache is opened and checked against the config first (one clear line before TensorFlow starts).
    ``strategy``: one of :data:`~waveunet_tf.training.distribute.STRATEGIES`. Other arguments: see :func:`train`.
    """
    opened = data_pipeline.open_cache(cache)
    opened.check(config)
    left_out = opened.left_out(config)  # e.g. CCMixter's songs for a four-source model
    if left_out and distribute.cluster_for(strategy).is_chief:
        (log or _stderr)(left_out)
    # one line naming the cache if it has no validation tracks
    windows = len(data_pipeline.evaluation_windows(opened, config, split="valid"))

    def train_data(batch_size, seed):
        return data_pipeline.training_dataset(opened, config, batch_size, seed=seed)

    def valid_data(batch_size):
        return data_pipeline.evaluation_dataset(opened, config, split="valid", batch_size=batch_size)

    return train(config, run_dir, data=Data(train_data, valid_data, windows), strategy=strategy, resume=resume,
                 force=force, max_steps=max_steps, precision=precision, progress=progress, log=log, init=init,
                 batch_parts=batch_parts, notes=notes)


def train(config, run_dir, *, data: Data, strategy: str = "default", resume: bool = False, force: bool = False,
          max_steps: int | None = None, precision: str = "float32", checkpoint_steps: int = 100,
          progress: bool = True, log=None, init=None, batch_parts: int = 1, notes=()) -> RunState:
    """Train ``config`` on ``data`` into ``run_dir``; returns the final :class:`RunState`.

    ``resume`` continues the run in ``run_dir`` (which must exist), ``force`` starts it over; without either an
    existing run is refused. ``max_steps`` caps the total number of optimizer steps (the epoch it falls in is cut
    short and validated). ``precision``: float32, bfloat16 or float16 (:mod:`waveunet_tf.precision`; float16 needs a
    GPU). A checkpoint is written after every epoch and every ``checkpoint_steps`` steps.
    ``progress``: a bar in a terminal, a few lines per epoch elsewhere. ``log(line)``: the chief's messages
    (default: stderr); other workers say nothing. ``init``: a :class:`~waveunet_tf.training.init.Start` whose
    weights a new run starts from (its validation loss becomes the history's epoch-0 row). ``batch_parts``: the
    parts of each replica's batch the step computes at once (:func:`~waveunet_tf.training.distribute.training_threads`).
    ``notes``: lines to log once every check has passed and the training starts (e.g. ``training_threads``' note),
    so that a refusal stays one line.
    """
    run_dir = Path(run_dir)
    cluster = distribute.cluster_for(strategy)
    log = (log or _stderr) if cluster.is_chief else _quiet
    with open_run_dir(run_dir, chief=cluster.is_chief, resume=resume, force=force) as files:
        resuming = resume and files.has_state()
        if resuming:
            config = files.resume_config(config)
            state = resumed(files.read_state(), config)
        else:
            if resume:  # an existing folder without a checkpoint (e.g. killed before the first one)
                log(f"{run_dir} holds no checkpoint yet: starting a new run there")
            state = RunState(data_seed=segment_seed(config, 0))
        init = None if resuming else init
        tf_strategy, cluster = distribute.make_strategy(strategy)
        if precision == "float16":
            require_gpu_for_float16()
        for line in notes:
            log(line)
        files.write_config(config, strategy=tf_strategy.__class__.__name__,
                           replicas=tf_strategy.num_replicas_in_sync, precision=precision)
        try:
            return _run(config, tf_strategy, cluster, files, state, data, precision=precision, init=init,
                        batch_parts=batch_parts,
                        max_steps=max_steps, checkpoint_steps=checkpoint_steps, progress=progress, log=log)
        except Exception as e:
            if cluster.num_workers > 1 and distribute.is_peer_failure(e):
                raise UserError(f"lost contact with another worker ({type(e).__name__}: it stopped or is "
                                "unreachable); restart every worker with --resume") from e
            raise


def _run(config, strategy, cluster, files, state, data, *, precision, init, batch_parts, log,
         **loop_options) -> RunState:
    trainer = Trainer(config, strategy, precision=precision, batch_parts=batch_parts)
    if init is not None:
        set_weights(trainer.model, init)
    ckpts = Checkpoints(trainer.checkpoint, files.checkpoints) if cluster.is_chief else \
        PrivateCheckpoints(trainer.checkpoint)
    try:
        loop = Loop(trainer, files, ckpts, data, log=log, **loop_options)
        if cluster.num_workers > 1 and not trainer.agree([state.step, state.epoch, state.stage]):
            raise UserError("the workers resumed from different states: the run dir must be on a filesystem "
                            "every worker sees (or start over with --force)")
        if state.finished:
            log(f"{files.path} has already finished ({state.stop_reason}); best validation loss "
                f"{state.best_loss:.6f}")
            return state
        if state.checkpoint:
            ckpts.prune({state.checkpoint, state.best_checkpoint})  # leftovers of an interrupted write
            state = loop.restore(state, files.checkpoints)
            log(f"resuming {files.path} at epoch {state.epoch + 1} (stage {state.stage + 1}), step {state.step}")
        elif init is not None:
            log(f"starting from the weights of {init.source}")
            state = loop.validate_start(state)
        return loop.run(state)
    finally:
        ckpts.close()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _quiet(line: str) -> None:
    """Non-chief workers: the chief reports."""
