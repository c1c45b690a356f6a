"""Output-side layers: clipping at inference, and the difference output."""

import keras
from keras import ops

from waveunet_tf.layers.crop import center_crop


@keras.saving.register_keras_serializable(package="waveunet_tf")
class ClipAtInference(keras.layers.Layer):
    """Identity while training; clips to [-1, 1] at inference (the official ``AudioClip``)."""

    def call(self, x, training=None):
        return x if training else ops.clip(x, -1.0, 1.0)


@keras.saving.register_keras_serializable(package="waveunet_tf")
class DifferenceOutput(keras.layers.Layer):
    """``[mixture, s_1, ..., s_{K-1}] -> centre_crop(mixture) - sum(s_k)``: the last source, so the estimates
    add up to the mixture. Clipped to [-1, 1] at inference only, as the official code."""

    def call(self, inputs, training=None):
        mixture, *others = inputs
        last = center_crop(mixture, ops.shape(others[0])[1]) - ops.sum(ops.stack(others, axis=0), axis=0)
        return last if training else ops.clip(last, -1.0, 1.0)

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]
