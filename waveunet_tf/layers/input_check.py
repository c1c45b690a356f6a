"""Checks the mixture's channel count and length before the network sees it."""

import keras
import tensorflow as tf

from waveunet_tf.errors import UserError
from waveunet_tf.shapes import lengths_near


@keras.saving.register_keras_serializable(package="waveunet_tf")
class InputCheck(keras.layers.Layer):
    """Identity on [B, T, C] that rejects a wrong channel count or an input length the network cannot map exactly.

    Valid lengths are ``min_length + k * step``. Static shapes fail at once with the nearest valid lengths;
    dynamic ones with an in-graph assertion (Keras has no assert op, hence ``tf.debugging``).
    ``waveunet_config`` is only set in models saved before the config moved to
    :class:`waveunet_tf.layers.network.WaveUNet`; it is kept so that those ``.keras`` files still load and know their
    config.
    """

    def __init__(self, channels, min_length, step, waveunet_config=None, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.min_length, self.step = int(channels), int(min_length), int(step)
        self.waveunet_config = dict(waveunet_config) if waveunet_config else None

    def call(self, x):
        if x.shape[-1] is not None and x.shape[-1] != self.channels:
            raise UserError(f"the mixture has {x.shape[-1]} channels; this model takes {self.channels}")
        n = x.shape[1]
        if n is not None:
            if n < self.min_length or (n - self.min_length) % self.step:
                near = " or ".join(map(str, lengths_near(self.min_length, self.step, n)))
                raise UserError(f"input length {n} is not valid: the nearest valid lengths are {near} "
                                f"(valid: {self.min_length} + k*{self.step})")
            return x
        t = tf.shape(x)[1]
        ok = tf.logical_and(t >= self.min_length, tf.math.floormod(t - self.min_length, self.step) == 0)
        with tf.control_dependencies([tf.debugging.Assert(ok, [
                f"input length is not valid: it must be {self.min_length} + k*{self.step}; got", t])]):
            return tf.identity(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "channels": self.channels, "min_length": self.min_length,
                  "step": self.step}
        if self.waveunet_config:
            config["waveunet_config"] = self.waveunet_config
        return config
