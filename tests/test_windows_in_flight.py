"""Two windows in flight, one TensorFlow thread each (model_io.one_thread_per_window): it applies in a fresh
process, separate_array then runs two half-length windows at once, and the stems equal one window on all threads.
Each check runs in a child process, since TensorFlow's thread pools are fixed when it starts."""

import subprocess
import sys
import textwrap

import numpy as np

SETUP = """
import os, threading
import numpy as np
os.cpu_count = lambda: 2  # the decision depends on the core count: pin it
from waveunet_tf import build_model, shapes, variant_config
from waveunet_tf import model_io
from waveunet_tf.separate import run_windows, separate_array
"""


def run_child(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SETUP) + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_windows_in_flight_give_the_stems_of_one_window_on_every_thread():
    run_child("""
    assert model_io.one_thread_per_window()  # before TensorFlow starts: it applies
    import tensorflow as tf
    assert tf.config.threading.get_intra_op_parallelism_threads() == 1
    cfg = variant_config("M4", num_layers=4, num_initial_filters=4, requested_output=200)
    model = build_model(cfg)
    rng = np.random.RandomState(0)
    for w in model.weights:
        w.assign(rng.randn(*w.shape).astype("float32") * 0.3)
    loaded = model_io.LoadedModel.of_keras(model, cfg)
    assert (loaded.concurrency, loaded.max_hop) == (2, shapes.DEFAULT_MAX_HOP // 2)

    # count the windows running at once: each waits (at most 20 s) for a second one to start
    lock, both, state, inner = threading.Lock(), threading.Event(), {"now": 0, "most": 0}, loaded._predict
    def predict(windows):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            if state["now"] == 2:
                both.set()
        both.wait(20)
        try:
            return inner(windows)
        finally:
            with lock:
                state["now"] -= 1
    loaded._predict = predict

    song = (np.random.RandomState(1).randn(400000, 2) * 0.1).astype(np.float32)  # 2 windows of 2^18, 1 of 2^19
    ours = separate_array(loaded, cfg, song, cfg.sample_rate)
    assert state["most"] == 2, state
    loaded._predict = inner
    one = run_windows(loaded.predict, shapes.plan_aligned(loaded.geometry, len(song), shapes.DEFAULT_MAX_HOP),
                      song, cfg.sources, concurrency=1)
    for s in cfg.sources:
        assert np.abs(one[s]).max() > 1e-3
        np.testing.assert_allclose(ours[s], one[s], rtol=0, atol=1e-5)
    """)


def test_a_started_tensorflow_keeps_one_window_on_every_thread():
    run_child("""
    import tensorflow as tf
    tf.constant(1.0) + 1.0  # TensorFlow has started: its threads can no longer change
    assert not model_io.one_thread_per_window()
    cfg = variant_config("M4", num_layers=4, num_initial_filters=4, requested_output=200)
    loaded = model_io.LoadedModel.of_keras(build_model(cfg), cfg)
    assert (loaded.concurrency, loaded.max_hop) == (1, shapes.DEFAULT_MAX_HOP)
    """)


def test_the_library_leaves_threads_alone_and_the_cli_chooses_them(tmp_path):
    """Loading a model (Separator, load_any_model) changes no process-wide TensorFlow setting; `waveunet separate`
    chooses one thread per op itself, before it loads the model."""
    import soundfile as sf
    cfg = variant_config_small()
    from waveunet_tf import build_model
    build_model(cfg).save(tmp_path / "tiny.keras")
    sf.write(tmp_path / "song.wav", (np.random.RandomState(0).randn(30000, 2) * 0.1).astype("float32"), 22050)
    run_child(f"""
    from waveunet_tf import Separator
    sep = Separator({str(tmp_path / "tiny.keras")!r})
    import tensorflow as tf
    assert tf.config.threading.get_intra_op_parallelism_threads() == 0  # TensorFlow's own default: untouched
    assert sep.model.concurrency == 1
    """)
    run_child(f"""
    from waveunet_tf.cli import main
    assert main(["separate", {str(tmp_path / "song.wav")!r}, "--model", {str(tmp_path / "tiny.keras")!r},
                 "-o", {str(tmp_path / "out")!r}]) == 0
    import tensorflow as tf
    assert tf.config.threading.get_intra_op_parallelism_threads() == 1
    assert tf.config.threading.get_inter_op_parallelism_threads() == 2
    """)
    assert sorted(p.name for p in (tmp_path / "out" / "song").glob("*.wav")) == ["accompaniment.wav", "vocals.wav"]


def variant_config_small():
    from waveunet_tf import variant_config
    return variant_config("M4", num_layers=4, num_initial_filters=4, requested_output=200)
