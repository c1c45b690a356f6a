"""`waveunet bench train` in a tiny configuration: the JSON contract and sane values."""

import json
import os
import subprocess
import sys

import pytest

from waveunet_tf.cli import main


@pytest.mark.slow
def test_bench_train_json_keys_and_values():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run([sys.executable, "-m", "waveunet_tf.cli", "bench", "train", "--variant", "M4",
                        "--set", "sample_rate=8192", "--set", "num_layers=3", "--set", "num_initial_filters=4",
                        "--set", "requested_output=512", "--batch-size", "4", "--steps", "3", "--warmup", "1",
                        "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert list(result) == ["variant", "batch_size", "step_s_median", "examples_per_s", "input_wait_s",
                            "peak_rss_mb"]
    assert result["variant"] == "M4" and result["batch_size"] == 4
    assert 0 < result["step_s_median"] < 30
    assert result["examples_per_s"] == pytest.approx(4 / result["step_s_median"], rel=0.01)
    assert 0 <= result["input_wait_s"] < 3 * result["step_s_median"] + 1
    assert 100 < result["peak_rss_mb"] < 4000


def test_bench_train_rejects_bad_arguments():
    assert main(["bench", "train", "--steps", "0"]) == 2
    assert main(["bench", "train", "--batch-size", "0"]) == 2
