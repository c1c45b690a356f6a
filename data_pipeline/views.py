"""Task views over the cache: which stems make each of a config's sources, and how channels are matched.

- voice task (``accompaniment``, ``vocals``): accompaniment = bass + drums + other, clipped to [-1, 1] as the
  official code builds it, or the track's own accompaniment (CCMixter, your own songs); vocals as cached.
- multi-instrument task (``bass``, ``drums``, ``other``, ``vocals``): the stems as cached.
- mono configs read the mean of the channels; a mono file feeding a stereo model is duplicated. Channels are
  matched per stem, before stems are summed, as the official code loads each stem as mono.
"""

from __future__ import annotations

from data_pipeline.cache import source_stems


def task_stems(config, stems) -> dict[str, list[str]]:
    """``{source: [stem, ...]}`` for the config's sources, in its source order, from a track of ``stems``."""
    return {source: source_stems(source, stems) for source in config.sources}


def stem_table(cache, config, tracks):
    """The files that make each source of each track, as a table every track fills alike (tracks of different
    corpora make a source of different stems): ``(paths [tracks, columns] str, weights [tracks, columns]
    float32, {source: [column, ...]})``. A source's unused columns repeat one of its files with weight 0."""
    wanted = [task_stems(config, cache.stems_of(t)) for t in tracks]
    width = {s: max(len(w[s]) for w in wanted) for s in config.sources}
    columns, paths, weights, offset = {}, [], [], 0
    for s in config.sources:
        columns[s], offset = list(range(offset, offset + width[s])), offset + width[s]
    for track, w in zip(tracks, wanted):
        row_paths, row_weights = [], []
        for s in config.sources:
            stems = w[s] + [w[s][0]] * (width[s] - len(w[s]))
            row_paths += [str(cache.path(track, stem)) for stem in stems]
            row_weights += [1.0] * len(w[s]) + [0.0] * (width[s] - len(w[s]))
        paths.append(row_paths)
        weights.append(row_weights)
    return paths, weights, columns


def combine(windows):
    """One source window [T, C] from its stem windows: the stem itself, or their sum clipped to [-1, 1]."""
    import tensorflow as tf
    if len(windows) == 1:
        return windows[0]
    return tf.clip_by_value(tf.add_n(windows), -1.0, 1.0)


def match_channels(x, channels: int):
    """[T, c] -> [T, channels]: mono takes the mean of the channels; a mono file is duplicated for stereo."""
    import tensorflow as tf
    if channels == 1:
        return tf.reduce_mean(x, axis=1, keepdims=True)
    return tf.broadcast_to(x, [tf.shape(x)[0], channels])
