HELP = "windows per second delivered by training_dataset (with augmentation) and the peak memory"

DESCRIPTION = """Measure the training input pipeline: batches of the variant's training windows (input_length
mixture, output_length targets, the paper's gain augmentation) read lazily from a WAV cache, as model.fit gets
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


def _make_synthetic_cache(folder, sample_rate, minutes):
    """Runs in a child process: a synthetic dataset of ``minutes`` of audio, prepared at ``sample_rate``."""
    from pathlib import Path

    from data_pipeline import make_synthetic_dataset, prepare_cache
    tracks = 4
    root = make_synthetic_dataset(Path(folder) / "synth", tracks=tracks, test_tracks=0,
                                  seconds=60.0 * minutes / tracks, seed=0)
    prepare_cache(root, Path(folder) / "cache", sample_rate, wav=True)
    return str(Path(folder) / "cache")


def _cpu_seconds():
    """CPU time (user + system) of this process, all threads: what a window costs, whatever else runs."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(args):
    import statistics
    import sys
    import tempfile
    import time

    from waveunet_tf.commands.bench import peak_rss_mb, print_result
    from waveunet_tf.errors import UsageError
    for name in ("batches", "runs"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, not {getattr(args, name)}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    if not args.minutes > 0:
        raise UsageError(f"--minutes must be positive, not {args.minutes}")
    from waveunet_tf.config import variant_config
    config = variant_config(args.variant)
    batch = args.batch_size or config.batch_size
    with tempfile.TemporaryDirectory(prefix="waveunet-bench-input-") as tmp:
        cache = args.cache
        if cache is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            print(f"making a synthetic cache of {args.minutes:g} minutes at {config.sample_rate} Hz ...",
                  file=sys.stderr)
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
                cache = ex.submit(_make_synthetic_cache, tmp, config.sample_rate, args.minutes).result()
        from data_pipeline import training_dataset
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
