"""The data pipeline: MUSDB18 ingest into a WAV cache, tf.data streams of padded-context excerpts, and a
synthetic dataset for tests and the demo.

Public names:
- ``prepare_cache(musdb_root, cache, sample_rate, wav=False, split="musdb", jobs=1, ccmixter_root=None, ...)``:
  build the cache (MUSDB18, your own songs, CCMixter; layouts in :mod:`data_pipeline.tracks`);
- ``open_cache(cache)``: read its manifest (``Cache.check(config)`` validates it against a config);
- ``training_dataset(cache, config, batch_size, seed=None, augment=True)``: the infinite training stream;
- ``evaluation_dataset(cache, config, split="valid", batch_size=16)``: every window of a split, in order;
  ``evaluation_steps(...)`` is its number of batches;
- ``make_synthetic_dataset(out, tracks=8, test_tracks=2, seconds=20, seed=0)``: a MUSDB18-HQ-style dataset.

TensorFlow is imported only by the stream functions, when they are called.
"""

from data_pipeline.cache import Cache, open_cache
from data_pipeline.ingest import prepare_cache
from data_pipeline.streams import evaluation_dataset, evaluation_steps, evaluation_windows, training_dataset
from data_pipeline.synth import make_synthetic_dataset

__all__ = ["Cache", "open_cache", "prepare_cache", "training_dataset", "evaluation_dataset", "evaluation_steps",
           "evaluation_windows", "make_synthetic_dataset"]
