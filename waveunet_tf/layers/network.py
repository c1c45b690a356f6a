"""The Wave-U-Net assembled from its layers, layer for layer as the official TF1 code: a functional Keras model
that carries its config (build it with :func:`waveunet_tf.builder.build_model`)."""

import keras

from waveunet_tf import shapes
from waveunet_tf.config import WaveUNetConfig
from waveunet_tf.layers.conv import Conv1D
from waveunet_tf.layers.crop import CropAndConcat
from waveunet_tf.layers.input_check import InputCheck
from waveunet_tf.layers.output import ClipAtInference, DifferenceOutput
from waveunet_tf.layers.resampling import Decimate, LearnedUpsample, LinearUpsample


@keras.saving.register_keras_serializable(package="waveunet_tf")
class WaveUNet(keras.Model):
    """The functional Wave-U-Net of a :class:`WaveUNetConfig`, which it carries as ``waveunet_config``.

    As in keras-hub, ``get_config`` holds the constructor's arguments (the config and the dtype policy), so
    ``keras.models.load_model`` rebuilds the network from its config and then loads the weights by layer name.
    """

    def __init__(self, config, dtype=None, **kwargs):
        config = WaveUNetConfig.from_dict(config) if isinstance(config, dict) else config
        mixture, outputs = _network(config, dtype)
        kwargs.setdefault("name", f"waveunet_{config.name}".replace("-", "_"))
        super().__init__(mixture, outputs, **kwargs)
        self.waveunet_config = config

    def get_config(self):
        # the policy the network was built with (e.g. mixed_bfloat16), not the model object's own; the first
        # convolution has it (the input check and output layers stay float32 under a mixed policy)
        policy = self.get_layer("down_conv_0").dtype_policy
        return {"name": self.name, "trainable": self.trainable, "config": self.waveunet_config.to_dict(),
                "dtype": keras.dtype_policies.serialize(policy)}


def _float32_under_mixed(dtype):
    """The dtype of the input check and the output layers: float32 under a mixed policy (``dtype``, or the global
    policy when None), so the estimates and the difference output (mixture minus estimates) are not rounded to
    bfloat16 / float16; otherwise ``dtype`` itself."""
    policy = keras.dtype_policies.get(dtype) if dtype is not None else keras.config.dtype_policy()
    return "float32" if policy.compute_dtype != policy.variable_dtype else dtype  # mixed: computes narrower


def _network(config, dtype):
    """(input tensor, {source: output tensor}) of the Wave-U-Net; every layer gets ``dtype`` (a policy or None),
    the input check and output layers float32 under a mixed policy.

    Between the input and the output convolutions the signal is a one-row NHWC image [B, 1, T, C]
    (:class:`Conv1D`), so every hidden convolution with its bias and LeakyReLU is the Conv2D + BiasAdd +
    LeakyRelu pattern TensorFlow fuses into one op; the output convolutions return [B, T, C]. The layers, their
    names and weights are those of a network of Keras ``Conv1D`` and ``LeakyReLU`` layers (files saved by either
    load into the other)."""
    L, Fc, C = config.num_layers, config.num_initial_filters, config.channels
    padding = "valid" if config.context else "same"
    upsample = LearnedUpsample if config.upsampling == "learned" else LinearUpsample

    def conv(x, filters, width, name):
        x = Conv1D(filters, width, padding=padding, name=name, dtype=dtype)(x)
        return keras.layers.LeakyReLU(negative_slope=config.leaky_relu_alpha, name=name + "_act", dtype=dtype)(x)

    out_dtype = _float32_under_mixed(dtype)
    mixture_in = keras.Input(shape=(None, C), name="mixture")
    mixture = InputCheck(C, shapes.min_input_length(config), shapes.step(config), name="input_check",
                         dtype=out_dtype)(mixture_in)

    x, skips = mixture, []
    for i in range(L):
        x = conv(x, Fc * (i + 1), config.filter_size, f"down_conv_{i}")
        skips.append(x)
        x = Decimate(name=f"decimate_{i}", dtype=dtype)(x)
    x = conv(x, Fc * (L + 1), config.filter_size, "bottleneck_conv")

    for i in range(L):
        x = upsample(context=config.context, name=f"upsample_{i}", dtype=dtype)(x)
        x = CropAndConcat(name=f"crop_concat_{i}", dtype=dtype)([skips[L - 1 - i], x])
        x = conv(x, Fc * (L - i), config.merge_filter_size, f"up_conv_{i}")
    x = CropAndConcat(name="crop_concat_mixture", dtype=dtype)([mixture, x])

    tanh = config.output_activation == "tanh"
    estimated = config.sources[:-1] if config.output_type == "difference" else config.sources
    outputs = {}
    for source in estimated:
        y = Conv1D(C, config.output_filter_size, padding=padding, activation="tanh" if tanh else None,
                      squeeze_output=True, name=f"output_conv_{source}", dtype=out_dtype)(x)
        outputs[source] = y if tanh else ClipAtInference(name=f"clip_{source}", dtype=out_dtype)(y)
    if config.output_type == "difference":
        last = config.sources[-1]
        outputs[last] = DifferenceOutput(name=f"difference_{last}", dtype=out_dtype)(
            [mixture] + [outputs[s] for s in estimated])
    return mixture_in, {s: outputs[s] for s in config.sources}
