"""Finding and loading a trained model: MODEL may be a run directory, a ``.keras`` file (or a SavedModel
directory, where the command supports it)."""

from __future__ import annotations

from pathlib import Path

from waveunet_tf.config import WaveUNetConfig
from waveunet_tf.errors import UserError


def config_of(model) -> WaveUNetConfig:
    """The resolved config a model was built from: a :class:`waveunet_tf.builder.WaveUNet` carries it; models
    saved before that class existed carry it in their ``input_check`` layer."""
    if getattr(model, "waveunet_config", None) is not None:
        return model.waveunet_config
    try:
        d = model.get_layer("input_check").waveunet_config
    except ValueError as e:
        raise UserError(f"model {model.name!r} was not built by waveunet_tf.build_model") from e
    return WaveUNetConfig.from_dict(d)


KERAS_MODELS = "a run directory with best.keras, or a .keras file"


def resolve_keras_path(path, accepted=KERAS_MODELS) -> Path:
    """A run directory means its ``best.keras``; a ``.keras`` file is itself. ``accepted`` (for the message)
    says what the command takes."""
    path = Path(path)
    if path.is_dir():
        if (path / "best.keras").is_file():
            return path / "best.keras"
        if (path / "saved_model.pb").is_file():
            raise UserError(f"{path} is a SavedModel; this command needs a run directory or a .keras file")
        raise UserError(f"{path} is not a model: expected {accepted}")
    if not path.exists():
        raise UserError(f"model {path} does not exist")
    if path.suffix != ".keras":
        raise UserError(f"{path} is not a model: expected {accepted}")
    return path


def load_model(path, accepted=KERAS_MODELS):
    """Load a Wave-U-Net from a run directory or ``.keras`` file -> (keras.Model, WaveUNetConfig)."""
    import keras
    import waveunet_tf.layers  # noqa: F401  (registers the custom layers)
    file = resolve_keras_path(path, accepted)
    try:
        model = keras.models.load_model(file, compile=False)
    except Exception as e:
        raise UserError(f"{file} is not a loadable Keras model: {str(e).splitlines()[0] if str(e) else e!r}") from None
    return model, config_of(model)


def is_saved_model(path) -> bool:
    return Path(path).is_dir() and (Path(path) / "saved_model.pb").is_file()


def load_any_model(path):
    """MODEL for commands that also take an exported SavedModel (``waveunet export``'s ``DIR/VERSION``) ->
    (model, WaveUNetConfig). For a SavedModel the model is a :class:`waveunet_tf.export.ServingModel`."""
    if is_saved_model(path):
        from waveunet_tf.export import load_saved_model
        return load_saved_model(path)
    return load_model(path, KERAS_MODELS.replace(", or", ",") + ", or a SavedModel version folder")
