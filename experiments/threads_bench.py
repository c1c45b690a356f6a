"""Whole-song M4 inference under one thread setting, to compare threads, windows in flight and window length.

    .venv/bin/python experiments/threads_bench.py INTRA INTER CONCURRENCY WINDOW SECONDS REPEATS

INTRA / INTER: TensorFlow's intra-op / inter-op threads (0: TensorFlow's default), set before it starts;
CONCURRENCY: windows in flight (`run_windows`); WINDOW: kept samples per window. Runs an untrained full-size M4 over
SECONDS of stereo noise (after one untimed run that traces) and prints one JSON line: per-run wall seconds and
CPU seconds (`time.process_time`) per second of audio, their medians, the peak memory and the 1-minute load. Run the settings
alternating, one process each, e.g. the package's default before and after model_io.WINDOWS_IN_FLIGHT:
    for i in 1 2 3; do for c in "0 0 1 524288" "1 2 2 262144"; do
        .venv/bin/python experiments/threads_bench.py $c 47 3 2>/dev/null; done; done
"""

import json
import resource
import statistics
import sys
import time

intra, inter, concurrency, window, seconds, repeats = (int(a) for a in sys.argv[1:7])
import tensorflow as tf  # noqa: E402  (threads are set before TensorFlow starts)

if intra:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
if inter:
    tf.config.threading.set_inter_op_parallelism_threads(inter)
import numpy as np  # noqa: E402

import waveunet_tf  # noqa: E402
from waveunet_tf.model_io import LoadedModel  # noqa: E402
from waveunet_tf.separate import plan_for, run_windows  # noqa: E402

cfg = waveunet_tf.variant_config("M4")
model = LoadedModel.of_keras(waveunet_tf.build_model(cfg), cfg)
song = (0.1 * np.random.default_rng(0).standard_normal((int(seconds * cfg.sample_rate), 2))).astype(np.float32)
plan = plan_for(model, len(song), window)
run_windows(model.predict, plan, song, model.sources, concurrency=concurrency)  # trace
walls, cpus = [], []
for _ in range(repeats):
    w0, c0 = time.perf_counter(), time.process_time()
    run_windows(model.predict, plan, song, model.sources, concurrency=concurrency)
    walls.append((time.perf_counter() - w0) / seconds)
    cpus.append((time.process_time() - c0) / seconds)
print(json.dumps({"setting": sys.argv[1:7], "windows": plan.count, "wall": walls, "cpu": cpus,
                  "wall_median": statistics.median(walls), "cpu_median": statistics.median(cpus),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "load": open("/proc/loadavg").read().split()[0]}), flush=True)
