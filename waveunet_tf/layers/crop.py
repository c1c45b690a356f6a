"""Centre crop and the U-Net's crop-and-concatenate."""

import keras
from keras import ops


def center_crop(x, length):
    """Centre-crop [B, T, C] to ``length`` samples; with an odd difference the extra sample goes at the end."""
    start = (ops.shape(x)[1] - length) // 2
    return x[:, start:start + length, :]


@keras.saving.register_keras_serializable(package="waveunet_tf")
class CropAndConcat(keras.layers.Layer):
    """``[skip, x] -> concat([centre_crop(skip, len(x)), x], channels)``, the official ``crop_and_concat``."""

    def call(self, inputs):
        skip, x = inputs
        return ops.concatenate([center_crop(skip, ops.shape(x)[1]), x], axis=-1)

    def compute_output_shape(self, input_shapes):
        (b, _, c1), (_, t, c2) = input_shapes
        return b, t, c1 + c2
