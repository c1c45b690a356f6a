"""Shared fixtures of the data-pipeline tests (loaded with ``pytest_plugins = ["conftest_data"]``).

A tiny synthetic MUSDB18-HQ dataset (3 train + 1 test tracks of 2 s) prepared once per session at 8 kHz, and
helpers (``data.tiny(...)`` configs at that rate, ``data.cached(...)``, ``data.locate(...)``) through the
``data`` fixture, so test modules need not import this module themselves.
"""

import sys

import numpy as np
import pytest
import soundfile as sf

from data_pipeline import make_synthetic_dataset, prepare_cache
from waveunet_tf import variant_config

RATE = 8000


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), tracks=3, test_tracks=1, seconds=2, seed=3)


@pytest.fixture(scope="session")
def synth_cache(synth_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache") / "cache"
    prepare_cache(synth_root, cache, RATE, wav=True)
    return cache


@pytest.fixture(scope="session")
def data():
    """This module: its helpers and ``RATE``."""
    return sys.modules[__name__]


def tiny(name="M4", **kw):
    kw = {"num_layers": 3, "num_initial_filters": 4, "requested_output": 256, "sample_rate": RATE, **kw}
    return variant_config(name, **kw)


def cached(cache, track, stem):
    """A cached stem as float32 [T, C], exactly as the stream scales 16-bit samples."""
    data, rate = sf.read(str(cache / track["dir"] / f"{stem}.wav"), dtype="int16", always_2d=True)
    if rate != RATE:
        raise ValueError(f"{track['dir']}/{stem}.wav is at {rate} Hz, not {RATE}")
    return data.astype(np.float32) / 32768.0


def locate(window, signal):
    """Start of the first exact occurrence of ``window`` [n, C] in ``signal`` [T, C]; None if absent."""
    n = len(window)
    if len(signal) < n:
        return None
    views = np.lib.stride_tricks.sliding_window_view(signal, n, axis=0)  # [T-n+1, C, n]
    hits = np.nonzero(np.all(views == window.T[None], axis=(1, 2)))[0]
    return int(hits[0]) if len(hits) else None
