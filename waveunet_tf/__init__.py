"""waveunet-tf: the Wave-U-Net (Stoller, Ewert, Dixon, ISMIR 2018) in TensorFlow/Keras.

Public names: ``variant_config(name, **overrides)``, ``build_model(config)``, ``WaveUNetConfig``.
TensorFlow is imported lazily, so ``waveunet --help`` answers at once.
"""

__version__ = "0.1.0"

from waveunet_tf.config import WaveUNetConfig, variant_config, variant_names  # noqa: E402  (no TF import)


def __getattr__(name):
    if name == "build_model":
        from waveunet_tf.builder import build_model
        return build_model
    raise AttributeError(f"module 'waveunet_tf' has no attribute {name!r}")


__all__ = ["WaveUNetConfig", "variant_config", "variant_names", "build_model", "__version__"]
