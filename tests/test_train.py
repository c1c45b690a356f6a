"""`waveunet train` in real runs: what only a run shows (kill -9 and --resume, the lock held by a running trainer,
checkpoint leftovers, a checkpoint that misses variables, best.keras's fingerprint, logs redirected to a file).
The protocol itself is tested without TensorFlow in test_protocol.py."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

RATE = 8192
TINY = ["--variant", "M4", "--set", f"sample_rate={RATE}", "--set", "num_layers=3", "--set", "num_initial_filters=4",
        "--set", "requested_output=512", "--set", "batch_size=4"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A synthetic cache at 8192 Hz: two training tracks and one validation track of 4 s."""
    import data_pipeline
    root = tmp_path_factory.mktemp("train-data")
    data_pipeline.make_synthetic_dataset(root / "synth", tracks=3, test_tracks=0, seconds=4, seed=1)
    data_pipeline.prepare_cache(root / "synth", root / "cache", RATE, wav=True)
    return str(root / "cache")


def waveunet(*args, timeout=300, stderr=subprocess.PIPE):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "waveunet_tf.cli", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=stderr, text=True, env=env, timeout=timeout)


def history(run_dir):
    with open(Path(run_dir) / "history.csv") as f:
        return list(csv.DictReader(f))


def sets(**kw):
    return [x for k, v in kw.items() for x in ("--set", f"{k}={v}")]


def test_bad_input_gets_one_clear_line(cache, tmp_path, capsys):
    from waveunet_tf.cli import main

    def fails(args, expected, code):
        assert main(["train", *map(str, args)]) == code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("waveunet train: error:"), err
        assert expected in err[0], err[0]

    run = tmp_path / "run"
    fails(["--variant", "M9", "--cache", cache, "--run-dir", run], "unknown variant 'M9'", 2)
    fails(["--variant", "M4", "--cache", cache, "--run-dir", run], f"--sample-rate {22050}", 1)
    fails([*TINY, "--set", "sources=bass,guitar", "--set", "output_type=direct", "--cache", cache, "--run-dir", run],
          "guitar", 1)
    (tmp_path / "file").write_text("not a folder")
    fails([*TINY, "--cache", cache, "--run-dir", tmp_path / "file" / "run"], "cannot write to the run dir", 1)
    run.mkdir()
    (run / "config.json").write_text("{}")
    fails([*TINY, "--cache", cache, "--run-dir", run], "is not a run dir of this package", 2)
    assert (run / "config.json").read_text() == "{}"  # nothing overwritten

    import data_pipeline
    data_pipeline.make_synthetic_dataset(tmp_path / "one", tracks=1, test_tracks=0, seconds=2, seed=0)
    data_pipeline.prepare_cache(tmp_path / "one", tmp_path / "one-cache", RATE, wav=True)
    capsys.readouterr()  # prepare's own warning about the missing validation split
    fails([*TINY, "--cache", tmp_path / "one-cache", "--run-dir", tmp_path / "run2"], "has no valid tracks", 1)


def test_the_progress_bar_only_in_a_terminal(monkeypatch):
    import fcntl
    import io
    import struct
    import termios

    from waveunet_tf.training.loop import Progress

    def epoch(stderr):
        monkeypatch.setattr(sys, "stderr", stderr)
        lines = []
        progress = Progress(True, lines.append, 100, 0, "epoch 1 (stage 1)")
        for step in range(1, 101):
            progress.update(step, 0.25)
        progress.close()
        return lines

    log = io.StringIO()
    assert epoch(log) == [f"epoch 1 (stage 1): step {n}/100, loss 0.25000" for n in (25, 50, 75)]
    assert log.getvalue() == ""  # the lines go through the run's log, once each
    master, replica = os.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    received = []
    reader = threading.Thread(target=lambda: received.extend(iter(lambda: _read(master), b"")))
    reader.start()  # a terminal's buffer is small: read while the bar is drawn
    with os.fdopen(replica, "w") as tty:
        assert epoch(tty) == []
    reader.join(timeout=10)
    os.close(master)
    drawn = b"".join(received).decode()
    assert "epoch 1 (stage 1)" in drawn and "100/100" in drawn and "\r" in drawn  # tqdm redraws in place


def _read(fd):
    try:
        return os.read(fd, 4096)
    except OSError:  # the terminal was closed
        return b""


def write_model_only_checkpoint(run_dir):
    """Replace the checkpoint state.json names by one of the model without its optimizer."""
    import tensorflow as tf

    from waveunet_tf.builder import build_model
    from waveunet_tf.config import WaveUNetConfig
    state = json.loads((run_dir / "state.json").read_text())
    prefix = run_dir / "checkpoints" / state["checkpoint"]
    for f in prefix.parent.glob(prefix.name + ".*"):
        f.unlink()
    tf.train.Checkpoint(model=build_model(WaveUNetConfig.from_json(run_dir / "config.json"))).write(str(prefix))


@pytest.mark.slow
def test_kill_9_then_resume_finishes_the_epochs_of_an_uninterrupted_run(cache, tmp_path):
    protocol = [*TINY, "--no-progress", *sets(steps_per_epoch=5, max_epochs=1, patience=50, fine_tune_patience=50),
                "--cache", cache]

    # max_epochs 1 per stage, patience never runs out: one epoch of training, one of fine-tuning
    expected = [("1", "1"), ("2", "2")]

    # the first epoch, then a pause (--max-steps): a state every machine reaches, however fast or slow
    killed = tmp_path / "killed"
    state_file = killed / "state.json"
    r = waveunet("train", *protocol, "--run-dir", killed, "--max-steps", 5)
    assert r.returncode == 0, r.stderr
    paused = json.loads(state_file.read_text())
    assert paused["epoch"] == 1 and not paused["finished"]
    damaged = tmp_path / "damaged"
    shutil.copytree(killed, damaged)
    # a second trainer on a run dir in use is refused (issue 12 #14); here this process holds it
    from waveunet_tf.files import process_lock
    from waveunet_tf.training.run_dir import LOCK
    with process_lock(killed / LOCK, f"run dir {killed}"):
        second = waveunet("train", *protocol, "--run-dir", killed, "--resume")
    assert second.returncode == 1, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"waveunet train: error: run dir {killed} is in use by another process (pid {os.getpid()}); wait for it to "
        "finish or stop it first"]
    # resumed, then killed with SIGKILL once it trains again: wherever the kill lands, the next --resume ends
    # with the history of an uninterrupted run
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    log = tmp_path / "killed.err"
    with open(log, "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "waveunet_tf.cli", "train", *protocol, "--run-dir", str(killed),
                              "--resume"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 600  # a guard against a hang, not a speed limit
    while p.poll() is None and "resuming" not in log.read_text():
        assert time.time() < deadline, log.read_text()
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    at_kill = json.loads(state_file.read_text())
    if not at_kill["finished"]:  # what a kill during a checkpoint write leaves behind (issue 12 #1): never fatal
        (killed / "checkpoints" / "best-00002_temp").mkdir()
        (killed / "checkpoints" / "best-00002_temp" / "part-00000-of-00001.index").write_bytes(b"")

    r = waveunet("train", *protocol, "--run-dir", killed, "--resume")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(killed)
    if not at_kill["finished"]:
        assert f"resuming {killed} at epoch {at_kill['epoch'] + 1}" in r.stderr
        assert "fine-tuning stage ended: max_epochs 1 reached" in r.stderr.strip().splitlines()[-1]
    assert [(row["epoch"], row["stage"]) for row in history(killed)] == expected  # no epoch repeated or lost
    state = json.loads(state_file.read_text())
    assert state["finished"] and state["epoch"] == 2 and state["step"] == 10
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == sorted(
        f"{name}.{ext}" for name in {state["checkpoint"], state["best_checkpoint"]}
        for ext in ("index", "data-00000-of-00001"))
    # the run dir holds everything the protocol promises; best.keras is the model state.json's fingerprint names
    config = json.loads((killed / "config.json").read_text())
    assert config["package_versions"]["tensorflow"] == "2.16.2" and config["num_layers"] == 3
    assert config["precision"] == "float32"  # the compute precision the run trained in
    assert (killed / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert list((killed / "logs").glob("events.out.tfevents.*"))
    from waveunet_tf.fingerprint import model_fingerprint
    from waveunet_tf.model_io import load_model
    model, cfg = load_model(killed / "best.keras")
    assert cfg.num_layers == 3 and model_fingerprint(model, cfg) == state["best_fingerprint"]

    r = waveunet("train", *protocol, "--run-dir", killed, "--resume")  # a finished run stays finished
    assert r.returncode == 0 and "already finished" in r.stderr and len(history(killed)) == 2

    # a checkpoint that misses variables fails --resume with one line naming one (issue 13)
    write_model_only_checkpoint(damaged)
    r = waveunet("train", *protocol, "--run-dir", damaged, "--resume")
    last = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(last) == 1, r.stderr
    assert "does not match the model and optimizer" in last[0] and "missing from it, e.g. adam/" in last[0], last


@pytest.mark.slow
def test_a_redirected_log_gets_a_few_lines_per_epoch(cache, tmp_path):
    # issue 12 #8: with stderr in a file, no progress-bar redraws: a 100-step epoch writes well under 4 kB
    run, log = tmp_path / "run", tmp_path / "log"
    with open(log, "w") as err:
        r = waveunet("train", *TINY, *sets(steps_per_epoch=100), "--max-steps", 100, "--cache", cache,
                     "--run-dir", run, stderr=err)
    text = log.read_text()
    assert r.returncode == 0, text
    assert "\r" not in text and len(text.encode()) < 4096, text
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["epoch 1 (stage 1)"] * 3  # steps 25, 50, 75 of 100
    assert any(line.startswith("epoch 1 (stage 1): train loss") for line in lines) and len(lines) <= 8, lines


def test_a_bfloat16_run_trains_in_bfloat16_keeps_float32_weights_and_says_so(cache, tmp_path):
    # WAVEUNET_NATIVE_BF16=1: as on a CPU with native bfloat16 (bfloat16 runs emulated on one without)
    run = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", WAVEUNET_NATIVE_BF16="1")
    r = subprocess.run([sys.executable, "-m", "waveunet_tf.cli", "train", *TINY, *sets(steps_per_epoch=2),
                        "--max-steps", "2", "--cache", cache, "--run-dir", str(run), "--precision", "bfloat16",
                        "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "config.json").read_text())["precision"] == "bfloat16"
    from waveunet_tf.model_io import load_model
    model, _ = load_model(run / "best.keras")
    assert model.weights and all(w.dtype == "float32" for w in model.weights)  # only the compute was bfloat16
    assert float(history(run)[-1]["valid_loss"]) > 0
