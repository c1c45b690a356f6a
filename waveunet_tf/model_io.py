"""Finding and loading a trained model into the one callable every inference path uses.

MODEL may be a run directory (its ``best.keras``), a ``.keras`` file, ``official:NAME`` (the official authors'
trained models, fetched and imported on first use), or, where the command supports it, a SavedModel version
folder written by ``waveunet export``. :class:`LoadedModel` runs windows through either kind of model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from waveunet_tf import pretrained, shapes
from waveunet_tf.builder import build_model
from waveunet_tf.config import WaveUNetConfig
from waveunet_tf.errors import UsageError, UserError, first_line
from waveunet_tf.precision import policy, resolve
from waveunet_tf.threads import set_threads

# Windows a Keras model runs at once, each on one TensorFlow thread, when TensorFlow runs one thread per op (see
# one_thread_per_window); each window then keeps half of DEFAULT_MAX_HOP, so two in flight hold the memory of one.
# Measured on a 2-core AMD EPYC Zen 3 (TF 2.16.2, Eigen convolutions), full-size M4, 47 s of audio, 5 alternating
# runs each (machine shared, load 2-5): 0.162 s wall and 0.189 CPU-s per s of audio against 0.187 and 0.204 with
# one 2^19 window on both threads (`experiments/threads_bench.py`, see README "Inference speed").
WINDOWS_IN_FLIGHT = 2
KERAS_MODELS = "a run directory with best.keras, a .keras file, or official:NAME"
ANY_MODELS = "a run directory with best.keras, a .keras file, official:NAME, or a SavedModel version folder"


def config_of(model) -> WaveUNetConfig:
    """The resolved config a model was built from: a :class:`waveunet_tf.layers.network.WaveUNet` carries it; models
    saved before that class existed carry it in their ``input_check`` layer."""
    if getattr(model, "waveunet_config", None) is not None:
        return model.waveunet_config
    try:
        d = model.get_layer("input_check").waveunet_config
    except ValueError as e:
        raise UserError(f"model {model.name!r} was not built by waveunet_tf.build_model") from e
    return WaveUNetConfig.from_dict(d)


def resolve_model_path(path) -> Path:
    """``official:NAME`` -> the cached ``.keras`` file of that official model (fetched and imported on first
    use); anything else -> ``Path(path)``."""
    text = str(path)
    if text.startswith(pretrained.PREFIX):
        return pretrained.ensure_model(text[len(pretrained.PREFIX):], progress=True)
    return Path(path)


def resolve_keras_path(path, accepted=KERAS_MODELS) -> Path:
    """A run directory means its ``best.keras``; a ``.keras`` file is itself; ``official:NAME`` its cached
    file. ``accepted`` (for the message) says what the command takes."""
    path = resolve_model_path(path)
    if path.is_dir():
        if (path / "best.keras").is_file():
            return path / "best.keras"
        if is_saved_model(path):
            raise UserError(f"{path} is a SavedModel (as `waveunet export` writes), not a Keras model: expected "
                            f"{accepted}; load_any_model loads SavedModels")
        raise UserError(f"{path} is not a model: expected {accepted}")
    if not path.exists():
        raise UserError(f"model {path} does not exist")
    if path.suffix != ".keras":
        raise UserError(f"{path} is not a model: expected {accepted}")
    return path


def load_model(path, accepted=KERAS_MODELS, precision=None):
    """Load a Wave-U-Net from a run directory, a ``.keras`` file or ``official:NAME`` -> (keras.Model,
    WaveUNetConfig). (Importing waveunet_tf registered its layers with Keras.) ``precision`` (``"float32"`` or
    ``"bfloat16"``, resolved by :func:`waveunet_tf.precision.resolve`) runs it in that precision whatever it was
    saved in; None keeps the file's."""
    import keras
    file = resolve_keras_path(path, accepted)
    try:
        model = keras.models.load_model(file, compile=False)
    except Exception as e:
        raise UserError(f"{file} is not a loadable Keras model: {first_line(e)}") from e
    config = config_of(model)
    if precision is not None and policy_name(model) != (policy(precision) or "float32"):
        model = in_precision(model, config, precision)
    return model, config


def policy_name(model) -> str:
    """The dtype policy a Wave-U-Net's convolutions run in: ``float32``, ``mixed_bfloat16`` or ``mixed_float16``."""
    return model.get_layer("down_conv_0").dtype_policy.name


def in_precision(model, config, precision: str):
    """The same network and weights built in ``precision``'s dtype policy (weights stay float32 under the mixed
    policies, so they copy exactly, layer by layer by name)."""
    twin = build_model(config, precision)
    for layer in twin.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return twin


def one_thread_per_window() -> bool:
    """Let TensorFlow run each op on one thread and :data:`WINDOWS_IN_FLIGHT` ops at once, if it has not started
    yet in this process (its thread pools are fixed when it starts) and the CPU has that many cores -> whether
    TensorFlow runs one thread per op now. Process-wide, so no library function calls it: the commands that
    mainly run windows (``separate``, ``evaluate``, ``bench inference``) call it first; a program of your own that
    mainly separates may call it before anything else starts TensorFlow."""
    import tensorflow as tf
    if (os.cpu_count() or 1) >= WINDOWS_IN_FLIGHT and not tf.config.list_physical_devices("GPU"):
        set_threads(WINDOWS_IN_FLIGHT, 1)  # TensorFlow already started: it keeps its threads
    return tf.config.threading.get_intra_op_parallelism_threads() == 1


def is_saved_model(path) -> bool:
    return Path(path).is_dir() and (Path(path) / "saved_model.pb").is_file()


def load_any_model(path, precision="float32"):
    """MODEL for commands that also take an exported SavedModel (``waveunet export``'s ``DIR/VERSION``) ->
    (:class:`LoadedModel`, WaveUNetConfig), running in ``precision`` (``"auto"``, ``"float32"`` or
    ``"bfloat16"``, checked by :func:`waveunet_tf.precision.resolve`). A SavedModel runs in float32, as exported:
    ``auto`` means float32 there, ``bfloat16`` is refused. TensorFlow's threads are left as they are (the CLI's
    commands choose them first: :func:`one_thread_per_window`)."""
    if is_saved_model(path):
        if precision == "bfloat16":
            raise UsageError(f"{path} is a SavedModel, which runs in float32 as exported: use --precision float32 "
                             "or a .keras model")
        resolve(precision)  # a bad name is still refused
        return load_saved_model(path)
    model, config = load_model(path, ANY_MODELS, resolve(precision))
    return LoadedModel.of_keras(model, config), config


class LoadedModel:
    """One callable for every inference path: a Keras Wave-U-Net or an exported SavedModel's ``piece`` signature.

    ``predict(windows)``: float32 [B, w_in, C] -> ``{source: float32 [B, w_out, C]}`` (NumPy), with ``w_in``
    from the model's window plan (:mod:`waveunet_tf.shapes`): ``geometry`` (context, alignment step),
    ``max_hop`` (kept samples of its default windows), ``paper_windows`` (whether the official training windows
    can run: Keras models only). ``config``, ``sources``, ``channels``, ``sample_rate`` describe the model;
    ``precision`` is what it computes in (``float32``, ``bfloat16``; outputs are float32 in every case);
    ``concurrency`` how many windows :func:`waveunet_tf.separate.separate_array` runs at once.
    """

    def __init__(self, config, geometry, max_hop, predict, paper_windows, precision="float32", concurrency=1):
        self.config = config
        self.concurrency = int(concurrency)
        self.precision = precision
        self.sources = tuple(config.sources)
        self.channels = config.channels
        self.sample_rate = config.sample_rate
        self.geometry = geometry
        self.max_hop = int(max_hop)
        self.paper_windows = paper_windows
        self._predict = predict

    def predict(self, windows: np.ndarray) -> dict:
        return self._predict(np.asarray(windows, np.float32))

    @classmethod
    def of_keras(cls, model, config=None) -> "LoadedModel":
        """The callable of a Keras Wave-U-Net. Its function is traced once, on the first window, for every
        window length: make one per model and keep it for all songs. Where TensorFlow runs one thread per op
        (:func:`one_thread_per_window`), it runs :data:`WINDOWS_IN_FLIGHT` windows of half the default at once."""
        import tensorflow as tf
        config = config or config_of(model)
        computes = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(policy_name(model), "float32")
        one_per_op = tf.config.threading.get_intra_op_parallelism_threads() == 1
        windows = WINDOWS_IN_FLIGHT if one_per_op and (os.cpu_count() or 1) >= WINDOWS_IN_FLIGHT else 1
        return cls(config, shapes.WindowGeometry.of(config), shapes.DEFAULT_MAX_HOP // windows,
                   _keras_predict(model, config.channels), paper_windows=True, precision=computes, concurrency=windows)

    @classmethod
    def of_saved_model(cls, loaded, facts: dict) -> "LoadedModel":
        """The callable of a loaded SavedModel: windows go through its ``piece`` signature, which returns exactly
        the kept samples of aligned windows; its default windows are those of its ``serving_default``."""
        import tensorflow as tf
        piece = loaded.signatures["piece"]
        sources = list(facts["sources"])

        def predict(windows):
            out = piece(mixture=tf.constant(windows))
            return {s: out[s].numpy() for s in sources}

        model = cls(WaveUNetConfig.from_dict(json.loads(facts["config_json"])), shapes.WindowGeometry.of_facts(facts),
                    facts["window_output"], predict, paper_windows=False)
        model.saved_model = loaded  # the signature needs the loaded object alive
        return model


def inference_function(model, channels: int):
    """The ``tf.function`` every local inference path runs: float32 [B, T, channels] -> ``{source: [B, T', C]}``
    (traced once for all shapes; its graph is what grappler optimizes, e.g. fuses convolutions in)."""
    import tensorflow as tf
    return tf.function(lambda x: model(x, training=False), autograph=False,
                       input_signature=[tf.TensorSpec([None, None, channels], tf.float32)])


def _keras_predict(model, channels: int):
    forward = inference_function(model, channels)

    def predict(windows):
        return {s: v.numpy() for s, v in forward(windows).items()}

    return predict


def read_facts(signature_outputs) -> dict:
    """``model_info`` outputs (tensors or arrays) -> plain facts (``sources`` a list of names, others scalars)."""
    facts = {}
    for k, v in signature_outputs.items():
        v = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        if v.dtype.kind in "SOU":
            v = [b.decode() if isinstance(b, bytes) else str(b) for b in v.reshape(-1)]
            facts[k] = v if k == "sources" else v[0]
        else:
            facts[k] = int(v.reshape(-1)[0])
    return facts


def load_saved_model(path):
    """An exported SavedModel folder -> (:class:`LoadedModel`, WaveUNetConfig)."""
    import tensorflow as tf
    try:
        loaded = tf.saved_model.load(str(path))
        info = loaded.signatures["model_info"]
        channels = info.structured_input_signature[1]["mixture"].shape[-1]
        facts = read_facts(info(mixture=tf.zeros([1, 1, channels])))
        model = LoadedModel.of_saved_model(loaded, facts)
    except (KeyError, OSError, ValueError, tf.errors.OpError) as e:
        raise UserError(f"{path} is not a SavedModel exported by waveunet export: {first_line(e)}") from e
    return model, model.config
