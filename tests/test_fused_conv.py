"""The network's convolutions run fused (issue 17), and its `.keras` files are those of the Keras Conv1D layers.

Every hidden convolution is Conv2D + BiasAdd + LeakyRelu on a one-row NHWC image, which grappler's remapper turns
into one ``_FusedConv2D`` (Eigen's fused kernel on CPUs without oneDNN; TensorFlow's oneDNN build renames it
``_MklFusedConv2D`` / ``_MklNativeFusedConv2D``). The test reads the graph grappler makes of the very function
local inference runs (:func:`waveunet_tf.model_io.inference_function`), placed on the CPU.

``data/main_layout_M5_tiny.keras`` and its ``.npz`` (the input and the outputs) were saved by the code of commit
a4c0327, whose layers were Keras ``Conv1D`` and ``LeakyReLU`` (a tiny M5, num_layers 2, 2 initial filters, filter
sizes 5/3/5, weights uniform in [-0.5, 0.5] from ``default_rng(7)``; the zip recompressed with ``zip -9``).
"""

import collections
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.grappler import tf_optimizer

from waveunet_tf import build_model, variant_config
from waveunet_tf.builder import conv_layer_names
from waveunet_tf.model_io import inference_function, load_model

FUSED = {"_FusedConv2D", "_MklFusedConv2D", "_MklNativeFusedConv2D"}
MAIN_LAYOUT = Path(__file__).parent / "data" / "main_layout_M5_tiny.keras"


def optimized_graph(model, channels):
    """The GraphDef grappler makes of the inference function (default rewrites, every node on the CPU)."""
    concrete = inference_function(model, channels).get_concrete_function()
    meta = tf.compat.v1.train.export_meta_graph(graph_def=concrete.graph.as_graph_def(), graph=concrete.graph)
    for node in meta.graph_def.node:
        node.device = "/job:localhost/replica:0/task:0/device:CPU:0"
    meta.collection_def["train_op"].node_list.value.extend(t.op.name for t in concrete.outputs)
    return tf_optimizer.OptimizeGraph(config_pb2.ConfigProto(), meta)


def fused_convolutions(graph, layers):
    """{layer name: fused_ops of its fused convolution} for the ``layers`` found (a fused node is named after the
    last op it absorbed, in the scope of its layer or of the activation layer ``NAME_act``), and the op counts of
    the graph."""
    fused = {}
    for node in graph.node:
        if node.op in FUSED:
            scopes = node.name.split("/")
            for layer in layers:
                if any(re.fullmatch(rf"{layer}(_act)?(_\d+)?", s) for s in scopes):
                    fused[layer] = [op.decode() for op in node.attr["fused_ops"].list.s]
    return fused, collections.Counter(node.op for node in graph.node)


@pytest.mark.parametrize("name", ["M4", "M5-HighSR", "M1"])
def test_every_hidden_convolution_is_fused_with_its_bias_and_leaky_relu(name):
    cfg = variant_config(name)
    hidden = [n for n in conv_layer_names(cfg) if not n.startswith("output_conv_")]
    fused, ops = fused_convolutions(optimized_graph(build_model(cfg, "float32"), cfg.channels), hidden)
    assert len(hidden) == 2 * cfg.num_layers + 1
    assert {n: fused.get(n) for n in hidden} == {n: ["BiasAdd", "LeakyRelu"] for n in hidden}
    # nothing left unfused: no separate convolution, bias addition or activation runs
    assert ops["LeakyRelu"] == ops["Conv2D"] == ops["BiasAdd"] == 0


def test_a_file_saved_with_keras_conv1d_layers_loads_and_gives_its_outputs():
    model, cfg = load_model(MAIN_LAYOUT)
    expected = np.load(MAIN_LAYOUT.with_suffix(".npz"))
    outputs = model(expected["M5/input"], training=False)
    for s in cfg.sources:
        np.testing.assert_allclose(np.asarray(outputs[s]), expected[f"M5/{s}"], rtol=0, atol=1e-6)
        assert np.abs(expected[f"M5/{s}"]).max() > 0.01


def weight_entries(path):
    """{entry: shape} of the weights file inside a ``.keras`` file (Keras stores weights by class and order)."""
    entries = {}
    with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as f, h5py.File(f, "r") as h5:
        h5.visititems(lambda name, obj: entries.update({name: obj.shape}) if isinstance(obj, h5py.Dataset) else None)
    return entries


def test_a_saved_file_has_the_weight_layout_of_the_keras_conv1d_layers(tmp_path):
    # so the code before the fused layout (and any Keras reader of the file) loads today's files
    model, _ = load_model(MAIN_LAYOUT)
    model.save(tmp_path / "again.keras")
    old, new = weight_entries(MAIN_LAYOUT), weight_entries(tmp_path / "again.keras")
    assert new == old and "layers/conv1d_5/vars/1" in old
