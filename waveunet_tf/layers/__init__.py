"""The Wave-U-Net's custom Keras layers and the network built from them. All are registered for serialization
(package ``waveunet_tf``); importing this package imports Keras and TensorFlow."""

from waveunet_tf.layers.conv import Conv1D  # noqa: F401  (registers it)
from waveunet_tf.layers.crop import CropAndConcat, center_crop
from waveunet_tf.layers.input_check import InputCheck
from waveunet_tf.layers.network import WaveUNet
from waveunet_tf.layers.output import ClipAtInference, DifferenceOutput
from waveunet_tf.layers.resampling import Decimate, LearnedUpsample, LinearUpsample

__all__ = ["CropAndConcat", "center_crop", "InputCheck", "ClipAtInference", "DifferenceOutput", "Decimate",
           "LearnedUpsample", "LinearUpsample", "WaveUNet"]
