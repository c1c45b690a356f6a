"""The paper's two-stage protocol, worked by hand on made-up validation losses: no TensorFlow, no training."""

import json
import subprocess
import sys

import pytest

from waveunet_tf.config import variant_config
from waveunet_tf.errors import UserError
from waveunet_tf.training import protocol
from waveunet_tf.training.protocol import FINE_TUNE, FINISH, PAUSE, TRAIN, RunState


def drive(config, losses, max_steps=None, state=None):
    """Run the protocol as the loop does, with ``losses`` as the validation losses of successive epochs and every
    step's examples equal to the stage's batch. Returns the final state and the (action, reason) of each stage end."""
    state, losses, ends = state or RunState(), iter(losses), []
    while True:
        action, reason = protocol.next_action(state, config, max_steps)
        if action == TRAIN:
            stage = protocol.stage_settings(config, state.stage)
            while state.epoch_step < protocol.epoch_target(state, config, max_steps):
                state = protocol.add_step(state, 0.5, stage.batch_size, 0.0, 0.1)
            state = protocol.end_epoch(state, next(losses), stage.learning_rate)
            continue
        ends.append((action, reason))
        if action == FINE_TUNE:
            state = protocol.start_fine_tuning(state, config)
        elif action == FINISH:
            return protocol.finish(state, reason), ends
        else:
            return state.replace(stop_reason=reason), ends


def column(state, key):
    return [row[key] for row in state.history]


def test_the_papers_stage_settings():
    # Stoller et al. 2018, section 4.2: Adam, lr 1e-4, batch 16; then batch doubled and lr 1e-5; patience 20
    m4 = variant_config("M4")
    assert protocol.stage_settings(m4, 0) == protocol.Stage(16, 1e-4, 20)
    assert protocol.stage_settings(m4, 1) == protocol.Stage(32, 1e-5, 20)
    assert protocol.stage_settings(variant_config("M7"), 1).batch_size == 8  # M7 trains with batch 4


def test_patience_then_fine_tuning_with_the_batch_doubled_then_early_stopping():
    config = variant_config("M4", patience=2, fine_tune_patience=2, steps_per_epoch=3)
    losses = [1.0, 0.8, 0.9, 0.85, 0.7, 0.75, 0.72]
    state, ends = drive(config, losses)
    # epochs 1, 2 improve; 3, 4 do not: patience 2 ends stage 1 after epoch 4. Fine-tuning improves at
    # epoch 5 (0.7 < 0.8, the best carries over), then 6 and 7 do not: fine_tune_patience 2 ends the run.
    assert column(state, "stage") == [1, 1, 1, 1, 2, 2, 2]
    assert column(state, "improved") == [1, 1, 0, 0, 1, 0, 0]
    assert column(state, "wait") == [0, 0, 1, 2, 0, 1, 2]
    assert column(state, "best_valid_loss") == [1.0, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7]
    assert column(state, "batch_size") == [16] * 4 + [32] * 3  # examples per step
    assert column(state, "learning_rate") == [1e-4] * 4 + [1e-5] * 3
    assert column(state, "step") == [3, 6, 9, 12, 15, 18, 21]
    assert (state.best_loss, state.best_epoch, state.stage_starts, state.finished) == (0.7, 5, (0, 4), True)
    assert [a for a, _ in ends] == [FINE_TUNE, FINISH]
    assert ends[0][1] == "training stage ended: 2 epochs without a new best (patience 2)"
    assert state.stop_reason == "fine-tuning stage ended: 2 epochs without a new best (fine_tune_patience 2)"


def test_fine_tuning_must_beat_the_first_stages_best():
    config = variant_config("M4", patience=2, fine_tune_patience=2, steps_per_epoch=1)
    state, _ = drive(config, [1.0, 1.1, 1.2, 1.05, 1.01])  # both fine-tuning epochs are worse than epoch 1
    assert column(state, "improved") == [1, 0, 0, 0, 0] and (state.best_loss, state.best_epoch) == (1.0, 1)
    assert state.epoch == 5 and state.finished


def test_an_equal_loss_is_not_an_improvement():
    config = variant_config("M4", patience=1, fine_tune_patience=1, steps_per_epoch=1)
    state, _ = drive(config, [1.0, 1.0, 1.0])
    assert column(state, "improved") == [1, 0, 0] and state.best_epoch == 1


def test_max_epochs_ends_each_stage_and_is_the_stop_reason():
    config = variant_config("M4", max_epochs=3, steps_per_epoch=2)  # patience 20 never runs out
    state, ends = drive(config, [5, 4, 3, 2, 1, 0.5])
    assert column(state, "stage") == [1, 1, 1, 2, 2, 2] and all(column(state, "improved"))
    assert ends == [(FINE_TUNE, "training stage ended: max_epochs 3 reached"),
                    (FINISH, "fine-tuning stage ended: max_epochs 3 reached")]
    assert state.stop_reason == "fine-tuning stage ended: max_epochs 3 reached"


def test_max_steps_cuts_the_epoch_short_then_a_resumed_run_goes_on():
    config = variant_config("M4", steps_per_epoch=5, patience=20)
    state, ends = drive(config, [1.0, 0.9], max_steps=7)
    assert column(state, "steps") == [5, 2] and state.step == 7  # the second epoch ended at step 7, validated
    assert ends == [(PAUSE, "--max-steps 7 reached")] and not state.finished
    state = protocol.resumed(state, config)
    assert state.stop_reason == "" and state.data_seed == protocol.segment_seed(config, 7)
    state, _ = drive(config, [0.8], max_steps=12, state=state)
    assert column(state, "steps") == [5, 2, 5] and column(state, "epoch") == [1, 2, 3]


def test_resuming_mid_epoch_finishes_that_epoch_only():
    config = variant_config("M4", steps_per_epoch=10)
    state = RunState()
    for _ in range(4):  # a checkpoint taken 4 steps into the first epoch
        state = protocol.add_step(state, 2.0, 16, 0.0, 1.0)
    assert protocol.epoch_target(state, config) == 10 and protocol.epoch_target(state, config, max_steps=6) == 6
    state = protocol.end_epoch(state, 1.5, 1e-4)
    assert state.history[0]["train_loss"] == 2.0 and state.history[0]["steps"] == 4 and state.epoch_step == 0


def test_the_data_seed_changes_with_every_restart_and_is_reproducible():
    config = variant_config("M4")
    seeds = {protocol.segment_seed(config, step) for step in range(0, 50000, 100)}
    assert len(seeds) == 500 and all(0 <= s < 2 ** 31 - 1 for s in seeds)
    assert protocol.segment_seed(config, 300) == protocol.segment_seed(variant_config("M4"), 300)
    assert protocol.segment_seed(config, 300) != protocol.segment_seed(config.replace(seed=1), 300)


def test_the_state_round_trips_through_json():
    config = variant_config("M4", patience=1, fine_tune_patience=1, steps_per_epoch=1)
    state, _ = drive(config, [1.0, 2.0, 0.5, 0.7])
    assert RunState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert RunState.from_dict({"epoch": 3, "from_a_newer_version": 1}).epoch == 3
    with pytest.raises(UserError, match="state.json is damaged"):
        RunState.from_dict({"history": 5}, source="state.json")


def test_importing_the_protocol_does_not_import_tensorflow():
    code = ("import sys, waveunet_tf.training, waveunet_tf.training.protocol, waveunet_tf.training.run_dir, "
            "waveunet_tf.training.checkpoints, waveunet_tf.training.distribute; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
