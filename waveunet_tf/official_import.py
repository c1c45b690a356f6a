"""Import checkpoints written by the official TensorFlow 1 implementation (f90/Wave-U-Net).

Facts about those checkpoints: the convolutions are ``separator/conv1d``, ``separator/conv1d_1``, ... in creation
order (see :func:`waveunet_tf.builder.conv_layer_names`), each with ``kernel`` [width, in, out] (the Keras Conv1D
layout) and ``bias``; learned upsampling weights are ``separator/interp_<i>``. ``global_step``, the Adam slots and
``beta1_power``/``beta2_power`` are ignored.
"""

from __future__ import annotations

from pathlib import Path

from waveunet_tf.builder import build_model, conv_layer_names
from waveunet_tf.config import WaveUNetConfig, read_json_object
from waveunet_tf.errors import UserError, first_line

# official Config.py key -> our config key (values converted by _from_official)
OFFICIAL_KEYS = ("num_layers", "num_initial_filters", "filter_size", "merge_filter_size", "input_filter_size",
                 "output_filter_size", "upsampling", "output_type", "context", "source_names", "mono_downmix",
                 "output_activation", "num_frames")


def config_from_official(official: dict, name: str = "official") -> WaveUNetConfig:
    """Our config from the official configuration dict (its other keys, e.g. training paths, are ignored)."""
    missing = [k for k in OFFICIAL_KEYS if k not in official]
    if missing:
        raise UserError(f"official config lacks {', '.join(missing)}; it needs all of {', '.join(OFFICIAL_KEYS)}")
    o = official
    kw = dict(name=name, description="imported from an official configuration",
              num_layers=o["num_layers"], num_initial_filters=o["num_initial_filters"],
              filter_size=o["filter_size"], merge_filter_size=o["merge_filter_size"],
              input_filter_size=o["input_filter_size"], output_filter_size=o["output_filter_size"],
              upsampling=o["upsampling"], output_type=o["output_type"], context=o["context"],
              sources=list(o["source_names"]), channels=1 if o["mono_downmix"] else 2,
              output_activation=o["output_activation"], requested_output=o["num_frames"])
    if "expected_sr" in o:
        kw["sample_rate"] = o["expected_sr"]
    if "batch_size" in o:
        kw["batch_size"] = o["batch_size"]
    return WaveUNetConfig().replace(**kw)


def load_official_config(path) -> WaveUNetConfig:
    """Our config from an official configuration JSON file (named after the file)."""
    return config_from_official(read_json_object(path, "official config"), name=Path(path).stem)


def official_variable_map(model, config) -> list[tuple[str, object]]:
    """(checkpoint variable name, Keras variable) pairs in the official creation order."""
    pairs = []
    convs = conv_layer_names(config)
    for k, layer_name in enumerate(convs):
        if config.upsampling == "learned" and layer_name.startswith("up_conv_"):
            i = int(layer_name.rsplit("_", 1)[1])
            pairs.append((f"separator/interp_{i}", model.get_layer(f"upsample_{i}").interp))
        prefix = "separator/conv1d" + ("" if k == 0 else f"_{k}")
        layer = model.get_layer(layer_name)
        pairs += [(f"{prefix}/kernel", layer.kernel), (f"{prefix}/bias", layer.bias)]
    return pairs


def _creation_order(name):
    """Sort key: conv1d, conv1d_1, conv1d_2, ... numerically, kernel before bias."""
    layer, _, var = name.rpartition("/")
    stem, _, num = layer.rpartition("_")
    number = int(num) if num.isdigit() and stem.endswith("conv1d") else 0
    return (stem if num.isdigit() else layer, number, var != "kernel", var)


def import_checkpoint(checkpoint, config: WaveUNetConfig):
    """Build ``config``'s model and load the official checkpoint's weights into it -> keras.Model.

    ``checkpoint`` is a checkpoint prefix (``.../model-123``) or a directory holding one. A checkpoint that does
    not fit fails with one line naming the first variable whose shape differs (or that is missing).
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(checkpoint))
    except (ValueError, tf.errors.OpError) as e:
        raise UserError(f"{checkpoint} is not a TensorFlow checkpoint: {first_line(e)}") from e
    shapes = reader.get_variable_to_shape_map()
    model = build_model(config)
    pairs = official_variable_map(model, config)
    for name, var in pairs:
        want = tuple(var.shape)
        if name not in shapes:
            raise UserError(f"checkpoint {checkpoint} does not fit {config.name}: variable {name} with shape "
                            f"{list(want)} is missing")
        if tuple(shapes[name]) != want:
            raise UserError(f"checkpoint {checkpoint} does not fit {config.name}: {name} has shape "
                            f"{list(shapes[name])} in the checkpoint but {list(want)} in the model")
    expected = {n for n, _ in pairs}
    extra = sorted((n for n in shapes if n.startswith("separator/") and n not in expected), key=_creation_order)
    if extra:
        raise UserError(f"checkpoint {checkpoint} does not fit {config.name}: it has {extra[0]} "
                        f"{list(shapes[extra[0]])}, which the model lacks (more layers or sources?)")
    for name, var in pairs:
        try:
            value = reader.get_tensor(name)
        except (IndexError, tf.errors.OpError) as e:  # the index names more bytes than the data file holds
            raise UserError(f"checkpoint {checkpoint} is damaged: {_data_files(checkpoint)} ends before {name} "
                            f"({first_line(e)}): it is shorter than its .index says, e.g. a download or copy that "
                            "stopped early; copy or download it again") from e
        var.assign(value)
    return model


def _data_files(checkpoint) -> str:
    """The data file(s) of the checkpoint prefix (or folder) ``checkpoint``, for messages."""
    import tensorflow as tf
    prefix = tf.train.latest_checkpoint(str(checkpoint)) if Path(checkpoint).is_dir() else str(checkpoint)
    files = sorted(Path(prefix or checkpoint).parent.glob(f"{Path(prefix or checkpoint).name}.data-*"))
    return ", ".join(map(str, files)) or f"{prefix}.data-*"
