"""The paper's two-stage training protocol as pure functions on the run state (no TensorFlow here).

Official ``Training.py``: train in epochs of ``steps_per_epoch`` steps; after each, the validation loss over every
validation window. A new best resets the early-stopping counter; ``patience`` epochs without one end the first
stage. Fine-tuning then starts from the best weights with the batch multiplied by ``fine_tune_batch_factor`` and
the learning rate ``fine_tune_learning_rate``, until ``fine_tune_patience`` epochs without a new best (the best
loss carries over from the first stage). ``max_epochs`` (0: none) also ends a stage. The result is the best model
of both stages.

The loop (:mod:`waveunet_tf.training.loop`) asks :func:`next_action` what to do, trains an epoch with
:func:`add_step` after each step and :func:`end_epoch` after its validation, and applies
:func:`start_fine_tuning` or :func:`finish` when a stage ends. Every function returns a new :class:`RunState`.
"""

from __future__ import annotations

import dataclasses

from waveunet_tf.errors import UserError

TRAIN, FINE_TUNE, FINISH, PAUSE = "train", "fine-tune", "finish", "pause"
STAGE_NAMES = ("training", "fine-tuning")


@dataclasses.dataclass(frozen=True)
class RunState:
    """Everything needed to continue a run exactly where its last checkpoint left it (``state.json``)."""

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
    fingerprint: str = ""  # model_fingerprint of the weights the run ended with (the same on every worker)
    best_fingerprint: str = ""  # model_fingerprint of the weights in best.keras
    stage_starts: tuple = (0,)  # epoch at which each stage began
    history: tuple = ()  # one dict per finished epoch (the columns of history.csv)

    def replace(self, **changes) -> "RunState":
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The state as plain JSON values (what ``state.json`` holds)."""
        d = dataclasses.asdict(self)
        d["stage_starts"], d["history"] = list(self.stage_starts), [dict(row) for row in self.history]
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "state") -> "RunState":
        """From :meth:`to_dict`'s output (keys it does not know are ignored; missing ones take their default)."""
        try:
            state = cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})
            return state.replace(stage_starts=tuple(state.stage_starts), history=tuple(state.history))
        except TypeError as e:
            raise UserError(f"{source} is damaged ({e}); start over with --force") from e


@dataclasses.dataclass(frozen=True)
class Stage:
    """The settings of one stage of the protocol."""
    batch_size: int  # global batch
    learning_rate: float
    patience: int


def stage_settings(config, stage: int) -> Stage:
    """The global batch size, learning rate and patience of ``stage`` (0: training, 1: fine-tuning)."""
    if stage == 0:
        return Stage(config.batch_size, config.learning_rate, config.patience)
    return Stage(config.batch_size * config.fine_tune_batch_factor, config.fine_tune_learning_rate,
                 config.fine_tune_patience)


def segment_seed(config, step: int) -> int:
    """Seed of the data stream (re)started at optimizer step ``step``: deterministic, and different for every
    restart, so a resumed run does not replay the windows it has already trained on. Worker ``i`` adds ``i``."""
    return (config.seed * 1_000_003 + 1000 * step) % (2 ** 31 - 1)


def stage_end_reason(state: RunState, config) -> str:
    """Why the current stage is over ("" while it goes on): its patience ran out, or ``max_epochs``."""
    patience = stage_settings(config, state.stage).patience
    name = ("patience", "fine_tune_patience")[state.stage]
    if state.wait >= patience:
        return f"{state.wait} epochs without a new best ({name} {patience})"
    if config.max_epochs > 0 and state.stage_epoch >= config.max_epochs:
        return f"max_epochs {config.max_epochs} reached"
    return ""


def next_action(state: RunState, config, max_steps: int | None = None) -> tuple[str, str]:
    """``(action, reason)``: :data:`FINE_TUNE` or :data:`FINISH` when the stage is over, :data:`PAUSE` when
    ``max_steps`` optimizer steps are done, else :data:`TRAIN` (an epoch, or the rest of one)."""
    if state.finished:
        return FINISH, state.stop_reason
    reason = stage_end_reason(state, config)
    if reason:
        return (FINE_TUNE if state.stage == 0 else FINISH), f"{STAGE_NAMES[state.stage]} stage ended: {reason}"
    if max_steps is not None and state.step >= max_steps:
        return PAUSE, f"--max-steps {max_steps} reached"
    return TRAIN, ""


def epoch_target(state: RunState, config, max_steps: int | None = None) -> int:
    """The ``epoch_step`` at which the current epoch ends: ``steps_per_epoch``, or earlier where ``max_steps``
    falls (that epoch is cut short and validated)."""
    last = config.steps_per_epoch
    if max_steps is not None:
        last = min(last, state.epoch_step + max(0, max_steps - state.step))
    return last


def add_step(state: RunState, loss: float, examples: int, input_wait_s: float, seconds: float) -> RunState:
    """After one optimizer step of mean loss ``loss`` over ``examples`` examples."""
    return state.replace(step=state.step + 1, epoch_step=state.epoch_step + 1,
                         epoch_loss_sum=state.epoch_loss_sum + loss, epoch_examples=state.epoch_examples + examples,
                         epoch_input_wait_s=state.epoch_input_wait_s + input_wait_s,
                         epoch_seconds=state.epoch_seconds + seconds)


def end_epoch(state: RunState, valid_loss: float, learning_rate: float, seconds: float = 0.0) -> RunState:
    """After the validation of an epoch: a new best (strictly lower loss) resets the counter, anything else
    adds one; the epoch's row joins the history and the epoch's sums start again. ``seconds``: validation time."""
    improved = state.best_loss is None or valid_loss < state.best_loss
    epoch = state.epoch + 1
    best_loss, best_epoch, wait = (valid_loss, epoch, 0) if improved else (state.best_loss, state.best_epoch,
                                                                           state.wait + 1)
    steps = max(1, state.epoch_step)
    total_seconds = state.epoch_seconds + seconds
    row = {"epoch": epoch, "stage": state.stage + 1, "steps": state.epoch_step, "step": state.step,
           "batch_size": state.epoch_examples / steps,  # measured: examples per step
           "learning_rate": learning_rate, "train_loss": state.epoch_loss_sum / steps, "valid_loss": valid_loss,
           "best_valid_loss": best_loss, "improved": int(improved), "wait": wait,
           "seconds": round(total_seconds, 3), "input_wait_s": round(state.epoch_input_wait_s, 3)}
    return state.replace(epoch=epoch, stage_epoch=state.stage_epoch + 1, best_loss=best_loss, best_epoch=best_epoch,
                         wait=wait, history=state.history + (row,), epoch_step=0, epoch_loss_sum=0.0,
                         epoch_examples=0, epoch_input_wait_s=0.0, epoch_seconds=0.0)


def start_from(state: RunState, valid_loss: float, learning_rate: float, seconds: float = 0.0) -> RunState:
    """A run that starts from trained weights (``--init``): their validation loss is the epoch-0 row of the
    history and the best loss to beat; no epoch has been trained."""
    row = {"epoch": 0, "stage": 1, "steps": 0, "step": 0, "batch_size": None, "learning_rate": learning_rate,
           "train_loss": None, "valid_loss": valid_loss, "best_valid_loss": valid_loss, "improved": 1, "wait": 0,
           "seconds": round(seconds, 3), "input_wait_s": 0.0}
    return state.replace(best_loss=valid_loss, best_epoch=0, history=(row,))


def improved(state: RunState) -> bool:
    """Whether the last finished epoch set a new best."""
    return bool(state.history) and bool(state.history[-1]["improved"])


def epoch_summary(state: RunState) -> str:
    """One line about the last finished epoch."""
    row = state.history[-1]
    verdict = " (best)" if row["improved"] else f", {row['wait']} without improvement"
    return (f"epoch {row['epoch']} (stage {row['stage']}): train loss {row['train_loss']:.6f}, validation loss "
            f"{row['valid_loss']:.6f}{verdict}, {row['seconds']:.0f} s")


def start_fine_tuning(state: RunState, config) -> RunState:
    """The second stage, from the best weights (the loop restores them): counters start again, the best loss
    carries over, the data stream restarts with a new seed."""
    return state.replace(stage=1, stage_epoch=0, wait=0, stage_starts=state.stage_starts + (state.epoch,),
                         data_seed=segment_seed(config, state.step))


def finish(state: RunState, reason: str) -> RunState:
    """The run is over (the loop restores the best weights); ``reason`` says what ended it."""
    return state.replace(finished=True, stop_reason=reason)


def resumed(state: RunState, config) -> RunState:
    """A state read from ``state.json`` to continue: a fresh data seed (no replayed windows)."""
    if state.finished:
        return state
    return state.replace(stop_reason="", data_seed=segment_seed(config, state.step))
