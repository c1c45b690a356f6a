"""Fine-tuning: a run that starts from a trained model (``train --init MODEL``, ``reproduce --init MODEL``).

The starting model gives the architecture and the weights; the training protocol (learning rate, batch,
epochs, patience, ...) comes from the variant, ``--config`` and ``--set`` as for any run. An architecture key
that differs from the starting model's is refused: its weights would not fit. The run's ``history.csv`` then
starts with an epoch-0 row, the validation loss of the starting weights, which is also the best loss the run
has to beat.
"""

from __future__ import annotations

from dataclasses import dataclass

from waveunet_tf.config import WaveUNetConfig, resolve_config
from waveunet_tf.errors import UsageError
from waveunet_tf.model_io import load_model

# The keys that shape the weights or what they mean; everything else is the training protocol (or, like
# requested_output, the window length, which any length of the same network accepts).
ARCHITECTURE = ("num_layers", "num_initial_filters", "filter_size", "merge_filter_size", "input_filter_size",
                "output_filter_size", "upsampling", "output_type", "output_activation", "context", "channels",
                "sources", "sample_rate", "leaky_relu_alpha")


@dataclass(frozen=True)
class Start:
    """A starting model: where it came from (as the user named it), its config and its weights (numpy arrays in
    ``keras.Model.get_weights`` order)."""

    source: str
    config: WaveUNetConfig
    weights: list


def load_start(model) -> Start:
    """Load MODEL (a run dir, a ``.keras`` file or ``official:NAME``) to start from (imports TensorFlow)."""
    keras_model, config = load_model(model)
    return Start(str(model), config, keras_model.get_weights())


def init_config(start: Start, variant=None, config_file=None, sets=(), quick=False, jit=False) -> WaveUNetConfig:
    """The run's config: the starting model's, or the variant's when one is named (by ``variant`` or in the
    file), then ``--quick``, ``--config`` and ``--set`` as :func:`resolve_config`; an architecture key that
    differs from the starting model's is a :class:`UsageError` naming it."""
    config = resolve_config(variant, config_file, sets, quick, jit, base=start.config)
    for key in ARCHITECTURE:
        want, have = getattr(config, key), getattr(start.config, key)
        if want != have:
            raise UsageError(f"--init {start.source} has {key}={_show(have)} but the config asks for "
                             f"{key}={_show(want)}: the architecture comes from the starting model (leave {key} "
                             f"out of --variant/--quick/--config/--set, or train without --init)")
    return config


def _show(value) -> str:
    return ",".join(value) if isinstance(value, tuple) else repr(value)


def set_weights(model, start: Start) -> None:
    """Give ``model`` (built from :func:`init_config`'s config) the starting weights."""
    mine = [w.shape for w in model.get_weights()]
    theirs = [w.shape for w in start.weights]
    if mine != theirs:
        raise UsageError(f"--init {start.source}: its {len(theirs)} weight arrays do not fit this model's "
                         f"{len(mine)} (first shapes {theirs[:1]} vs {mine[:1]})")
    model.set_weights(start.weights)
