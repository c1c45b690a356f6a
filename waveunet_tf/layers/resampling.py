"""Decimation and the two upsampling layers of the Wave-U-Net: time axis -2, channels last, so they take [B, T, C]
and the network's one-row images [B, 1, T, C] alike."""

import keras
import tensorflow as tf
from keras import ops


def _time(length, context):
    """Upsampled length: n -> 2n-1 with context (no extrapolation), n -> 2n without."""
    if length is None:
        return None
    return 2 * length - 1 if context else 2 * length


def _with_time(shape, t):
    """``shape`` (a tuple, time axis -2) with its time length replaced by ``t``."""
    return (*shape[:-2], t, shape[-1])


def _interleave(originals, between):
    """[f0, b0, f1, b1, ...] along time: ``originals`` and ``between`` [..., T, C] -> [..., 2T, C]."""
    stacked = ops.stack([originals, between], axis=-2)
    shape = ops.shape(originals)
    return ops.reshape(stacked, _with_time(shape, 2 * shape[-2]))


@keras.saving.register_keras_serializable(package="waveunet_tf")
class Decimate(keras.layers.Layer):
    """Keeps samples 0, 2, 4, ... of the time axis: [..., T, C] -> [..., ceil(T/2), C].

    At inference it gathers the kept rows (whole rows of C values each): TensorFlow's CPU StridedSlice with a
    stride copies element by element and took 5-9x as long (measured, one thread, [1, 1, 73721, 48]). Training
    keeps the strided slice, whose gradient is a plain StridedSliceGrad."""

    def call(self, x, training=None):
        if training:
            return x[..., ::2, :]
        # raw tf: Keras' ops.take adds a pass that wraps negative indices; these are never negative
        return tf.gather(x, tf.range(0, tf.shape(x)[-2], 2), axis=len(x.shape) - 2)

    def compute_output_shape(self, input_shape):
        t = input_shape[-2]
        return _with_time(tuple(input_shape), None if t is None else (t + 1) // 2)


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
        n = tf.shape(x)[-2]
        size = tf.stack([1, 2 * n - 1 if self.context else 2 * n])
        y = tf.raw_ops.ResizeBilinear(images=x if len(x.shape) == 4 else x[:, None], size=size,
                                      align_corners=self.context, half_pixel_centers=False)
        y = y if len(x.shape) == 4 else y[:, 0]
        return tf.cast(y, x.dtype)  # the kernel always returns float32 (matters under mixed_float16)

    def compute_output_shape(self, input_shape):
        return _with_time(tuple(input_shape), _time(input_shape[-2], self.context))

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
            mid = w * x[..., :-1, :] + (1.0 - w) * x[..., 1:, :]
            return ops.concatenate([_interleave(x[..., :-1, :], mid), x[..., -1:, :]], axis=-2)
        nxt = ops.concatenate([x[..., 1:, :], ops.zeros_like(x[..., :1, :])], axis=-2)
        return _interleave(x, w * x + (1.0 - w) * nxt)

    def compute_output_shape(self, input_shape):
        return _with_time(tuple(input_shape), _time(input_shape[-2], self.context))

    def get_config(self):
        return {**super().get_config(), "context": self.context}
