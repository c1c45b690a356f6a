"""What the benchmarks share: the peak memory, the CPU's measured peak GFLOP/s, the JSON-or-text result, and the
synthetic cache they stream from when no --cache is given."""

import json
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from data_pipeline import make_synthetic_dataset, prepare_cache
from data_pipeline.workers import worker_pool
from waveunet_tf.model_io import WINDOWS_IN_FLIGHT


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports ru_maxrss in KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def peak_gflops(precisions, n: int = 4096, repeats: int = 3) -> dict:
    """{precision: GFLOP/s} of the best of ``repeats`` n x n TensorFlow matmuls (``2 n^3`` FLOPs) in each of
    ``precisions`` ("float32", "bfloat16"): what this CPU reaches on the densest work there is, measured in the
    same run as the model so that both see the same machine load."""
    import tensorflow as tf
    # where TensorFlow runs one thread per op (model_io.one_thread_per_window), one matmul per thread at once
    copies = WINDOWS_IN_FLIGHT if tf.config.threading.get_intra_op_parallelism_threads() == 1 else 1
    result = {}
    for precision in precisions:
        a = tf.random.stateless_normal([n, n], seed=[0, 1], dtype=tf.float32)
        a = tf.cast(a, precision)
        matmul = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x)))
        matmul(a).numpy()  # trace and warm the thread pools
        best = float("inf")
        with ThreadPoolExecutor(copies) as pool:
            for _ in range(repeats):
                t0 = time.perf_counter()
                list(pool.map(lambda _: matmul(a).numpy(), range(copies)))
                best = min(best, time.perf_counter() - t0)
        result[precision] = round(2 * n ** 3 * copies / best / 1e9, 1)
    return result


def print_result(result: dict, as_json: bool, text: str) -> None:
    """A bench's result: one JSON document on stdout with ``--json``, else the human-readable ``text``."""
    print(json.dumps(result) if as_json else text)


def _make_cache(folder: str, sample_rate: int, tracks: int, seconds: float) -> str:
    """Runs in a worker process: ``tracks`` synthetic train tracks of ``seconds`` prepared at ``sample_rate``."""
    root = make_synthetic_dataset(Path(folder) / "synth", tracks=tracks, test_tracks=0, seconds=seconds, seed=0)
    prepare_cache(root, Path(folder) / "cache", sample_rate, wav=True)
    return str(Path(folder) / "cache")


@contextmanager
def bench_cache(cache, sample_rate: int, tracks: int, seconds: float, quiet: bool = False):
    """Yield ``cache`` if given, else a temporary synthetic cache (deleted afterwards) of ``tracks`` tracks of
    ``seconds`` at ``sample_rate``, made in a worker process so that it does not count in our peak memory."""
    if cache is not None:
        yield cache
        return
    with tempfile.TemporaryDirectory(prefix="waveunet-bench-") as tmp:
        if not quiet:
            print(f"making a synthetic cache of {tracks} x {seconds:g} s at {sample_rate} Hz ...", file=sys.stderr)
        with worker_pool(1) as pool:
            made = pool.submit(_make_cache, tmp, sample_rate, tracks, seconds).result()
        yield made
