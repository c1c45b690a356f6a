"""Centre crop and the U-Net's crop-and-concatenate."""

import keras
from keras import ops


def center_crop(x, length):
    """Centre-crop [..., T, C] (time axis -2) to ``length`` samples; with an odd difference the extra sample goes
    at the end."""
    start = (ops.shape(x)[-2] - length) // 2
    return x[..., start:start + length, :]


@keras.saving.register_keras_serializable(package="waveunet_tf")
class CropAndConcat(keras.layers.Layer):
    """``[skip, x] -> concat([centre_crop(skip, len(x)), x], channels)``, the official ``crop_and_concat``.

    Time is axis -2: [B, T, C] or the network's one-row images [B, 1, T, C]; a [B, T, C] ``skip`` (the mixture)
    joins a 4-D ``x`` as its one row."""

    def call(self, inputs):
        skip, x = inputs
        skip = skip[:, None] if len(skip.shape) < len(x.shape) else skip
        return ops.concatenate([center_crop(skip, ops.shape(x)[-2]), x], axis=-1)

    def compute_output_shape(self, input_shapes):
        skip, x = input_shapes
        return (*x[:-1], skip[-1] + x[-1])
