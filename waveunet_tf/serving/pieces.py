"""How the client cuts a song into pieces for the exported ``piece`` signature (and the export's warm-up request,
which must look like the client's requests). Pure integer arithmetic on the model's facts; no TensorFlow.

Every piece of every song has the same length: ``hop`` centre samples (``--chunk-seconds`` rounded down to the
model's ``piece_multiple``) plus the context on both sides; the last piece is zero-padded beyond the song and its
answer cropped. So TF Serving's batching, which joins requests along dimension 0 and refuses unequal lengths
(unless ``pad_variable_length_inputs``, which pads without cropping back), can join any two pieces safely.
"""

from __future__ import annotations

import math

from waveunet_tf import shapes
from waveunet_tf.errors import UsageError

DEFAULT_CHUNK_SECONDS = 30.0


def check_chunk_seconds(seconds) -> float:
    """``--chunk-seconds``: a finite positive number of seconds, else a one-line :class:`UsageError`."""
    try:
        value = float(seconds)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--chunk-seconds must be a number of seconds, not {seconds!r}") from e
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"--chunk-seconds must be a positive number of seconds (e.g. 30), not {seconds}")
    return value


def piece_hop(facts: dict, chunk_seconds: float = DEFAULT_CHUNK_SECONDS) -> int:
    """Centre samples per piece: ``chunk_seconds`` at the model's rate rounded down to ``piece_multiple`` (at
    least one multiple)."""
    samples = int(check_chunk_seconds(chunk_seconds) * int(facts["sample_rate"]))
    return shapes.hop_at_most(samples, int(facts["piece_multiple"]))


def piece_plan(facts: dict, length: int, chunk_seconds: float = DEFAULT_CHUNK_SECONDS) -> shapes.WindowPlan:
    """The pieces of a song of ``length`` samples (model rate): windows of the ``piece`` signature, all
    ``geometry.window_input(hop)`` samples long, each keeping its ``hop`` centre samples (the last one cropped)."""
    geometry = shapes.WindowGeometry.of_facts(facts)
    hop = piece_hop(facts, chunk_seconds)
    return shapes.WindowPlan(length, geometry.window_input(hop), hop + geometry.extra, hop, geometry.left)
