"""tf.distribute: TF_CONFIG, per-worker data, the exact validation loss, mirrored == single device, resume across
strategies, two workers (in step, with an uneven validation set and with an empty share, a dead one)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from waveunet_tf.errors import UserError
from waveunet_tf.training import distribute

RATE = 8192
TINY = {"sample_rate": RATE, "num_layers": 3, "num_initial_filters": 4, "requested_output": 512, "batch_size": 4,
        "steps_per_epoch": 3}


def sets(**kw):
    return [x for k, v in {**TINY, **kw}.items() for x in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A synthetic cache at 8192 Hz: two training tracks and one validation track of 4 s."""
    import data_pipeline
    root = tmp_path_factory.mktemp("distribute-data")
    data_pipeline.make_synthetic_dataset(root / "synth", tracks=3, test_tracks=0, seconds=4, seed=2)
    data_pipeline.prepare_cache(root / "synth", root / "cache", RATE, wav=True)
    return str(root / "cache")


# --- TF_CONFIG ---------------------------------------------------------------------------------------------
def tf_config(cluster, task_type, index):
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


def test_tf_config_places_the_task_and_names_the_chief():
    workers = {"worker": ["a:1", "b:1", "c:1"]}
    c = distribute.cluster_of(distribute.read_tf_config(tf_config(workers, "worker", 2)))
    assert (c.num_workers, c.worker_index, c.is_chief) == (3, 2, False)
    assert distribute.cluster_of(distribute.read_tf_config(tf_config(workers, "worker", 0))).is_chief
    with_chief = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    c = distribute.cluster_of(distribute.read_tf_config(tf_config(with_chief, "worker", 0)))
    assert (c.num_workers, c.worker_index, c.is_chief) == (3, 1, False)
    assert distribute.cluster_of(distribute.read_tf_config(tf_config(with_chief, "chief", 0))).is_chief
    assert distribute.worker_seed(7, 0) != distribute.worker_seed(7, 1)


@pytest.mark.parametrize("environ, message", [
    ({}, "needs the TF_CONFIG environment variable"),
    ({"TF_CONFIG": "{not json"}, "not valid JSON"),
    (tf_config({"worker": ["a:1"]}, "worker", 1), "index 1 is out of range"),
    (tf_config({"worker": ["a:1"]}, "evaluator", 0), "naming one of its cluster's jobs"),
    (tf_config({"worker": ["a:1"], "ps": ["b:1"]}, "worker", 0), "'ps' is not supported"),
])
def test_bad_tf_config_is_one_clear_line(environ, message):
    with pytest.raises(UserError, match=message):
        distribute.read_tf_config(environ)


def test_each_input_pipeline_gets_its_share_of_the_batch_and_its_own_excerpts(cache):
    import numpy as np
    import tensorflow as tf

    import data_pipeline
    from waveunet_tf.config import variant_config
    from waveunet_tf.training import Trainer
    config = variant_config("M4", **TINY)
    trainer = Trainer(config, tf.distribute.get_strategy())
    fn = trainer.pipeline_fn(lambda b, seed: data_pipeline.training_dataset(cache, config, b, seed=seed), 8, seed=5)

    def first_mixture(pipeline):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        return next(iter(fn(ctx)))[0].numpy()

    a, b, a_again = first_mixture(0), first_mixture(1), first_mixture(0)
    assert a.shape == (4, config.input_length, 2)  # 8 global / 2 replicas
    assert np.array_equal(a, a_again) and not np.allclose(a, b)


def reference_valid_loss(model, config, cache):
    """The mean over every validation window of the mean over sources of the MSE, in float64 with NumPy, from
    plain model calls (not the Trainer) -> (loss, windows)."""
    import numpy as np

    import data_pipeline
    total, count = 0.0, 0
    for mixture, targets in data_pipeline.evaluation_dataset(cache, config, batch_size=8):
        estimates = model(mixture, training=False)
        per_example = np.mean([np.mean((np.float64(estimates[s]) - np.float64(targets[s])) ** 2, axis=(1, 2))
                               for s in config.sources], axis=0)
        total, count = total + float(per_example.sum()), count + len(per_example)
    return total / count, count


def test_the_validation_loss_is_the_exact_mean_over_every_window(cache):
    import tensorflow as tf

    import data_pipeline
    from waveunet_tf.config import variant_config
    from waveunet_tf.training import Trainer
    config = variant_config("M4", **{**TINY, "requested_output": 1000})  # 33 windows: not a multiple of 4
    trainer = Trainer(config, tf.distribute.get_strategy())
    expected, windows = reference_valid_loss(trainer.model, config, cache)
    assert windows == 33 == len(data_pipeline.evaluation_windows(cache, config))
    got = trainer.evaluate(lambda b: data_pipeline.evaluation_dataset(cache, config, batch_size=b), windows, 4)
    assert got == pytest.approx(expected, rel=1e-6)


# --- mirrored: same weights as one device; resume with another strategy ------------------------------------
MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from waveunet_tf.cli import main
    from waveunet_tf.model_io import load_model
    cache, out, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
    common = ["train", "--variant", "M4", "--cache", cache, "--no-progress", *sets]
    codes = [main([*common, "--run-dir", f"{out}/single", "--strategy", "default", "--max-steps", "3"]),
             main([*common, "--run-dir", f"{out}/mirrored", "--strategy", "mirrored", "--max-steps", "3"]),
             # a run moved between strategies: 2 steps on one device, resumed on two
             main([*common, "--run-dir", f"{out}/moved", "--strategy", "default", "--max-steps", "2"]),
             main([*common, "--run-dir", f"{out}/moved", "--strategy", "mirrored", "--max-steps", "5", "--resume"])]
    single, mirrored = (load_model(f"{out}/{r}")[0].get_weights() for r in ("single", "mirrored"))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single, mirrored))
    scale = max(float(np.max(np.abs(a))) for a in single)
    print(json.dumps({"codes": codes, "max_abs_diff": diff, "scale": scale,
                      "devices": len(tf.config.list_logical_devices("CPU"))}))
""")


@pytest.mark.slow
def test_mirrored_on_two_devices_matches_one_device_and_resumes_across_strategies(cache, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, cache, str(tmp_path), *sets()], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0, 0, 0] and result["devices"] == 2
    assert result["max_abs_diff"] < 1e-5 * max(1.0, result["scale"]), result
    mirrored_config = json.loads((tmp_path / "mirrored" / "config.json").read_text())
    assert mirrored_config["replicas"] == 2 and mirrored_config["strategy"] == "MirroredStrategy"
    moved = json.loads((tmp_path / "moved" / "state.json").read_text())
    assert moved["step"] == 5 and [row["steps"] for row in moved["history"]] == [2, 3]
    assert "resuming" in r.stderr and "at epoch 2 (stage 1), step 2" in r.stderr


# --- two worker processes ------------------------------------------------------------------------------------
def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_workers(cache, tmp_path, extra):
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(2)]}
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **tf_config(cluster, "worker", i))
        err = open(tmp_path / f"worker{i}.err", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "waveunet_tf.cli", "train", "--variant", "M4", "--cache", cache, "--run-dir",
             str(tmp_path / f"run{i}"), "--strategy", "multiworker", "--no-progress", *extra],
            env=env, stdout=subprocess.PIPE, stderr=err, text=True))
    return procs


def chief_matches_one_process(run_dir, cache, windows):
    """The chief's best validation loss equals the exact mean over every window computed in this process from
    its best.keras (1e-6 relative), and best.keras is the model state.json's fingerprint names."""
    from waveunet_tf.fingerprint import model_fingerprint
    from waveunet_tf.model_io import load_model
    state = json.loads((run_dir / "state.json").read_text())
    model, config = load_model(run_dir / "best.keras")
    assert model_fingerprint(model, config) == state["best_fingerprint"]
    expected, count = reference_valid_loss(model, config, cache)
    assert count == windows
    assert state["best_loss"] == pytest.approx(expected, rel=1e-6)
    return state


def run_workers(cache, tmp_path, extra):
    procs = start_workers(cache, tmp_path, extra)
    outs = [p.communicate(timeout=600)[0] for p in procs]
    errs = [(tmp_path / f"worker{i}.err").read_text() for i in range(2)]
    assert [p.returncode for p in procs] == [0, 0], errs
    fingerprints = [re.search(r"worker %d: final weights fingerprint (\w+)" % i, errs[i]).group(1) for i in range(2)]
    assert fingerprints[0] == fingerprints[1]
    assert outs[0].strip().splitlines()[-1] == str(tmp_path / "run0")
    assert not (tmp_path / "run1").exists()  # the non-chief wrote nothing
    return errs


@pytest.mark.slow
def test_two_workers_train_in_step_with_an_uneven_validation_set(cache, tmp_path):
    # 33 validation windows (issue 12 #2): in batches of 2 per worker that is 17 batches, which two workers
    # cannot share evenly; the global batches of 4 and 8 (fine-tuning) leave 1 window for the last step
    run_workers(cache, tmp_path, sets(requested_output=1000, max_epochs=2, patience=50, fine_tune_patience=50))
    state = chief_matches_one_process(tmp_path / "run0", cache, windows=33)
    valid = [row["valid_loss"] for row in state["history"]]
    assert state["finished"] and len(valid) == 4 and state["step"] == 12
    assert min(valid[1:]) < valid[0]  # the loss went down
    assert [row["batch_size"] for row in state["history"]] == [4, 4, 8, 8]  # the global batch, split in two
    assert json.loads((tmp_path / "run0" / "config.json").read_text())["replicas"] == 2


@pytest.mark.slow
def test_two_workers_when_one_has_no_validation_window(cache, tmp_path):
    # a window of 32773 output samples covers the 4-s validation track: 1 window, worker 1's share is empty
    run_workers(cache, tmp_path, [*sets(requested_output=32768), "--max-steps", "1"])
    state = chief_matches_one_process(tmp_path / "run0", cache, windows=1)
    assert state["epoch"] == 1 and state["step"] == 1


@pytest.mark.slow
def test_a_dead_worker_makes_the_other_fail_with_a_clear_message(cache, tmp_path):
    procs = start_workers(cache, tmp_path, sets(max_epochs=500, patience=500))
    chief_err = tmp_path / "worker0.err"
    deadline = time.time() + 600  # a guard against a hang, not a speed limit
    while "epoch 2 " not in chief_err.read_text() and time.time() < deadline and procs[0].poll() is None:
        time.sleep(0.2)
    assert "epoch 2 " in chief_err.read_text(), chief_err.read_text()[-2000:]
    procs[1].send_signal(signal.SIGKILL)
    procs[0].communicate(timeout=600)  # only a guard against a hang: the chief ends by itself, however slowly
    last = chief_err.read_text().strip().splitlines()[-1]
    assert procs[0].returncode == 1
    assert last.startswith("waveunet train: error: lost contact with another worker") and "--resume" in last


def in_fresh_python(code):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("cores, expected", [(1, [1, 0, 0]), (2, [2, 2, 1]), (8, [2, 2, 4]), (7, [2, 2, 3])])
def test_training_on_a_cpu_computes_two_parts_of_the_batch_at_once_sharing_the_cores(cores, expected):
    # [batch parts, ops at once, threads per op]; 0: TensorFlow's own choice, left alone on one core
    code = (f"import os, json; os.cpu_count = lambda: {cores}; "
            "from waveunet_tf.training.distribute import training_threads; parts = training_threads(); "
            "import tensorflow as tf; t = tf.config.threading; "
            "print(json.dumps([parts, t.get_inter_op_parallelism_threads(), t.get_intra_op_parallelism_threads()]))")
    assert in_fresh_python(code) == expected


def test_a_setting_tensorflow_refuses_is_reported_not_passed_over():
    # in a fresh process: once TensorFlow runs, its thread settings are fixed and setting them raises
    code = ("import tensorflow as tf; float(tf.constant(1.0) + 1.0); "
            "from waveunet_tf.training.distribute import training_threads; "
            "import json; notes = []; parts = training_threads(notes.append); print(json.dumps([parts, notes]))")
    parts, notes = in_fresh_python(code)
    assert parts == 1
    assert len(notes) == 1 and "TensorFlow already runs in this process" in notes[0], notes
