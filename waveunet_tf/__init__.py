"""waveunet-tf: the Wave-U-Net (Stoller, Ewert, Dixon, ISMIR 2018) in TensorFlow/Keras.

Public names: ``variant_config(name, **overrides)``, ``build_model(config)``, ``WaveUNetConfig``, ``Separator``
(:class:`waveunet_tf.separator.Separator`: a model loaded once, separating audio in memory, files and streams).

Importing the package is enough for ``keras.models.load_model`` to find the model's layers (keras-hub's
convention), before or after ``import keras``; yet TensorFlow is not imported here, so ``waveunet --help``
answers at once: the layers register the moment Keras is (or already was) imported.
"""

import importlib.util
import sys

from waveunet_tf.builder import build_model
from waveunet_tf.config import WaveUNetConfig, variant_config, variant_names
from waveunet_tf.separator import Separator
from waveunet_tf.version import __version__


def _register_keras_objects():
    """Import the modules whose decorators register the layers and ``WaveUNet`` with Keras."""
    import waveunet_tf.layers  # noqa: F401  (heavy: imports Keras and TensorFlow)


class _RegisterWhenKerasLoads:
    """A meta path finder (duck-typed: importlib.abc costs 30 ms at start-up) that finds nothing itself: on the
    first import of ``keras`` it wraps Keras' own loader so that, once ``keras`` has finished loading, our Keras
    objects register; then it removes itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:  # stay until Keras really loads: TensorFlow's import only looks Keras up first
            sys.meta_path.insert(0, self)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def load_then_register(module):
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                load(module)
                _register_keras_objects()

            spec.loader.exec_module = load_then_register
        return spec


if "keras" in sys.modules:
    _register_keras_objects()
else:
    sys.meta_path.insert(0, _RegisterWhenKerasLoads())



__all__ = ["WaveUNetConfig", "variant_config", "variant_names", "build_model", "Separator", "__version__"]
