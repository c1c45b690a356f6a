"""Whole-song inference speed and peak memory for one window length and thread setting (issue 17, point 2).

    .venv/bin/python experiments/window_sweep.py VARIANT THREADS_PER_WINDOW WINDOWS_IN_FLIGHT KEPT SECONDS RATE REPEATS

Runs `separate`'s path (:func:`waveunet_tf.separate.separate_array`: the stream of windows, resampling when RATE
differs from the model's) with an untrained full-size VARIANT in float32 over SECONDS of stereo noise at RATE Hz,
with windows of at most KEPT kept samples, WINDOWS_IN_FLIGHT at once, each op on THREADS_PER_WINDOW threads
(1 with 2 in flight is `separate`'s setting on 2 cores; 2 with 1 in flight is one window on both cores). After one
untimed run that traces, REPEATS timed runs; prints one JSON line: wall seconds per second of audio (each run and
the median), the process's peak RSS (MB) and the 1-minute load. One process per setting; alternate settings.
"""

import json
import resource
import statistics
import sys
import time

variant, per_window, in_flight, kept, seconds, rate, repeats = sys.argv[1:8]
per_window, in_flight, kept, rate, repeats = int(per_window), int(in_flight), int(kept), int(rate), int(repeats)
seconds = float(seconds)
import tensorflow as tf  # noqa: E402  (threads are set before TensorFlow starts)

tf.config.threading.set_intra_op_parallelism_threads(per_window)
tf.config.threading.set_inter_op_parallelism_threads(in_flight)
import numpy as np  # noqa: E402

import waveunet_tf  # noqa: E402
from waveunet_tf.model_io import LoadedModel  # noqa: E402
from waveunet_tf.separate import separate_array  # noqa: E402

cfg = waveunet_tf.variant_config(variant)
model = LoadedModel.of_keras(waveunet_tf.build_model(cfg, "float32"), cfg)
model.concurrency = in_flight
rate = rate or cfg.sample_rate
song = np.random.default_rng(0).standard_normal((int(seconds * rate), 2), dtype=np.float32)
song *= 0.1
separate_array(model, cfg, song[: min(len(song), 3 * cfg.input_length * rate // cfg.sample_rate)], rate,
               window=kept)  # trace
walls = []
for _ in range(repeats):
    t0 = time.perf_counter()
    separate_array(model, cfg, song, rate, window=kept)
    walls.append((time.perf_counter() - t0) / seconds)
print(json.dumps({"setting": sys.argv[1:8], "wall": [round(w, 5) for w in walls],
                  "wall_median": round(statistics.median(walls), 5),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "load": open("/proc/loadavg").read().split()[0]}), flush=True)
