"""``build_model``: the Wave-U-Net of a config, and the official creation order of its convolutions.

Importing this module is light (no TensorFlow), so any module may import it at its top; the network itself is
:class:`waveunet_tf.layers.network.WaveUNet`.
"""

from __future__ import annotations

from waveunet_tf.config import WaveUNetConfig
from waveunet_tf.precision import policy


def conv_layer_names(config) -> list[str]:
    """Names of the model's Conv1D layers in the official creation order (the checkpoint's conv1d, conv1d_1, ...):
    the downsampling convolutions, the bottleneck convolution, the upsampling convolutions, then the output
    convolutions in source order (all but the last source with the difference output)."""
    L = config.num_layers
    outputs = config.sources[:-1] if config.output_type == "difference" else config.sources
    return ([f"down_conv_{i}" for i in range(L)] + ["bottleneck_conv"] + [f"up_conv_{i}" for i in range(L)]
            + [f"output_conv_{s}" for s in outputs])


def build_model(config: WaveUNetConfig, precision: str | None = None):
    """Build the Wave-U-Net of ``config`` -> :class:`waveunet_tf.layers.network.WaveUNet` (a ``keras.Model``).

    ``precision`` ``"float32"`` / ``"bfloat16"`` / ``"float16"`` (:mod:`waveunet_tf.precision`) builds it in
    that dtype policy; None (training) follows Keras' global policy.

    Input ``mixture``: float32 [batch, time, channels], ``time`` any valid input length
    (:func:`waveunet_tf.shapes.is_valid_input_length`). Output: ``{source: [batch, time_out, channels]}`` in
    the config's source order, ``time_out = time - sum(shapes.context(config))``.
    """
    from waveunet_tf.layers.network import WaveUNet  # heavy: imports Keras and TensorFlow
    if precision is None:
        return WaveUNet(config)
    return WaveUNet(config, dtype=policy(precision) or "float32")
