import statistics
import sys
import time

import numpy as np

import waveunet_tf
from waveunet_tf.commands.bench_common import peak_rss_mb, print_result
from waveunet_tf.errors import UsageError
from waveunet_tf.model_io import LoadedModel
from waveunet_tf.resources import require_memory
from waveunet_tf.separate import separate_array

HELP = "whole-song inference speed: the paper's windows vs the default long windows, and peak memory"


def add_arguments(p):
    p.add_argument("--variant", default="M4", help="paper variant, untrained full size (weights do not change "
                   "the speed) (default: M4)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the stereo test song "
                   "(default: 60; 600 for the peak memory of a 10-minute song; a song whose arrays cannot fit in the "
                   "available memory is refused before the model is built)")
    p.add_argument("--rate", type=int, default=0, help="sample rate of the test song (default: the model's, so "
                   "the figures are the network's compute, windowing and stitching, like the official figures; "
                   "e.g. 44100 to include resampling to the model's rate and back)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per window kind; the median is reported "
                   "(default: 3)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def run(args):
    if not 0 < args.seconds < float("inf") or args.repeats < 1 or args.rate < 0:
        raise UsageError("--seconds must be positive, --repeats at least 1 and --rate positive")
    cfg = waveunet_tf.variant_config(args.variant)
    # at the least, the float32 stereo song, its copy padded for the windows, and every source's stereo estimate
    frames = args.seconds * (args.rate or cfg.sample_rate)
    require_memory(frames * 2 * 4 * (2 + len(cfg.sources)), f"a test song of {args.seconds:g} s", "--seconds")
    model = LoadedModel.of_keras(waveunet_tf.build_model(cfg), cfg)  # build_model imports TensorFlow
    rate = args.rate or cfg.sample_rate
    song = np.random.default_rng(0).standard_normal((int(args.seconds * rate), 2), dtype=np.float32)
    song *= 0.1
    warm = song[: min(len(song), 3 * cfg.input_length * rate // cfg.sample_rate)]

    def timed(window):
        separate_array(model, cfg, warm, rate, window=window)  # trace the function once
        runs = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            separate_array(model, cfg, song, rate, window=window)
            runs.append((time.perf_counter() - t0) / args.seconds)
            print(f"{cfg.name} {window} windows, run {i + 1}/{args.repeats}: {runs[-1]:.4f} s per s of audio",
                  file=sys.stderr, flush=True)
        return statistics.median(runs)

    default = timed("default")
    paper = timed("paper")
    result = {"variant": cfg.name, "audio_s": round(args.seconds, 3), "paper_s_per_s": round(paper, 5),
              "default_s_per_s": round(default, 5), "speedup": round(paper / default, 2),
              "peak_rss_mb": peak_rss_mb()}
    print_result(result, args.json,
                 f"{cfg.name}, {args.seconds:g} s stereo song, median of {args.repeats} runs:\n"
                 f"  paper windows   {paper:.4f} s compute per s of audio\n"
                 f"  default windows {default:.4f} s compute per s of audio\n"
                 f"  speedup         {paper / default:.2f}x\n"
                 f"  peak RSS        {result['peak_rss_mb']:.0f} MB")
    return 0
