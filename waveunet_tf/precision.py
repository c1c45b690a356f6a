"""Which floating-point precision the model runs in, and the Keras dtype policy that says it.

Precision is a policy, not a second network: ``float32`` builds the model with no policy; ``bfloat16`` with Keras'
``mixed_bfloat16`` (weights float32, convolutions and activations bfloat16, the output layers and the difference
output float32, see :mod:`waveunet_tf.layers.network`); ``float16`` is ``mixed_float16`` (training on GPUs only).

bfloat16 runs only where the CPU computes it natively (AVX512-BF16 or AMX): elsewhere TensorFlow emulates it and it
is many times slower than float32, so it is refused. Importing this module is light (no TensorFlow).
"""

from __future__ import annotations

import os
from pathlib import Path

from waveunet_tf.errors import UsageError

INFERENCE_CHOICES = ("auto", "float32", "bfloat16")
TRAINING_CHOICES = ("float32", "bfloat16", "float16")
# `separate`'s default (and `bench inference`'s headline): bfloat16 where native, since it costs 0.002-0.003 dB
# SDR on real audio (README, Precision: experiments/bf16_cost.py) for 1.6x the speed (issue 17's Zen 4 probe).
SEPARATE_DEFAULT = "auto"
POLICIES = {"float32": None, "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}

# CPU flags (Linux /proc/cpuinfo) of a native bfloat16 dot product: AVX512-BF16 (Zen 4, Cooper Lake) or AMX.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Tests only: "1" pretends the CPU has native bfloat16, "0" that it has not (documented in the README).
OVERRIDE_ENV = "WAVEUNET_NATIVE_BF16"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags read from ``cpuinfo`` (empty where there is no such file, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 natively (one of :data:`NATIVE_BF16_FLAGS`); ``WAVEUNET_NATIVE_BF16=1``
    or ``0`` overrides the answer (for tests)."""
    override = os.environ.get(OVERRIDE_ENV, "")
    if override in ("0", "1"):
        return override == "1"
    return bool(cpu_flags(cpuinfo) & set(NATIVE_BF16_FLAGS))


def resolve(precision: str, option: str = "--precision") -> str:
    """``auto`` / ``float32`` / ``bfloat16`` -> ``"float32"`` or ``"bfloat16"`` for inference: ``auto`` is
    bfloat16 on a CPU with native bfloat16 and float32 elsewhere; ``bfloat16`` asked for on a CPU without it is
    refused with one :class:`UsageError` line."""
    if precision not in INFERENCE_CHOICES:
        raise UsageError(f"{option} must be one of {', '.join(INFERENCE_CHOICES)}, not {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bf16() else "float32"
    if precision == "bfloat16":
        _require_native(option)
    return precision


def resolve_training(precision: str, option: str = "--precision") -> str:
    """``float32`` / ``bfloat16`` / ``float16`` for training, checked: bfloat16 needs native bfloat16 (float16's
    need of a GPU is checked where the devices are known)."""
    if precision not in TRAINING_CHOICES:
        raise UsageError(f"{option} must be one of {', '.join(TRAINING_CHOICES)}, not {precision!r}")
    if precision == "bfloat16":
        _require_native(option)
    return precision


def require_gpu_for_float16(option: str = "--precision") -> None:
    """float16 (``mixed_float16``) trains on a GPU only: one :class:`UsageError` line where TensorFlow sees none
    (imports TensorFlow: call it where the thread settings are already chosen)."""
    import tensorflow as tf
    if not tf.config.list_physical_devices("GPU"):
        raise UsageError(f"{option} float16 needs a GPU (no GPU found; on a CPU mixed_float16 is emulated and slower "
                         "than float32): use float32")


def _require_native(option: str) -> None:
    if not native_bf16():
        raise UsageError(f"{option} bfloat16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX), which this "
                         "one lacks (emulated it is slower than float32): use float32")


def policy(precision: str):
    """The Keras dtype policy name of a resolved precision (None for float32: the layers' own float32)."""
    return POLICIES[precision]
