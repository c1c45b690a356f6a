"""What TensorFlow Serving needs beside the SavedModel in production: warm-up records and batching parameters.

Warm-up (TF Serving's "SavedModel Warmup" guide): when it loads a version, the server replays
``assets.extra/tf_serving_warmup_requests``, a TFRecord file of ``PredictionLog`` records (at most 1000), so the
first user request does not pay for TensorFlow's lazy initialisation. The records must look like real requests:
here a ``model_info`` request and a ``piece`` request of the client's default length.

Batching (``--enable_batching --batching_parameters_file``): a ``BatchingParameters`` text proto
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto); the values follow TF Serving's Batching
Guide (tensorflow_serving/batching/README.md, "Batch Scheduling Parameters and Tuning"), as each comment says.
"""

from __future__ import annotations

import os
from pathlib import Path

from waveunet_tf.files import atomic_path, atomic_write_text
from waveunet_tf.serving import pieces

WARMUP_FILE = "tf_serving_warmup_requests"
BATCHING_FILE = "batching_parameters.txt"
DEFAULT_CONCURRENCY = 2  # pieces one `waveunet client` keeps in flight by default


def warmup_requests(facts: dict) -> list:
    """``PredictionLog`` protos: a ``model_info`` request ``[1, 1, C]`` and a ``piece`` request ``[1, W, C]``, W the
    input length of a piece of the client's default ``--chunk-seconds``. The inputs are zeros, written as one
    ``float_val`` that TensorFlow repeats over the shape, so the file stays a few hundred bytes."""
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    channels = int(facts["channels"])
    piece_input = pieces.piece_plan(facts, 1).input_length
    logs = []
    for signature, time in (("model_info", 1), ("piece", piece_input)):
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.0])
        for size in (1, time, channels):
            tensor.tensor_shape.dim.add(size=size)
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = signature
        request.inputs["mixture"].CopyFrom(tensor)
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(folder, facts: dict) -> Path:
    """Write :func:`warmup_requests` as ``folder/tf_serving_warmup_requests`` (a TFRecord file)."""
    import tensorflow as tf

    path = Path(folder) / WARMUP_FILE
    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for log in warmup_requests(facts):
                writer.write(log.SerializeToString())
    return path


def batching_parameters(facts: dict, cores: int | None = None) -> str:
    """The text of ``batching_parameters.txt`` for this model on a CPU server with ``cores`` cores (default: this
    machine's)."""
    cores = cores or os.cpu_count() or 1
    piece_input = pieces.piece_plan(facts, 1).input_length
    return f"""# TensorFlow Serving batching parameters for this Wave-U-Net ({facts['variant']}), by `waveunet export`.
# Use: tensorflow_model_server --enable_batching --batching_parameters_file=THIS_FILE ...
# Fields: BatchingParameters in tensorflow_serving/servables/tensorflow/session_bundle_config.proto.
# Values: TF Serving's Batching Guide (tensorflow_serving/batching/README.md), section "Performance Tuning".
# `waveunet client` sends pieces of one length ({piece_input} samples x {facts['channels']} channels at the
# default --chunk-seconds), so batched requests always join along dimension 0.

# "CPU-only: One Approach": num_batch_threads equal to the number of CPU cores ({cores} on the machine that
# exported; set the server's count).
num_batch_threads {{ value: {cores} }}

# "CPU-only: One Approach": start with batch_timeout_micros 0, then try 1000-10000 (1-10 ms).
batch_timeout_micros {{ value: 0 }}

# The guide's CPU-only start is "max_batch_size to infinity", tuned down; the parameter's definition bounds it by
# the resources a batch needs. One piece already runs on every core (TensorFlow's intra-op threads), so on a CPU
# batching adds little throughput and multiplies memory: a batch holds at most the pieces one client keeps in
# flight by default (`waveunet client --concurrency {DEFAULT_CONCURRENCY}`). On a GPU follow "GPU: One Approach".
max_batch_size {{ value: {DEFAULT_CONCURRENCY} }}

# "Overall Guidelines": for online serving, max_enqueued_batches equal to num_batch_threads.
max_enqueued_batches {{ value: {cores} }}

# Off: equal pieces need no padding, and padding zero-pads the time axis without cropping the answers, which
# would return stems of the wrong length; unequal inputs in one batch fail instead (FailedPrecondition).
pad_variable_length_inputs: false
"""


def write_batching_parameters(folder, facts: dict) -> tuple[Path, bool]:
    """Write ``folder/batching_parameters.txt`` unless one with other values is there (a user's tuned file is
    kept). Returns the path and whether it now holds this model's values."""
    path = Path(folder) / BATCHING_FILE
    text = batching_parameters(facts)
    if path.exists():
        return path, path.read_text(errors="replace") == text
    atomic_write_text(path, text)
    return path, True
