"""Decimation and the two upsampling layers of the Wave-U-Net (time axis 1, channels last)."""

import keras
import tensorflow as tf
from keras import ops


def _time(length, context):
    """Upsampled length: n -> 2n-1 with context (no extrapolation), n -> 2n without."""
    if length is None:
        return None
    return 2 * length - 1 if context else 2 * length


def _interleave(originals, between):
    """[f0, b0, f1, b1, ...]: ``originals`` [B, T, C] and ``between`` [B, T, C] -> [B, 2T, C]."""
    stacked = ops.stack([originals, between], axis=2)
    shape = ops.shape(originals)
    return ops.reshape(stacked, (shape[0], 2 * shape[1], shape[2]))


@keras.saving.register_keras_serializable(package="waveunet_tf")
class Decimate(keras.layers.Layer):
    """Keeps samples 0, 2, 4, ... of the time axis: [B, T, C] -> [B, ceil(T/2), C]."""

    def call(self, x):
        return x[:, ::2, :]

    def compute_output_shape(self, input_shape):
        b, t, c = input_shape
        return b, None if t is None else (t + 1) // 2, c


@keras.saving.register_keras_serializable(package="waveunet_tf")
class LinearUpsample(keras.layers.Layer):
    """Linear interpolation by 2 along time.

    With ``context`` (valid convolutions), n -> 2n-1: the originals with the midpoints between them
    (TF1 ``resize_bilinear(align_corners=True)``). Without, n -> 2n: ``out[2k] = in[k]``,
    ``out[2k+1] = (in[k] + in[k+1]) / 2`` and the last sample repeats ``in[n-1]``
    (TF1 ``resize_bilinear(align_corners=False)``).
    """

    def __init__(self, context=True, **kwargs):
        super().__init__(**kwargs)
        self.context = bool(context)

    def call(self, x):
        # TF1's bilinear resize, one fused kernel as in the official code (measured: 2-4% faster training
        # steps than slicing and interleaving); Keras' resize has no align_corners mode, hence raw tf.
        n = tf.shape(x)[1]
        size = tf.stack([1, 2 * n - 1 if self.context else 2 * n])
        y = tf.raw_ops.ResizeBilinear(images=x[:, None], size=size, align_corners=self.context,
                                      half_pixel_centers=False)
        return tf.cast(y[:, 0], x.dtype)  # the kernel always returns float32 (matters under mixed_float16)

    def compute_output_shape(self, input_shape):
        b, t, c = input_shape
        return b, _time(t, self.context), c

    def get_config(self):
        return {**super().get_config(), "context": self.context}


@keras.saving.register_keras_serializable(package="waveunet_tf")
class LearnedUpsample(keras.layers.Layer):
    """The paper's learned upsampling (M5): per channel a weight ``w``, interpolated value
    ``sigmoid(w) * f[t] + (1 - sigmoid(w)) * f[t+1]``, interleaved with the originals starting with ``f[0]``.

    With ``context``: n -> 2n-1. Without: n -> 2n, the last interpolated value using ``f[n] = 0``
    (the official width-2 convolution with "same" padding).
    """

    def __init__(self, context=True, **kwargs):
        super().__init__(**kwargs)
        self.context = bool(context)

    def build(self, input_shape):
        # One value per feature channel; glorot_uniform on a vector, as TF1's get_variable default.
        self.interp = self.add_weight(name="interp", shape=(input_shape[-1],), initializer="glorot_uniform")

    def call(self, x):
        w = ops.sigmoid(self.interp)
        if self.context:
            mid = w * x[:, :-1, :] + (1.0 - w) * x[:, 1:, :]
            return ops.concatenate([_interleave(x[:, :-1, :], mid), x[:, -1:, :]], axis=1)
        nxt = ops.concatenate([x[:, 1:, :], ops.zeros_like(x[:, :1, :])], axis=1)
        return _interleave(x, w * x + (1.0 - w) * nxt)

    def compute_output_shape(self, input_shape):
        b, t, c = input_shape
        return b, _time(t, self.context), c

    def get_config(self):
        return {**super().get_config(), "context": self.context}
