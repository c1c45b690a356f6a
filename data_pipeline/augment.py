"""Data augmentation of training excerpts.

The paper's: each source is multiplied by a gain drawn from U(0.7, 1.0) before the sources are summed into the
mixture (``augment_gain_min`` / ``augment_gain_max``). Beyond the paper, off by default: a random swap of the
left and right channels (``augment_channel_swap``); remixing sources drawn from different tracks
(``augment_remix``, done where the windows are read, in :mod:`data_pipeline.streams`).
"""

from __future__ import annotations


def apply(windows: dict, sources: list, uniforms, config) -> dict:
    """Augment ``{source: [T, C]}`` windows with ``len(sources) + 1`` uniform numbers in [0, 1) (float64).

    The first ``len(sources)`` set the gains, the last decides the channel swap (probability 1/2).
    """
    import tensorflow as tf
    lo, hi = float(config.augment_gain_min), float(config.augment_gain_max)
    out = {}
    for i, source in enumerate(sources):
        gain = tf.cast(lo + (hi - lo) * uniforms[i], tf.float32)
        out[source] = windows[source] * gain
    if config.augment_channel_swap and config.channels == 2:
        swap = uniforms[len(sources)] < 0.5
        out = {s: tf.cond(swap, lambda x=x: tf.reverse(x, axis=[1]), lambda x=x: x) for s, x in out.items()}
    return out
