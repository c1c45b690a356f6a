"""`waveunet train`: the protocol (stages, early stopping), the run dir, kill -9 and --resume, bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from waveunet_tf.config import variant_config, variant_names
from waveunet_tf.errors import UserError
from waveunet_tf.quick import quick_config

RATE = 8192
TINY = ["--variant", "M4", "--set", f"sample_rate={RATE}", "--set", "num_layers=3", "--set", "num_initial_filters=4",
        "--set", "requested_output=512", "--set", "batch_size=4", "--no-progress"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A synthetic cache at 8192 Hz: two training tracks and one validation track of 4 s."""
    import data_pipeline
    root = tmp_path_factory.mktemp("train-data")
    data_pipeline.make_synthetic_dataset(root / "synth", tracks=3, test_tracks=0, seconds=4, seed=1)
    data_pipeline.prepare_cache(root / "synth", root / "cache", RATE, wav=True)
    return str(root / "cache")


def waveunet(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "waveunet_tf.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def history(run_dir):
    with open(Path(run_dir) / "history.csv") as f:
        return list(csv.DictReader(f))


def sets(**kw):
    return [x for k, v in kw.items() for x in ("--set", f"{k}={v}")]


# --- the quick preset and config resolution (no TensorFlow) -----------------------------------------------
@pytest.mark.parametrize("name", variant_names())
def test_quick_preset_keeps_the_variants_kind_and_shrinks_the_rest(name):
    full, quick = variant_config(name), quick_config(variant_config(name))
    for key in ("context", "channels", "output_type", "output_activation", "upsampling", "sources", "filter_size",
                "merge_filter_size"):
        assert getattr(quick, key) == getattr(full, key), key
    assert quick.num_layers < full.num_layers and quick.num_initial_filters < full.num_initial_filters
    assert quick.input_length <= full.input_length / 4
    assert quick.steps_per_epoch <= 200 and quick.patience <= 3 and 0 < quick.max_epochs <= 20
    assert quick.batch_size <= full.batch_size


def test_config_resolution_order_variant_quick_file_set(tmp_path):
    from waveunet_tf.commands.train import resolve_config
    f = tmp_path / "exp.json"
    f.write_text(json.dumps({"variant": "M4", "num_initial_filters": 10}))
    cfg = resolve_config(None, f, [], quick=True)
    assert (cfg.name, cfg.num_layers, cfg.num_initial_filters) == ("M4", quick_config(variant_config("M4")).num_layers,
                                                                   10)
    cfg = resolve_config("M4", f, ["num_initial_filters=6", "batch_size=2"], quick=True, jit=True)
    assert (cfg.num_initial_filters, cfg.batch_size, cfg.jit_compile) == (6, 2, True)
    with pytest.raises(UserError, match="for variant M4, not M6"):
        resolve_config("M6", f, [])
    with pytest.raises(UserError, match="unknown config key 'nope'"):
        resolve_config("M4", None, ["nope=1"])


# --- bad input: one line, exit code 1 ----------------------------------------------------------------------
def test_bad_input_gets_one_clear_line(cache, tmp_path, capsys):
    from waveunet_tf.cli import main

    def fails(args, expected):
        code = main(["train", *map(str, args)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and err[0].startswith("waveunet train: error:"), err
        assert expected in err[0], err[0]

    run = tmp_path / "run"
    fails(["--variant", "M9", "--cache", cache, "--run-dir", run], "unknown variant 'M9'")
    fails([*TINY, "--set", "nope=1", "--cache", cache, "--run-dir", run], "unknown config key 'nope'")
    fails(["--variant", "M4", "--cache", cache, "--run-dir", run], f"--sample-rate {22050}")
    fails([*TINY, "--set", "sources=bass,guitar", "--set", "output_type=direct", "--cache", cache, "--run-dir", run],
          "guitar")
    (tmp_path / "file").write_text("not a folder")
    fails([*TINY, "--cache", cache, "--run-dir", tmp_path / "file" / "run"], "cannot write the run dir")
    run.mkdir()
    (run / "config.json").write_text("{}")
    fails([*TINY, "--cache", cache, "--run-dir", run], "--resume")
    assert (run / "config.json").read_text() == "{}"  # nothing overwritten


# --- the protocol --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_stage_switch_doubles_the_batch_and_sets_the_fine_tuning_rate(cache, tmp_path):
    # learning rate 0: the validation loss never improves after epoch 1, so patience 1 runs out at epoch 2
    run = tmp_path / "run"
    r = waveunet("train", *TINY, *sets(learning_rate=0, patience=1, fine_tune_patience=1, steps_per_epoch=2,
                                       max_epochs=3),
                 "--cache", cache, "--run-dir", run)
    assert r.returncode == 0, r.stderr
    rows = history(run)
    stages = [int(row["stage"]) for row in rows]
    assert stages[:3] == [1, 1, 2], stages
    assert [float(row["batch_size"]) for row in rows[:3]] == [4, 4, 8]  # measured examples per step
    assert [float(row["learning_rate"]) for row in rows[:3]] == [0, 0, 1e-5]
    assert [int(row["improved"]) for row in rows[:2]] == [1, 0]
    state = json.loads((run / "state.json").read_text())
    assert state["finished"] and state["stage"] == 1 and state["stage_starts"] == [0, 2]
    assert stages.count(1) == 2 and (state["wait"] == 1 or stages.count(2) == 3)  # patience or max_epochs ended it
    assert float(rows[-1]["best_valid_loss"]) == pytest.approx(min(float(row["valid_loss"]) for row in rows))
    assert "fine-tuning from the best weights (epoch 1): batch 8, learning rate 1e-05" in r.stderr


@pytest.mark.slow
def test_kill_9_then_resume_finishes_the_same_epochs_as_an_uninterrupted_run(cache, tmp_path):
    protocol = [*TINY, *sets(steps_per_epoch=5, max_epochs=1, patience=50, fine_tune_patience=50), "--cache", cache]

    whole = tmp_path / "whole"
    r = waveunet("train", *protocol, "--run-dir", whole)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(whole)
    expected = [(row["epoch"], row["stage"]) for row in history(whole)]
    assert expected == [("1", "1"), ("2", "2")]
    # the run dir holds everything the protocol promises
    config = json.loads((whole / "config.json").read_text())
    assert config["package_versions"]["tensorflow"] == "2.16.2" and config["num_layers"] == 3
    assert (whole / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert list((whole / "logs").glob("events.out.tfevents.*"))
    from waveunet_tf.model_io import load_model
    model, cfg = load_model(whole)
    assert cfg.num_layers == 3 and model.count_params() > 0

    # the same run, killed with SIGKILL as soon as its first epoch is saved, then resumed
    killed = tmp_path / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    p = subprocess.Popen([sys.executable, "-m", "waveunet_tf.cli", "train", *protocol, "--run-dir", str(killed)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_file, deadline = killed / "state.json", time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 1:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    at_kill = json.loads(state_file.read_text())["epoch"]
    assert at_kill == 1

    r = waveunet("train", *protocol, "--run-dir", killed, "--resume")
    assert r.returncode == 0, r.stderr
    assert f"resuming {killed} at epoch {at_kill + 1}" in r.stderr
    assert [(row["epoch"], row["stage"]) for row in history(killed)] == expected  # no epoch repeated or lost
    state = json.loads(state_file.read_text())
    assert state["finished"] and state["epoch"] == 2 and state["step"] == 10
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == sorted(
        f"{name}.{ext}" for name in {state["checkpoint"], state["best_checkpoint"]}
        for ext in ("index", "data-00000-of-00001"))

    r = waveunet("train", *protocol, "--run-dir", killed, "--resume")  # a finished run stays finished
    assert r.returncode == 0 and "already finished" in r.stderr and len(history(killed)) == 2
