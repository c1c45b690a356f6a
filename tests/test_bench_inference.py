"""`waveunet bench inference` keeps working and prints the contract's JSON with consistent numbers."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_inference_json_is_consistent():
    res = subprocess.run([sys.executable, "-m", "waveunet_tf.cli", "bench", "inference", "--variant", "M4",
                          "--seconds", "8", "--repeats", "1", "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"variant", "audio_s", "paper_s_per_s", "default_s_per_s", "speedup", "peak_rss_mb"}
    assert out["variant"] == "M4" and out["audio_s"] == 8
    assert out["paper_s_per_s"] > 0 and out["default_s_per_s"] > 0
    assert out["speedup"] == pytest.approx(out["paper_s_per_s"] / out["default_s_per_s"], rel=0.01)
    assert out["speedup"] > 1  # 8 s of song: one long window against 11 paper windows
    assert 100 < out["peak_rss_mb"] < 4000


def test_bench_inference_rejects_bad_arguments():
    res = subprocess.run([sys.executable, "-m", "waveunet_tf.cli", "bench", "inference", "--seconds", "0"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "--seconds" in res.stderr
