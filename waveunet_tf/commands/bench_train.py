import statistics
import sys
import time

import data_pipeline
from waveunet_tf import flops, precision
from waveunet_tf.commands.bench_common import bench_cache, peak_gflops, peak_rss_mb, print_result
from waveunet_tf.config import resolve_config
from waveunet_tf.errors import UsageError
from waveunet_tf.training import Trainer, distribute, segment_seed

HELP = "seconds per training step (median after warm-up), examples/s, input waiting and peak memory"

DESCRIPTION = """Measure the training step of `waveunet train`: the same model, Adam optimizer, loss, distributed
step and prefetching tf.data stream, on the variant's full training windows. Reports the median seconds per
step after --warmup steps (tracing and compilation excluded), examples per second, the total time the step
waited for its next batch (input_wait_s; 0 means the input pipeline kept ahead), the achieved GFLOP/s (the
network's convolutions counted from its layer sizes, the backward pass as twice the forward), the CPU's peak
GFLOP/s measured in the same run (a 4096 x 4096 matmul) and the process's peak resident memory. Without
--precision it measures float32 and, on a CPU with native bfloat16, bfloat16 too; the JSON's top-level figures are
float32's, each precision's in "runs". Without --cache, a small synthetic cache is made first (in a child process, so it does not
count in the peak memory) and deleted afterwards."""


def add_arguments(p):
    p.add_argument("--variant", default="M4", help="variant to train (default M4)")
    p.add_argument("--cache", metavar="CACHE", help="a prepared cache (default: a temporary synthetic one)")
    p.add_argument("--batch-size", type=int, help="global batch size (default: the variant's)")
    p.add_argument("--steps", type=int, default=5, help="measured steps (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="steps before measuring (default 2)")
    p.add_argument("--jit", action="store_true", help="compile the step with XLA, as `train --jit`")
    p.add_argument("--quick", action="store_true", help="the --quick preset of the variant")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="override one config key (repeatable)")
    p.add_argument("--precision", choices=precision.TRAINING_CHOICES,
                   help="measure only this precision, as `train --precision` (default: float32 and, on a CPU with "
                   "native bfloat16, bfloat16)")
    p.add_argument("--json", action="store_true", help='print one JSON document: {"variant", "batch_size", '
                   '"step_s_median", "examples_per_s", "input_wait_s", "peak_rss_mb", "precision", "gflops", '
                   '"peak_gflops", "runs"}')


def measure(config, cache, batch_size, steps, warmup, log=None, precision="float32", batch_parts=1):
    """Time ``steps`` training steps in ``precision`` after ``warmup`` -> (per-step seconds, per-step input waits);
    ``batch_parts`` as :func:`~waveunet_tf.training.distribute.training_threads` returns it."""
    strategy, _ = distribute.make_strategy("default")
    trainer = Trainer(config, strategy, precision, batch_parts=batch_parts)

    def train_data(batch, seed):
        return data_pipeline.training_dataset(cache, config, batch, seed=seed)

    stream = trainer.training_stream(train_data, batch_size, segment_seed(config, 0))
    step_s, wait_s = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(stream)
        t1 = time.perf_counter()
        trainer.train_step(batch, batch_size)
        t2 = time.perf_counter()
        if log:
            log(f"step {i + 1}/{warmup + steps}{' (warm-up)' if i < warmup else ''}: {t2 - t0:.3f} s, "
                f"waited {t1 - t0:.3f} s for input")
        if i >= warmup:
            step_s.append(t2 - t0)
            wait_s.append(t1 - t0)
    return step_s, wait_s


def _precisions(asked):
    """The checked precisions to measure, float32 first where it is measured."""
    if asked == "float16":
        precision.require_gpu_for_float16()
    if asked is not None:
        return [precision.resolve_training(asked)]
    return ["float32"] + (["bfloat16"] if precision.native_bf16() else [])


def run(args):
    if args.steps < 1 or args.warmup < 0:
        raise UsageError(f"--steps must be at least 1 and --warmup at least 0 (got {args.steps}, {args.warmup})")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    precisions = _precisions(args.precision)
    config = resolve_config(args.variant, None, args.sets, args.quick, args.jit)
    notes = []  # said when the measurement starts, not before a refusal (as `train`)
    parts = distribute.training_threads(notes.append)  # as `train`, before TensorFlow starts
    batch = args.batch_size or config.batch_size
    log = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    runs = []
    with bench_cache(args.cache, config.sample_rate, tracks=3, seconds=20, quiet=args.json) as cache:
        for line in notes:
            print(line, file=sys.stderr)
        for p in precisions:
            step_s, wait_s = measure(config, cache, batch, args.steps, args.warmup, log, p, parts)
            median = statistics.median(step_s)
            runs.append({"precision": p, "step_s_median": round(median, 4), "examples_per_s": round(batch / median, 3),
                         "input_wait_s": round(sum(wait_s), 4),
                         "gflops": round(flops.step_flops(config, batch) / median / 1e9, 1)})
    peak = peak_gflops([p for p in precisions if p != "float16"])
    runs = [{**r, "peak_gflops": peak.get(r["precision"])} for r in runs]
    head = runs[0]
    result = {"variant": config.name, "batch_size": batch, **{k: head[k] for k in (
              "step_s_median", "examples_per_s", "input_wait_s")}, "peak_rss_mb": peak_rss_mb(),
              "precision": head["precision"], "gflops": head["gflops"], "peak_gflops": head["peak_gflops"],
              "runs": runs}
    lines = [f"{config.name}{' (jit)' if config.jit_compile else ''}, batch {batch}, median of {args.steps} steps:"]
    for r in runs:
        of_peak = "" if r["peak_gflops"] is None else f" of the CPU's {r['peak_gflops']:.0f} (matmul peak)"
        lines.append(f"  {r['precision']:8s} {r['step_s_median']:.3f} s/step, {r['examples_per_s']:.2f} examples/s, "
                     f"{r['gflops']:.0f} GFLOP/s{of_peak}, waited {r['input_wait_s']:.3f} s for input in total")
    lines.append(f"  peak memory {result['peak_rss_mb']:.0f} MB")
    print_result(result, args.json, "\n".join(lines))
    return 0
