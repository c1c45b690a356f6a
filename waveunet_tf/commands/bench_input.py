import resource
import statistics
import sys
import time

from data_pipeline import training_dataset
from waveunet_tf.commands.bench_common import bench_cache, peak_rss_mb, print_result
from waveunet_tf.config import variant_config
from waveunet_tf.errors import UsageError

HELP = "windows per second delivered by training_dataset (with augmentation) and the peak memory"
TRACKS = 4  # the synthetic cache without --cache: --minutes of audio in this many tracks

DESCRIPTION = """Measure the training input pipeline: batches of the variant's training windows (input_length
mixture, output_length targets, the paper's gain augmentation) read lazily from a WAV cache, as training gets
them. Reports the median windows per second over --runs runs of --batches batches (after a warm-up), the CPU time
spent per window (all threads; it does not depend on what else the machine runs) and the process's peak resident
memory. Without --cache, a synthetic cache of a few minutes of audio is made first
(in a child process, so it does not count in the peak memory) and deleted afterwards."""


def add_arguments(p):
    p.add_argument("--variant", default="M4", help="variant whose shapes and sources to stream (default M4)")
    p.add_argument("--cache", metavar="CACHE", help="a prepared cache (default: a temporary synthetic one)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the variant's, 16)")
    p.add_argument("--batches", type=int, default=40, help="batches per run (default 40)")
    p.add_argument("--runs", type=int, default=5, help="runs; the median is reported (default 5)")
    p.add_argument("--minutes", type=float, default=4.0,
                   help="audio in the synthetic cache when --cache is not given (default 4)")
    p.add_argument("--json", action="store_true",
                   help='print one JSON document: {"variant", "windows_per_s", "peak_rss_mb"}')


def _cpu_seconds():
    """CPU time (user + system) of this process, all threads: what a window costs, whatever else runs."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(args):
    for name in ("batches", "runs"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, not {getattr(args, name)}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    if not args.minutes > 0:
        raise UsageError(f"--minutes must be positive, not {args.minutes}")
    config = variant_config(args.variant)
    batch = args.batch_size or config.batch_size
    with bench_cache(args.cache, config.sample_rate, TRACKS, 60.0 * args.minutes / TRACKS) as cache:
        it = iter(training_dataset(cache, config, batch, seed=0, augment=True))
        for _ in range(5):  # warm-up: tracing, thread pools, prefetch
            next(it)
        rates, cpu_ms = [], []
        for r in range(args.runs):
            cpu, start = _cpu_seconds(), time.perf_counter()
            for _ in range(args.batches):
                next(it)
            rates.append(args.batches * batch / (time.perf_counter() - start))
            cpu_ms.append(1000 * (_cpu_seconds() - cpu) / (args.batches * batch))
            if not args.json:
                print(f"run {r + 1}/{args.runs}: {rates[-1]:.0f} windows/s", file=sys.stderr)
    result = {"variant": config.name, "windows_per_s": round(statistics.median(rates), 1),
              "peak_rss_mb": peak_rss_mb()}
    print_result(result, args.json,
                 f"{config.name}: {result['windows_per_s']:.0f} windows/s (median of {args.runs} runs of "
                 f"{args.batches} batches of {batch}; input {config.input_length}, output {config.output_length} "
                 f"samples, {'+'.join(config.sources)}), {statistics.median(cpu_ms):.2f} ms of CPU per window, "
                 f"peak memory {result['peak_rss_mb']:.0f} MB")
    return 0
