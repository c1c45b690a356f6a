"""`waveunet bench train` in a tiny configuration: the JSON contract and sane values."""

import json
import os
import subprocess
import sys

import pytest

from waveunet_tf import flops, variant_config
from waveunet_tf.cli import main

TINY = ["--set", "sample_rate=8192", "--set", "num_layers=3", "--set", "num_initial_filters=4",
        "--set", "requested_output=512"]


@pytest.mark.slow
def test_bench_train_json_keys_and_values():
    # WAVEUNET_NATIVE_BF16=1: both precisions, as on a CPU with native bfloat16 (bfloat16 runs emulated here)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", WAVEUNET_NATIVE_BF16="1")
    r = subprocess.run([sys.executable, "-m", "waveunet_tf.cli", "bench", "train", "--variant", "M4",
                        *TINY, "--batch-size", "4", "--steps", "3", "--warmup", "1",
                        "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert list(result) == ["variant", "batch_size", "step_s_median", "examples_per_s", "input_wait_s",
                            "peak_rss_mb", "precision", "gflops", "peak_gflops", "runs"]
    assert result["variant"] == "M4" and result["batch_size"] == 4 and result["precision"] == "float32"
    assert [run["precision"] for run in result["runs"]] == ["float32", "bfloat16"]
    cfg = variant_config("M4", sample_rate=8192, num_layers=3, num_initial_filters=4, requested_output=512)
    for run in result["runs"]:
        assert 0 < run["step_s_median"] < 30
        assert run["examples_per_s"] == pytest.approx(4 / run["step_s_median"], rel=0.01)
        assert 0 <= run["input_wait_s"] < 3 * run["step_s_median"] + 1
        # forward and backward (twice the forward) of 4 windows
        work = 3 * 4 * flops.forward_flops(cfg, cfg.input_length)
        assert run["gflops"] == pytest.approx(work / run["step_s_median"] / 1e9, rel=0.02, abs=0.06)
        assert run["peak_gflops"] > 0
    assert 100 < result["peak_rss_mb"] < 4000


def test_bench_train_rejects_bad_arguments():
    assert main(["bench", "train", "--steps", "0"]) == 2
    assert main(["bench", "train", "--batch-size", "0"]) == 2


def test_bench_train_refuses_bfloat16_without_native_support(monkeypatch, capsys):
    monkeypatch.setenv("WAVEUNET_NATIVE_BF16", "0")
    assert main(["bench", "train", "--precision", "bfloat16", *TINY]) == 2
    assert "--precision bfloat16 needs a CPU with native bfloat16" in capsys.readouterr().err
