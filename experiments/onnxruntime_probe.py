"""Issue 17 point 6: is ONNX Runtime at least 1.3x faster than TensorFlow for M4 inference? (It was not: see the
README, "Inference speed".) Full-size M4 with random weights; two windows of 2^18 kept samples in flight, one
thread each, as `waveunet separate` runs TensorFlow; prints the best of 2 per round, seconds of compute per second
of output audio, and for `ort` the largest difference from TensorFlow's output.

ONNX Runtime is not a dependency: run it from a separate venv (onnx 1.17+ needs an ml_dtypes newer than
TensorFlow 2.16 allows, hence onnx 1.16.2):
    python3 -m venv /tmp/ortv
    /tmp/ortv/bin/pip install tensorflow-cpu==2.16.2 tf2onnx onnxruntime onnx==1.16.2
    PYTHONPATH=. /tmp/ortv/bin/python experiments/onnxruntime_probe.py tf     # TensorFlow
    PYTHONPATH=. /tmp/ortv/bin/python experiments/onnxruntime_probe.py ort    # ONNX Runtime
Alternate the two (tf ort tf ort ...): TensorFlow's threads are fixed per process.
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

from waveunet_tf.model_io import one_thread_per_window

MODE = sys.argv[1] if len(sys.argv) > 1 else "tf"
if MODE == "tf":
    assert one_thread_per_window(), "TensorFlow started before its threads could be set"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from waveunet_tf import build_model, shapes, variant_config  # noqa: E402

cfg = variant_config("M4")
model = build_model(cfg)
rng = np.random.RandomState(0)
for w in model.weights:
    w.assign((rng.randn(*w.shape) * 0.05).astype("float32"))
left, right = shapes.context(cfg)
wanted = 2**18 + left + right
n_in = min(n for n in shapes.nearest_valid_input_lengths(cfg, wanted) if n >= wanted)
x = (rng.randn(1, n_in, cfg.channels) * 0.1).astype("float32")
spec = tf.TensorSpec([None, None, cfg.channels], tf.float32, name="mixture")
forward = tf.function(lambda m: model(m, training=False), input_signature=[spec])
reference = {k: v.numpy() for k, v in forward(x).items()}
kept = reference[cfg.sources[0]].shape[1]

if MODE == "tf":
    def run():
        return forward(x)[cfg.sources[0]].numpy()
else:
    import onnxruntime as ort
    import tf2onnx
    path = "/tmp/waveunet_m4_probe.onnx"
    tf2onnx.convert.from_function(forward, input_signature=[spec], opset=17, output_path=path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {name: x})))
    worst = max(float(np.abs(v - reference[s]).max()) for k, v in outputs.items() for s in cfg.sources if s in k)
    print(f"largest difference from TensorFlow: {worst:.2e}")

    def run():
        return session.run(None, {name: x})

pool = ThreadPoolExecutor(2)
for round_ in range(3):
    times = []
    for _ in range(2):
        start = time.perf_counter()
        list(pool.map(lambda _: run(), range(2)))
        times.append(time.perf_counter() - start)
    print(f"round {round_} {MODE} s/s {min(times) / (2 * kept / cfg.sample_rate):.4f}")
