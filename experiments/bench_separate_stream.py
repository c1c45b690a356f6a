"""Benchmark of streamed `waveunet separate` (issue 18): peak memory by song length, and wall time against an
older checkout's in-memory path. Not a test: it prints measured figures for the README.

    python experiments/bench_separate_stream.py memory --minutes 1 60
    python experiments/bench_separate_stream.py speed --minutes 3 --runs 3 --old /tmp/old/run_old.py
    python experiments/bench_separate_stream.py live --variant M4 --window 16384 --seconds 60

The model is a small untrained M4 (4 layers, 4 filters: the tests' tiny model), so the figures show what the
pipeline around the network costs. Peak memory is the maximum resident set size of the `separate` process
(/usr/bin/time %M). ``--old`` is a script running an older checkout's CLI (same arguments): e.g. ``git archive
2484e1b waveunet_tf data_pipeline | tar -x -C /tmp/old`` and a script that puts /tmp/old first on ``sys.path``
(removing the editable install's finder from ``sys.meta_path``) and calls ``waveunet_tf.cli.main``. ``live``
streams noise through an untrained full-size variant in 4096-sample blocks and prints the real-time factor.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from waveunet_tf import build_model, variant_config

RATE = 44100


def small_model(folder: Path) -> Path:
    cfg = variant_config("M4", num_layers=4, num_initial_filters=4, requested_output=200)
    model = build_model(cfg)
    rng = np.random.RandomState(0)
    for w in model.weights:
        w.assign(rng.randn(*w.shape).astype("float32") * 0.3)
    path = folder / "small.keras"
    model.save(path)
    return path


def song(folder: Path, minutes: float) -> Path:
    """A 44.1 kHz stereo 16-bit WAV of noise, written a minute at a time."""
    path = folder / f"song_{minutes:g}min.wav"
    rng = np.random.RandomState(0)
    with sf.SoundFile(path, "w", RATE, 2, "PCM_16") as f:
        left = int(minutes * 60 * RATE)
        while left:
            n = min(left, 60 * RATE)
            f.write((rng.randn(n, 2) * 0.1).astype(np.float32))
            left -= n
    return path


def run(cli, audio: Path, model: Path, out: Path) -> tuple[float, float]:
    """(peak MB, seconds) of one `separate` process."""
    cmd = ["/usr/bin/time", "-f", "%M %e", *cli, "separate", str(audio), "--model", str(model), "-o", str(out),
           "--force"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(res.stderr)
    kb, seconds = res.stderr.strip().splitlines()[-1].split()
    return int(kb) / 1024, float(seconds)


def live(variant: str, window: int, seconds: float) -> None:
    """The real-time factor of `Separator.stream` on 44.1 kHz stereo arriving in 4096-sample blocks."""
    import time

    from waveunet_tf import Separator
    from waveunet_tf.model_io import LoadedModel
    cfg = variant_config(variant)
    sep = Separator(LoadedModel.of_keras(build_model(cfg), cfg), window=window)
    x = (np.random.RandomState(0).randn(int(seconds * RATE), 2) * 0.1).astype(np.float32)
    list(sep.stream([x[:4 * RATE]], RATE))  # trace the function once
    start = time.monotonic()
    for _ in sep.stream((x[i:i + 4096] for i in range(0, len(x), 4096)), RATE):
        pass
    took = time.monotonic() - start
    print(f"{variant} window={window}: {seconds:g} s of 44.1 kHz stereo in {took:.1f} s: {seconds / took:.2f}x "
          f"real time; latency {sep.latency(RATE) / RATE:.2f} s")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("memory", "speed", "live"))
    p.add_argument("--variant", default="M4")
    p.add_argument("--window", type=int, default=16384)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 60])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--old", help="a script running the older CLI to compare with (speed)")
    args = p.parse_args()
    if args.what == "live":
        return live(args.variant, args.window, args.seconds)
    new = [sys.executable, "-m", "waveunet_tf.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = small_model(tmp)
        for minutes in args.minutes:
            audio = song(tmp, minutes)
            if args.what == "memory":
                mb, s = run(new, audio, model, tmp / "out")
                print(f"{minutes:g} min: peak {mb:.0f} MB, {s:.1f} s", flush=True)
                continue
            times = {"new": [], "old": []}
            for _ in range(args.runs):  # alternate, so a busy neighbour slows both alike
                times["new"].append(run(new, audio, model, tmp / "out")[1])
                times["old"].append(run([sys.executable, args.old], audio, model, tmp / "out")[1])
            print(f"{minutes:g} min: streamed median {statistics.median(times['new']):.1f} s {times['new']}, "
                  f"in-memory (old) median {statistics.median(times['old']):.1f} s {times['old']}", flush=True)


if __name__ == "__main__":
    main()
