"""`waveunet bench inference` keeps working and prints the contract's JSON with consistent numbers."""

import json
import os
import subprocess
import sys

import pytest

from waveunet_tf import flops, variant_config


@pytest.mark.slow
def test_bench_inference_json_is_consistent():
    # WAVEUNET_NATIVE_BF16=1: measure both precisions, as on a CPU with native bfloat16 (it runs emulated here)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", WAVEUNET_NATIVE_BF16="1")
    res = subprocess.run([sys.executable, "-m", "waveunet_tf.cli", "bench", "inference", "--variant", "M4",
                          "--seconds", "8", "--repeats", "1", "--json"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"variant", "audio_s", "paper_s_per_s", "default_s_per_s", "speedup", "peak_rss_mb",
                        "precision", "gflops", "peak_gflops", "runs"}
    # separate's default (auto: bfloat16 where native) first, then float32
    assert out["variant"] == "M4" and out["audio_s"] == 8 and out["precision"] == "bfloat16"
    assert [r["precision"] for r in out["runs"]] == ["bfloat16", "float32"]
    assert out["paper_s_per_s"] > 0 and out["default_s_per_s"] > 0
    assert out["speedup"] == pytest.approx(out["paper_s_per_s"] / out["default_s_per_s"], rel=0.01)
    assert out["speedup"] > 1  # 8 s of song: one long window against 11 paper windows
    # 8 s of M4 (176,400 samples) is one window: 44 steps of 4,096 = 180,224 kept samples, plus the 5 extra output
    # samples of valid lengths and 65,527 samples of context on either side
    one_window = flops.forward_flops(variant_config("M4"), 180224 + 5 + 2 * 65527)
    for run in out["runs"]:
        assert run["gflops"] == pytest.approx(one_window / (run["default_s_per_s"] * 8) / 1e9, rel=0.01)
        assert run["peak_gflops"] > 0
    assert out["gflops"] == out["runs"][0]["gflops"] and out["peak_gflops"] == out["runs"][0]["peak_gflops"]
    assert 100 < out["peak_rss_mb"] < 4000


def test_bench_inference_rejects_bad_arguments():
    res = subprocess.run([sys.executable, "-m", "waveunet_tf.cli", "bench", "inference", "--seconds", "0"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "--seconds" in res.stderr


def test_bench_inference_refuses_bfloat16_without_native_support():
    env = dict(os.environ, WAVEUNET_NATIVE_BF16="0")
    res = subprocess.run([sys.executable, "-m", "waveunet_tf.cli", "bench", "inference", "--precision", "bfloat16"],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "waveunet bench: error: --precision bfloat16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX), which this one "
        "lacks (emulated it is slower than float32): use float32"]
