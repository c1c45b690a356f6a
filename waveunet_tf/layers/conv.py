"""The Wave-U-Net's 1-D convolution, run as the 4-D pattern TensorFlow fuses (issue 17)."""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="waveunet_tf")
class Conv1D(keras.layers.Conv1D):
    """A Keras ``Conv1D`` (same weights: ``kernel`` [width, in, out], ``bias`` [out]) computed on one row of an
    NHWC image: input [B, T, C] or [B, 1, T, C], output [B, 1, T', filters], or [B, T', filters] with
    ``squeeze_output``.

    Keras' ``Conv1D`` on TensorFlow becomes ExpandDims -> Conv2D -> Squeeze -> AddV2 and its activation a separate
    op, which TensorFlow's grappler cannot fuse. Here the network stays 4-D between convolutions and each one is
    ``Conv2D`` -> ``BiasAdd``, so with the ``LeakyReLU`` that follows it grappler's remapper makes one
    ``_FusedConv2D`` (fused_ops BiasAdd, LeakyRelu) on CPU: one pass over the output instead of three. Only float32
    (and bfloat16 with oneDNN) have the fused CPU kernel; elsewhere the three ops run as before.

    The class keeps the name ``Conv1D``: Keras' ``.keras`` files store a layer's weights under its class name
    (``layers/conv1d_3/vars``), so files saved with Keras' ``Conv1D`` load into this one and back.
    """

    def __init__(self, *args, squeeze_output=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.squeeze_output = bool(squeeze_output)

    def build(self, input_shape):
        super().build((input_shape[0], input_shape[-2], input_shape[-1]))
        self.input_spec = None  # 3-D or 4-D input

    def call(self, x):
        rows = x if len(x.shape) == 4 else x[:, None]
        kernel = ops.expand_dims(self.kernel, 0)  # [1, width, in, out]
        # raw tf: grappler fuses Conv2D + BiasAdd (+ activation); Keras' ops.add gives AddV2, and it has no bias_add
        y = tf.nn.conv2d(rows, kernel, strides=1, padding=self.padding.upper(), data_format="NHWC")
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias, data_format="NHWC")
        if self.activation is not None:
            y = self.activation(y)
        return y[:, 0] if self.squeeze_output else y

    def compute_output_shape(self, input_shape):
        b, t, _ = super().compute_output_shape((input_shape[0], input_shape[-2], input_shape[-1]))
        return (b, t, self.filters) if self.squeeze_output else (b, 1, t, self.filters)

    def get_config(self):
        return {**super().get_config(), "squeeze_output": self.squeeze_output}
