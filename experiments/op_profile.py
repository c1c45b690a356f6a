"""Per-op time shares of whole-song inference as `separate` runs it (issue 17).

    .venv/bin/python experiments/op_profile.py [VARIANT] [KEPT_SAMPLES] [ROUNDS]

Builds an untrained full-size VARIANT (default M4) in float32 with random weights and runs its inference function
(:func:`waveunet_tf.model_io.inference_function`, the one `separate` runs) as `separate` does on this machine: one
TensorFlow thread per op (:func:`waveunet_tf.model_io.one_thread_per_window`) and two windows of KEPT_SAMPLES kept
samples (default 2^18) in flight. ROUNDS (default 3) such pairs run under TensorFlow's profiler; prints the time of
each op type (summed over its nodes, median over the rounds) and its share of the ops' total. Run from the checkout
whose code you measure (uses ``inference_function`` when the checkout has it, else the same ``tf.function``).
"""

import collections
import glob
import json
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

import waveunet_tf
from waveunet_tf import model_io, shapes


DETAIL = collections.Counter()


def main(variant="M4", kept=2**18, rounds=3):
    model_io.one_thread_per_window()  # before TensorFlow starts, as `separate`
    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler

    cfg = waveunet_tf.variant_config(variant)
    model = waveunet_tf.build_model(cfg, "float32")
    rng = np.random.default_rng(1)
    for w in model.weights:
        w.assign(rng.uniform(-0.05, 0.05, w.shape).astype(np.float32))
    if hasattr(model_io, "inference_function"):
        forward = model_io.inference_function(model, cfg.channels)
    else:
        forward = tf.function(lambda x: model(x, training=False), autograph=False,
                              input_signature=[tf.TensorSpec([None, None, cfg.channels], tf.float32)])
    geometry = shapes.WindowGeometry.of(cfg)
    hop = shapes.hop_at_most(int(kept), geometry.step)
    n_in = geometry.window_input(hop)
    windows = [rng.uniform(-0.5, 0.5, (1, n_in, cfg.channels)).astype(np.float32) for _ in range(2)]
    forward(windows[0])  # trace

    def pair():
        threads = [threading.Thread(target=forward, args=(w,)) for w in windows]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    per_type, counts, walls = collections.defaultdict(list), {}, []
    for _ in range(int(rounds)):
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            t0 = time.perf_counter()
            pair()
            walls.append(time.perf_counter() - t0)
            tf.profiler.experimental.stop()
            xplane = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
            trace = json.loads(_pywrap_profiler.xspace_to_tools_data([xplane], "trace_viewer@", {})[0])
        totals, nodes = collections.Counter(), collections.Counter()
        for e in trace["traceEvents"]:
            if e.get("ph") == "X" and "is_eager" in e.get("args", {}):
                totals[e["name"]] += e["dur"]
                nodes[e["name"]] += 1
                if DETAIL:
                    DETAIL[trace["stackFrames"][str(e["sf"])]["name"]] += e["dur"]
        for op, us in totals.items():
            per_type[op].append(us)
        counts = nodes
    medians = {op: statistics.median(v) for op, v in per_type.items()}
    total = sum(medians.values())
    print(f"{variant} float32, two windows of {hop} kept samples ({n_in} in) in flight, one thread per op, median "
          f"of {rounds} rounds: {statistics.median(walls):.3f} s wall per pair "
          f"({statistics.median(walls) / (2 * hop / cfg.sample_rate):.4f} s per s of audio), {total / 1e6:.3f} s "
          "summed over ops")
    for op, us in sorted(medians.items(), key=lambda kv: -kv[1]):
        if us / total >= 0.0005:
            print(f"  {op:28s} {us / 1e6:8.4f} s  {100 * us / total:5.1f}%  ({counts[op] // 2} per window)")


    if DETAIL:
        for name, us in DETAIL.most_common(20):
            print(f"  {name:70s} {us / 1e6 / int(rounds):8.4f} s")


if __name__ == "__main__":
    if "--nodes" in sys.argv:  # also the 20 slowest nodes
        sys.argv.remove("--nodes")
        DETAIL["--nodes"] = 0
    main(*[int(a) if i else a for i, a in enumerate(sys.argv[1:])])
