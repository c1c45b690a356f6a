"""tf.data streams of padded-context excerpts from the WAV cache: the training loop's batches and the
validation windows.

Windows are read lazily with tensorflow-io (``tfio.audio.AudioIOTensor`` slicing), one file per stem, so no
track is ever held in memory whole. Where a window runs past a track's start or end it is zero-padded (the
official code pads every track by the context, so its first and last samples are trained too).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from data_pipeline import augment as augmentation
from data_pipeline import views
from data_pipeline.cache import MIXTURE, open_cache
from waveunet_tf import shapes
from waveunet_tf.errors import UserError


def _window_reader(cache):
    """``read(path, start, length, file_length) -> float32 [length, file_channels]``, zero-padded outside."""
    import tensorflow as tf
    import tensorflow_io as tfio
    dtype = tf.as_dtype(cache.dtype)
    scale = 1.0 / 32768.0 if dtype == tf.int16 else 1.0

    def read(path, start, length, file_length):
        lo = tf.clip_by_value(start, 0, file_length)
        hi = tf.clip_by_value(start + length, 0, file_length)
        # every window the streams ask for overlaps its track, so lo < hi here
        audio = tfio.audio.AudioIOTensor(path, dtype=dtype)[lo:hi]
        audio = tf.cast(audio, tf.float32) * scale
        return tf.pad(audio, [[lo - start, start + length - hi], [0, 0]])

    return read


def _interleave_lanes(lane, steps=None):
    """Batches built by parallel lanes, merged round-robin: batch ``n`` comes from lane ``n % lanes``.

    Why not ``map(num_parallel_calls=...)``: tensorflow-io keeps one file resource per kernel, and concurrent
    calls of the same map function share that kernel, so a parallel map reads one call's window from another
    call's file (measured: wrong windows). Each lane is its own traced map (its own kernels), run sequentially
    in its own prefetch thread. The stream does not depend on the number of lanes.
    """
    import tensorflow as tf
    n_lanes = max(2, min(8, os.cpu_count() or 2))
    if steps is not None:
        n_lanes = max(1, min(n_lanes, steps))
    options = tf.data.Options()
    options.experimental_optimization.map_parallelization = False  # never run a lane's reads concurrently
    lanes = [lane(k, n_lanes).prefetch(2).with_options(options) for k in range(n_lanes)]
    choice = tf.data.Dataset.range(n_lanes).repeat()
    if steps is not None:
        choice = choice.take(steps)
    return tf.data.Dataset.choose_from_datasets(lanes, choice)


def _tables(cache, config, tracks):
    """Constant tensors of :func:`views.stem_table` (paths, weights) and the tracks' lengths [tracks] (int64), the
    columns of each source, and ``scale(x, track, column)``: a padding column's window times its weight 0."""
    import tensorflow as tf
    paths, weights, columns = views.stem_table(cache, config, tracks)
    padded = any(w == 0.0 for row in weights for w in row)
    weights = tf.constant(weights, tf.float32)

    def scale(x, track, column):
        return x * weights[track, column] if padded else x

    lengths = tf.constant([int(t["length"]) for t in tracks], dtype=tf.int64)
    return tf.constant(paths), lengths, columns, scale


def _open_checked(cache, config, split):
    cache = open_cache(cache) if isinstance(cache, (str, Path)) else cache
    cache.check(config)
    tracks = cache.tracks_in(split, config)
    cache.warn_channels(config, tracks)
    return cache, tracks


def training_dataset(cache, config, batch_size: int, seed: int | None = None, augment: bool = True,
                     split: str = "train"):
    """An infinite stream of random training excerpts, in batches.

    Elements: ``(mixture [B, config.input_length, C], {source: [B, config.output_length, C]})`` float32, for
    ``config.sources`` (``C = config.channels``). Each example picks a track with probability proportional to
    its length and an output position uniformly over it; the input window adds the model's context on both
    sides (zero-padded past the track's ends). The mixture is the sum of the (augmented) source windows and
    each target is the centre ``output_length`` samples of its source window.

    Augmentation (``augment=True``): each source times a gain from U(config.augment_gain_min, _max); if the
    config asks, a random channel swap (``augment_channel_swap``) and sources drawn from different tracks
    (``augment_remix``). The same ``seed`` gives the same stream; ``seed=None`` draws one at random.
    """
    import tensorflow as tf
    if int(batch_size) < 1:
        raise UserError(f"batch size must be at least 1, not {batch_size}")
    cache, tracks = _open_checked(cache, config, split)
    left, _ = shapes.context(config)
    in_len, out_len, channels = config.input_length, config.output_length, config.channels
    paths, lengths, columns, scale = _tables(cache, config, tracks)
    wanted = list(config.sources)
    read = _window_reader(cache)
    # one read location per group of sources: all sources together, or one per source when remixing
    remix = augment and config.augment_remix and len(wanted) > 1
    groups = list(wanted) if remix else [None]
    cumulative = tf.cast(tf.cumsum(lengths), tf.float64) / tf.cast(tf.reduce_sum(lengths), tf.float64)
    seed = secrets.randbits(31) if seed is None else int(seed)
    n_uniform = 2 * len(groups) + len(wanted) + 1

    def example(index):
        u = tf.random.stateless_uniform([n_uniform], seed=tf.stack([tf.constant(seed, tf.int64), index]),
                                        dtype=tf.float64)
        windows = {}
        for g, group in enumerate(groups):
            track = tf.minimum(tf.searchsorted(cumulative, u[2 * g: 2 * g + 1], side="right")[0],
                               len(tracks) - 1)
            length = lengths[track]
            positions = tf.maximum(length - out_len, 0) + 1
            out_start = tf.minimum(tf.cast(u[2 * g + 1] * tf.cast(positions, tf.float64), tf.int64), positions - 1)
            for source in (wanted if group is None else [group]):
                stem_windows = [scale(views.match_channels(read(paths[track, c], out_start - left, in_len, length),
                                                           channels), track, c) for c in columns[source]]
                windows[source] = views.combine(stem_windows)
        sources = list(wanted)
        if augment:
            extra = u[2 * len(groups):]
            windows = augmentation.apply(windows, sources, extra, config)
        mixture = tf.add_n([windows[s] for s in sources])
        mixture = tf.ensure_shape(mixture, [in_len, channels])
        targets = {s: tf.ensure_shape(windows[s][left:left + out_len], [out_len, channels]) for s in sources}
        return mixture, targets

    b = int(batch_size)

    def lane(k, n_lanes):
        # lane k builds the global batches k, k + n_lanes, ...: example index = batch * b + position in batch
        i = tf.data.Dataset.counter()
        return i.map(lambda i: (k + n_lanes * (i // b)) * b + i % b).map(example).batch(b, drop_remainder=True)

    return _interleave_lanes(lane).prefetch(tf.data.AUTOTUNE)


def evaluation_windows(cache, config, split: str = "valid") -> list[tuple[int, int]]:
    """``(track index in the split, output start)`` of every output window, hop = ``output_length``."""
    cache, tracks = _open_checked(cache, config, split)
    out_len = config.output_length
    return [(i, start) for i, t in enumerate(tracks) for start in range(0, int(t["length"]), out_len)]


def evaluation_steps(cache, config, split: str = "valid", batch_size: int = 16) -> int:
    """Number of batches :func:`evaluation_dataset` yields (also ``int(dataset.cardinality())``)."""
    n = len(evaluation_windows(cache, config, split))
    return -(-n // int(batch_size))


def evaluation_dataset(cache, config, split: str = "valid", batch_size: int = 16):
    """Every output window of every track of ``split``, in order: a finite, deterministic dataset.

    Same elements as :func:`training_dataset`: ``(mixture [B, input_length, C], {source: [B, output_length,
    C]})``, but the mixture is the cached mixture file (in MUSDB18 it differs from the sum of the stems by the
    codec's error) and there is no augmentation. Windows hop by ``output_length``; the last window of a track
    and the context around the track's ends are zero-padded. The last batch may be smaller. Its number of
    batches: ``int(dataset.cardinality())`` or :func:`evaluation_steps`.
    """
    import tensorflow as tf
    cache, tracks = _open_checked(cache, config, split)
    left, _ = shapes.context(config)
    in_len, out_len, channels = config.input_length, config.output_length, config.channels
    paths, lengths, columns, scale = _tables(cache, config, tracks)
    mixtures = tf.constant([str(cache.path(t, MIXTURE)) for t in tracks])
    read = _window_reader(cache)
    windows = evaluation_windows(cache, config, split)
    index = tf.constant([w[0] for w in windows], tf.int64)
    start = tf.constant([w[1] for w in windows], tf.int64)

    def example(track, out_start):
        length = lengths[track]
        mixture = views.match_channels(read(mixtures[track], out_start - left, in_len, length), channels)
        targets = {}
        for source, source_columns in columns.items():
            stem_windows = [scale(views.match_channels(read(paths[track, c], out_start, out_len, length), channels),
                                  track, c) for c in source_columns]
            targets[source] = tf.ensure_shape(views.combine(stem_windows), [out_len, channels])
        return tf.ensure_shape(mixture, [in_len, channels]), targets

    b = int(batch_size)
    steps = -(-len(windows) // b)

    def lane(k, n_lanes):
        # lane k builds the global batches k, k + n_lanes, ... (only the very last batch may be short)
        mine = [n * b + j for n in range(k, steps, n_lanes) for j in range(b) if n * b + j < len(windows)]
        ds = tf.data.Dataset.from_tensor_slices((tf.gather(index, mine), tf.gather(start, mine)))
        return ds.map(example).batch(b)

    ds = _interleave_lanes(lane, steps)
    return ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(tf.data.AUTOTUNE)
