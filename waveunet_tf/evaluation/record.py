"""``evaluation.json``: which model and which data an evaluation folder's scores belong to, so that scores of two
models are never pooled, and results are never shown as those of a model that was trained again since.

``{"model": path of the .keras file, "model_fingerprint": sha256 of its config and weights
(:func:`waveunet_tf.fingerprint.model_fingerprint`), "musdb_root", "wav", "subset"}``.

A run directory's ``state.json`` carries ``best_fingerprint``, the fingerprint of the weights ``best.keras`` holds
now (written by training whenever it writes ``best.keras``); results whose ``model_fingerprint`` differs are stale.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from waveunet_tf.errors import UserError
from waveunet_tf.files import atomic_write_text
from waveunet_tf.training.run_dir import STATE_FILE

RECORD_FILE = "evaluation.json"
SCORES_DIR = "scores"  # museval's score file per track: <out>/scores/<subset>/<track>.json
BASELINE_DIR = "baseline"  # the same for the mixture as every source's estimate
KEYS = ("model_fingerprint", "musdb_root", "wav", "subset")  # what must agree for scores to be pooled


def read_record(folder) -> dict | None:
    """The evaluation record of ``folder``; None if it has none. A damaged record fails with one line."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}; delete it and evaluate again (--force)") from e
    if not isinstance(record, dict):
        raise UserError(f"{path} is not an evaluation record (a JSON object); delete it and evaluate again")
    return record


def claim(out: Path, record: dict, scored, force: bool) -> None:
    """Scores in ``out`` belong to one model and one dataset: refuse to mix them with another's (unless
    ``force``, which deletes ``scored``: the folders and files of the old scores, estimates and aggregates),
    then write ``record``."""
    try:
        old = read_record(out) or {}
        changed = [k for k in KEYS if old and old.get(k) != record[k]]
    except UserError:
        if not force:
            raise
        changed = ["record"]
    if changed and not force:
        raise UserError(f"{out} holds an evaluation with another {changed[0].replace('_fingerprint', '')} "
                        f"({old.get(changed[0])!r}); pass --force to discard it, or choose another --out")
    if changed:  # before the new record: an interrupted start-over never shows old results as the new model's
        for p in scored:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    atomic_write_text(out / RECORD_FILE, json.dumps(record, indent=1) + "\n")


def _best_fingerprint(run_dir: Path) -> str:
    """``best_fingerprint`` of ``run_dir/state.json``; "" when there is none (not a run dir, no best model yet)."""
    state = run_dir / STATE_FILE
    if not state.is_file():
        return ""
    try:
        doc = json.loads(state.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {state}: {e}") from e
    return (doc.get("best_fingerprint") if isinstance(doc, dict) else None) or ""


def stale_reason(folder) -> str | None:
    """Why the results in ``folder`` no longer describe the model they scored (one phrase), or None: they do, or
    nothing tells (results without a record; a model file outside a run directory, which only loading could
    check)."""
    folder = Path(folder)
    record = read_record(folder)
    if record is None or not record.get("model"):
        return None
    model = Path(record["model"])
    if not model.parent.is_dir():  # the run dir was moved (results and model together): look beside the results
        model = folder / model.name
    if not model.is_file():
        return f"the model they scored, {model}, is gone"
    current = _best_fingerprint(model.parent)
    if current and current != record.get("model_fingerprint"):
        return f"they scored an earlier model: {model} was trained again since"
    return None
