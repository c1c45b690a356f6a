"""The ``--quick`` preset: a variant of the same kind, small enough to train in minutes on 2 CPU cores.

It keeps what makes a variant what it is (context or not, channels, difference or direct output, output
activation, linear or learned upsampling, the sources) and shrinks what only costs time: depth, width, the
sample rate, the window, the epoch length and the patience. Used by ``waveunet train --quick``,
``waveunet reproduce --quick`` and the demo.
"""

from __future__ import annotations

from waveunet_tf.config import WaveUNetConfig

# What --quick changes, and to what (everything else stays the variant's).
QUICK = {
    "num_layers": 8,  # the receptive field still spans ~0.2 s at 8192 Hz
    "num_initial_filters": 16,
    "sample_rate": 8192,  # synthetic sources separate well below 4 kHz
    "requested_output": 4096,  # 0.5 s of output per window
    "batch_size": 8,
    "learning_rate": 3e-4,  # a small model and a short schedule tolerate a larger step
    "steps_per_epoch": 100,
    "patience": 3,
    "fine_tune_patience": 2,
    "fine_tune_learning_rate": 3e-5,
    "max_epochs": 8,  # per stage: the run ends even if it keeps improving
}


def quick_config(config: WaveUNetConfig) -> WaveUNetConfig:
    """``config`` with the :data:`QUICK` sizes; the variant's kind (see module docstring) is unchanged."""
    overrides = dict(QUICK)
    # M7's batch (4 instead of 16) keeps its ratio to the other variants' batch
    overrides["batch_size"] = max(2, config.batch_size * QUICK["batch_size"] // 16)
    return config.replace(name=config.name, description=f"{config.description} (--quick preset)".strip(),
                          **overrides)
