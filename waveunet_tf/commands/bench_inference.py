import statistics
import sys
import time

import numpy as np

import waveunet_tf
from waveunet_tf import flops, precision
from waveunet_tf.commands.bench_common import peak_gflops, peak_rss_mb, print_result
from waveunet_tf.errors import UsageError
from waveunet_tf.model_io import LoadedModel, one_thread_per_window
from waveunet_tf.resources import require_memory
from waveunet_tf.separate import plan_for, separate_array

HELP = "whole-song inference speed: the paper's windows vs the default long windows, GFLOP/s and peak memory"

DESCRIPTION = """Separate a synthetic stereo song with an untrained full-size variant (weights do not change the
speed), with the paper's windows and with `separate`'s default long windows, and report the median seconds of
compute per second of audio, the achieved GFLOP/s of the default windows (the network's convolutions counted once
from its layer sizes: 2 FLOPs per multiply-add, every window computed whole), the CPU's peak GFLOP/s measured in
the same run (a 4096 x 4096 matmul per precision) and the process's peak memory. Without --precision it measures
float32 and, on a CPU with native bfloat16, bfloat16 too; the JSON's top-level figures are those of `separate`'s
default precision, each measured precision's in "runs"."""


def add_arguments(p):
    p.add_argument("--variant", default="M4", help="paper variant, untrained full size (default: M4)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the stereo test song "
                   "(default: 60; 600 for the peak memory of a 10-minute song; a song whose arrays cannot fit in the "
                   "available memory is refused before the model is built)")
    p.add_argument("--rate", type=int, default=0, help="sample rate of the test song (default: the model's, so "
                   "the figures are the network's compute, windowing and stitching, like the official figures; "
                   "e.g. 44100 to include resampling to the model's rate and back)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per window kind; the median is reported "
                   "(default: 3)")
    p.add_argument("--precision", choices=precision.INFERENCE_CHOICES,
                   help="measure only this precision (auto: bfloat16 on a CPU with native bfloat16, else float32; "
                   "default: float32 and, where native, bfloat16)")
    p.add_argument("--window", type=int, metavar="SAMPLES", help="kept samples per default window instead of "
                   "separate's default (to measure window lengths)")
    p.add_argument("--json", action="store_true", help='print one JSON document: {"variant", "audio_s", '
                   '"paper_s_per_s", "default_s_per_s", "speedup", "peak_rss_mb", "precision", "gflops", '
                   '"peak_gflops", "runs"}')


def _precisions(asked):
    """The resolved precisions to measure, the headline one (separate's default unless told) first."""
    if asked is not None:
        return [precision.resolve(asked)]
    first = precision.resolve(precision.SEPARATE_DEFAULT)
    return [first] + [p for p in ("float32", "bfloat16") if p != first and (p == "float32" or precision.native_bf16())]


def _measure(cfg, model, song, rate, window, args):
    """Median seconds of compute per second of audio of separating ``song`` with ``window``."""
    warm = song[: min(len(song), 3 * cfg.input_length * rate // cfg.sample_rate)]
    separate_array(model, cfg, warm, rate, window=window)  # trace the function once
    runs = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        separate_array(model, cfg, song, rate, window=window)
        runs.append((time.perf_counter() - t0) / args.seconds)
        print(f"{cfg.name} {model.precision} {window} windows, run {i + 1}/{args.repeats}: {runs[-1]:.4f} s per s "
              "of audio", file=sys.stderr, flush=True)
    return statistics.median(runs)


def run(args):
    if not 0 < args.seconds < float("inf") or args.repeats < 1 or args.rate < 0:
        raise UsageError("--seconds must be positive, --repeats at least 1 and --rate positive")
    if args.window is not None and args.window < 1:
        raise UsageError(f"--window must be a positive number of samples, not {args.window}")
    precisions = _precisions(args.precision)
    cfg = waveunet_tf.variant_config(args.variant)
    # at the least, the float32 stereo song, its copy padded for the windows, and every source's stereo estimate
    frames = args.seconds * (args.rate or cfg.sample_rate)
    require_memory(frames * 2 * 4 * (2 + len(cfg.sources)), f"a test song of {args.seconds:g} s", "--seconds")
    rate = args.rate or cfg.sample_rate
    song = np.random.default_rng(0).standard_normal((int(args.seconds * rate), 2), dtype=np.float32)
    song *= 0.1
    window = args.window or "default"
    one_thread_per_window()  # as `separate` runs (before TensorFlow starts)
    runs = []
    for p in precisions:
        model = LoadedModel.of_keras(waveunet_tf.build_model(cfg, p), cfg)  # build_model imports TensorFlow
        default, paper = _measure(cfg, model, song, rate, window, args), _measure(cfg, model, song, rate, "paper", args)
        work = flops.plan_flops(cfg, plan_for(model, int(round(args.seconds * cfg.sample_rate)), window))
        runs.append({"precision": p, "default_s_per_s": round(default, 5), "paper_s_per_s": round(paper, 5),
                     "gflops": round(work / (default * args.seconds) / 1e9, 1)})
    peak = peak_gflops(precisions)
    head = runs[0]
    result = {"variant": cfg.name, "audio_s": round(args.seconds, 3), "paper_s_per_s": head["paper_s_per_s"],
              "default_s_per_s": head["default_s_per_s"],
              "speedup": round(head["paper_s_per_s"] / head["default_s_per_s"], 2), "peak_rss_mb": peak_rss_mb(),
              "precision": head["precision"], "gflops": head["gflops"], "peak_gflops": peak[head["precision"]],
              "runs": [{**r, "peak_gflops": peak[r["precision"]]} for r in runs]}
    lines = [f"{cfg.name}, {args.seconds:g} s stereo song, median of {args.repeats} runs, s of compute per s of "
             "audio:"]
    for r in result["runs"]:
        lines.append(f"  {r['precision']:8s} paper windows {r['paper_s_per_s']:.4f}, default windows "
                     f"{r['default_s_per_s']:.4f} ({r['paper_s_per_s'] / r['default_s_per_s']:.2f}x); "
                     f"{r['gflops']:.0f} GFLOP/s of the CPU's {r['peak_gflops']:.0f} (matmul peak)")
    lines.append(f"  peak RSS {result['peak_rss_mb']:.0f} MB")
    print_result(result, args.json, "\n".join(lines))
    return 0
