"""A model's fingerprint: what ties a run's checkpoints, its ``best.keras`` and the scores computed from it."""

from __future__ import annotations

import hashlib
import json

import numpy as np


def model_fingerprint(model, config=None) -> str:
    """sha256 (hex) of the config (if given) and of every weight's shape and bytes, in order. The same model
    saved twice (a ``.keras`` zip holds timestamps) has the same fingerprint; a retrained one another."""
    h = hashlib.sha256()
    if config is not None:
        h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for w in model.get_weights():
        h.update(str(w.shape).encode())
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()
