"""Precision choice (issue 17): native bfloat16 detection, resolve/refuse, and the FLOP count of bench's GFLOP/s."""

import pytest

from waveunet_tf import flops, precision, shapes
from waveunet_tf.config import variant_config
from waveunet_tf.errors import UsageError

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx2 {extra} fma
"""


def _cpuinfo(tmp_path, extra):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    return path


@pytest.mark.parametrize("extra, native", [("", False), ("avx512f avx512_bf16", True), ("amx_bf16 amx_tile", True),
                                           ("avx512f avx512bw", False)])
def test_native_bf16_reads_the_cpu_flags(tmp_path, monkeypatch, extra, native):
    monkeypatch.delenv(precision.OVERRIDE_ENV, raising=False)
    assert precision.native_bf16(_cpuinfo(tmp_path, extra)) is native


def test_no_cpuinfo_means_no_native_bf16(tmp_path, monkeypatch):
    monkeypatch.delenv(precision.OVERRIDE_ENV, raising=False)
    assert precision.native_bf16(tmp_path / "absent") is False


def test_auto_follows_the_cpu_and_bfloat16_is_refused_without_it(monkeypatch):
    monkeypatch.setenv(precision.OVERRIDE_ENV, "1")
    assert precision.resolve("auto") == "bfloat16"
    assert precision.resolve("bfloat16") == "bfloat16"
    assert precision.resolve_training("bfloat16") == "bfloat16"
    monkeypatch.setenv(precision.OVERRIDE_ENV, "0")
    assert precision.resolve("auto") == "float32"
    assert precision.resolve("float32") == "float32"
    assert precision.resolve_training("float16") == "float16"
    for call in (precision.resolve, precision.resolve_training):
        with pytest.raises(UsageError, match="bfloat16 needs a CPU with native bfloat16.*use float32"):
            call("bfloat16")


def test_unknown_precisions_are_usage_errors():
    with pytest.raises(UsageError, match="must be one of auto, float32, bfloat16, not 'float16'"):
        precision.resolve("float16")
    with pytest.raises(UsageError, match="must be one of float32, bfloat16, float16, not 'auto'"):
        precision.resolve_training("auto")


def test_policies():
    assert [precision.policy(p) for p in ("float32", "bfloat16", "float16")] == [None, "mixed_bfloat16",
                                                                                "mixed_float16"]


TINY = dict(num_layers=1, num_initial_filters=2, filter_size=3, merge_filter_size=3, output_filter_size=1,
            channels=1, sources=("a", "b"), output_type="difference")


def test_forward_flops_worked_by_hand_with_context():
    # input 11: down conv 3x1->2 keeps 9 samples (2*3*1*2*9 = 108), decimated to 5; bottleneck 3x2->4 keeps 3
    # (2*3*2*4*3 = 144); upsampled to 5, merged with the skip (4+2 channels), up conv 3x6->2 keeps 3
    # (2*3*6*2*3 = 216); one output conv (difference output) 1x(2+1)->1 on 3 samples (2*1*3*1*3 = 18).
    assert flops.forward_flops(variant_config("M4", **TINY), 11) == 108 + 144 + 216 + 18


def test_forward_flops_worked_by_hand_without_context_and_direct_outputs():
    # input 8, "same" convolutions: 2*3*1*2*8 + 2*3*2*4*4 + 2*3*6*2*8 + two output convs 2 * (2*1*3*1*8)
    cfg = variant_config("M4", **{**TINY, "context": False, "output_type": "direct", "requested_output": 8})
    assert flops.forward_flops(cfg, 8) == 96 + 192 + 576 + 2 * 48


def test_plan_and_step_flops_are_sums_of_forward_passes():
    cfg = variant_config("M4")
    one = flops.forward_flops(cfg, cfg.input_length)
    plan = shapes.plan_paper(cfg, 10 * cfg.output_length + 1)
    assert plan.count == 11 and flops.plan_flops(cfg, plan) == 11 * one
    assert flops.step_flops(cfg, 16) == 3 * 16 * one


def test_train_takes_precision_and_keeps_mixed_precision_as_float16():
    from waveunet_tf.cli import build_parser
    parse = build_parser().parse_args
    base = ["train", "--variant", "M4", "--cache", "c", "--run-dir", "r"]
    assert parse(base).precision == "float32"
    assert parse(base + ["--mixed-precision"]).precision == "float16"
    assert parse(base + ["--precision", "bfloat16"]).precision == "bfloat16"


@pytest.mark.parametrize("argv", [
    ["train", "--variant", "M4", "--cache", "c", "--run-dir", "r", "--precision", "float16"],
    ["reproduce", "--variant", "M4", "--quick", "--run-dir", "r", "--precision", "float16"],
    ["bench", "train", "--variant", "M4", "--quick", "--cache", "r", "--precision", "float16"],
])
def test_float16_is_refused_in_one_line_without_a_gpu(argv, monkeypatch, capsys, tmp_path):
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU, where float16 trains")
    from waveunet_tf.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--precision float16 needs a GPU (no GPU found" in err[0], err
    assert not (tmp_path / "r").exists()  # refused before anything was written (the data, the run dir)


@pytest.mark.parametrize("argv", [
    ["train", "--variant", "M4", "--cache", "c", "--run-dir", "r", "--precision", "bfloat16"],
    ["evaluate", "--model", "m.keras", "--musdb-root", "r", "--precision", "bfloat16"],
    ["reproduce", "--variant", "M4", "--quick", "--run-dir", "r", "--precision", "bfloat16"],
])
def test_commands_refuse_bfloat16_without_native_support_in_one_line(argv, monkeypatch, capsys, tmp_path):
    from waveunet_tf.cli import main
    monkeypatch.setenv(precision.OVERRIDE_ENV, "0")
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--precision bfloat16 needs a CPU with native bfloat16" in err[0]
    assert not (tmp_path / "r").exists()  # refused before anything was written
