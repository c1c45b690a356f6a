"""Export a Wave-U-Net as a SavedModel that the stock TensorFlow Serving binary loads.

Signatures (every input is named ``mixture``, float32 ``[batch, time, channels]`` at the model's rate):

- ``serving_default``: a whole song, any ``time >= 1`` -> ``{source: [batch, time, channels]}``. The graph pads
  with the context, runs aligned windows (:func:`waveunet_tf.shapes.aligned_hop`, at most
  :data:`~waveunet_tf.shapes.DEFAULT_MAX_HOP` kept samples) in a ``tf.while_loop`` (memory bounded by the window,
  not the song) and crops: the same stems as ``waveunet separate`` at the model's rate.
- ``piece``: one piece of a long song with its context: ``piece_context_left`` samples before it and
  ``piece_context_right`` after it (zeros beyond the song's ends) -> the centre ``[batch, time - left - right,
  channels]``. Pieces whose centres start on multiples of ``piece_multiple`` join exactly into the
  ``serving_default`` result.
- ``model_info``: the model's facts as constants (sample rate, channels, source names, window and context
  lengths, the full config as JSON), so a client needs nothing but the server. Only the batch size of its
  ``mixture`` input is used (send ``[1, 1, channels]``): every output has it as its first dimension, because TF
  Serving's batching splits every output along dimension 0 and refuses one without it.

Only core TensorFlow ops: no tensorflow-io, no ``py_function`` (checked by the tests against the op registry).

The version folder is written beside its final place and swapped in (see :func:`export_saved_model`), so TF
Serving, which polls ``DIR`` for integer folders, never sees a half-written or missing version.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import sys
from pathlib import Path

from waveunet_tf import shapes
from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.files import (PARTIAL, atomic_write_text, partial_name, process_lock,
                               temporary_dir_beside)
from waveunet_tf.serving import production

SIGNATURES = ("serving_default", "piece", "model_info")

# What a SavedModel folder holds (tf.saved_model.save, Keras' and TF Serving's extras); --force replaces a folder
# holding nothing else, so a user's file is never deleted with an old version.
SAVED_MODEL_ENTRIES = frozenset({"saved_model.pb", "saved_model.pbtxt", "variables", "assets", "assets.extra",
                                 "fingerprint.pb", "keras_metadata.pb"})
MAX_VERSION = 2**63 - 1  # TF Serving parses version folder names as int64


def _max_hop(geometry: shapes.WindowGeometry) -> int:
    """Kept samples of the longest default window: what the plan makes of ``DEFAULT_MAX_HOP`` for a song at
    least that long."""
    return shapes.plan_aligned(geometry, shapes.DEFAULT_MAX_HOP, shapes.DEFAULT_MAX_HOP).hop


def model_facts(cfg) -> dict:
    """The facts a server or client needs, as plain values (the ``model_info`` signature's outputs)."""
    geometry = shapes.WindowGeometry.of(cfg)
    hop = _max_hop(geometry)
    left, right = shapes.context(cfg)
    return {
        "sample_rate": cfg.sample_rate,
        "channels": cfg.channels,
        "sources": list(cfg.sources),
        "window_input": geometry.window_input(hop),
        "window_output": hop,
        "context_left": left,
        "context_right": right,
        "piece_context_left": geometry.left,
        "piece_context_right": geometry.right + geometry.extra,
        "piece_multiple": geometry.step,
        "variant": cfg.name,
        "config_json": cfg.to_json(),
    }


def _module(model, cfg):
    import tensorflow as tf

    facts = model_facts(cfg)
    geometry = shapes.WindowGeometry.of(cfg)
    C, sources = cfg.channels, tuple(cfg.sources)
    left, right_piece = facts["piece_context_left"], facts["piece_context_right"]
    context_total = left + right_piece
    max_hop = facts["window_output"]
    spec = tf.TensorSpec([None, None, C], tf.float32, name="mixture")

    class WaveUNetServing(tf.Module):
        def __init__(self):
            super().__init__(name="waveunet_serving")
            self.model = model
            # Keras 3 variables wrap tf.Variables that tf.Module does not see; without tracking them the
            # TF1-style loader of tensorflow_model_server finds no variable (keras-team/keras#20095).
            self.model_variables = [w.value for w in model.weights]

        def _centre(self, x):
            """[B, n + left + right_piece, C] -> [B, n, C] per source, in aligned windows of the shared plan."""
            n = tf.shape(x)[1] - context_total
            with tf.control_dependencies([tf.debugging.assert_greater(
                    n, 0, message=f"the piece must be longer than its context ({context_total} samples)")]):
                n = tf.identity(n)
            hop = shapes.aligned_hop(n, max_hop, geometry.step)
            w_in = geometry.window_input(hop)
            count = shapes.ceil_div(n, hop)
            needed = (count - 1) * hop + w_in
            batch = tf.shape(x)[0]
            x = tf.pad(x, [[0, 0], [0, tf.maximum(needed - tf.shape(x)[1], 0)], [0, 0]])

            def body(i, arrays):
                window = tf.ensure_shape(x[:, i * hop:i * hop + w_in, :], [None, None, C])
                pred = self.model(window, training=False)
                return i + 1, tuple(a.write(i, pred[s][:, :hop, :]) for a, s in zip(arrays, sources))

            arrays = tuple(tf.TensorArray(tf.float32, size=count, element_shape=[None, None, C])
                           for _ in sources)
            _, arrays = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), arrays),
                                      parallel_iterations=1)
            out = {}
            for s, a in zip(sources, arrays):
                y = tf.transpose(a.stack(), [1, 0, 2, 3])  # [B, count, hop, C]
                out[s] = tf.reshape(y, [batch, count * hop, C])[:, :n, :]
            return out

        @tf.function(input_signature=[spec])
        def serving_default(self, mixture):
            x = tf.pad(mixture, [[0, 0], [left, right_piece], [0, 0]])
            return self._centre(x)

        @tf.function(input_signature=[spec])
        def piece(self, mixture):
            return self._centre(mixture)

        @tf.function(input_signature=[spec])
        def model_info(self, mixture):
            batch = tf.shape(mixture)[0]
            out = {}
            for k, v in facts.items():
                value = tf.constant(v)
                out[k] = tf.tile(value[None], tf.concat([[batch], tf.ones([tf.rank(value)], tf.int32)], 0))
            return out

    return WaveUNetServing()


def check_version_dir(out, force=False) -> Path:
    """``DIR/VERSION`` as TF Serving reads it: VERSION an integer folder name written as TF Serving prints it
    (``01`` would be version 1), no other folder of ``DIR`` with the same number; an existing version only with
    ``force``, and only if it holds a SavedModel and nothing else."""
    out = Path(out)
    name = out.name
    if not re.fullmatch(r"[0-9]+", name) or int(name) > MAX_VERSION:
        raise UsageError(f"--out must end in an integer version folder (TF Serving layout DIR/VERSION, e.g. "
                         f"models/waveunet/1), not {out}")
    if str(int(name)) != name:
        raise UsageError(f"--out {out}: TF Serving reads the folder name {name!r} as version {int(name)}; "
                         f"name it {out.parent / str(int(name))}")
    if out.parent.is_dir():
        for other in out.parent.iterdir():
            if other.name != name and re.fullmatch(r"[0-9]+", other.name) and int(other.name) == int(name):
                raise UserError(f"{other} is also version {int(name)} for TF Serving; rename or remove it before "
                                f"exporting {out}")
    if out.exists() or out.is_symlink():
        if not force:
            raise UserError(f"{out} exists; pass --force to replace it, or export a new version number")
        _check_replaceable(out)
    return out


def _check_replaceable(out: Path) -> None:
    if out.is_symlink() or not out.is_dir():
        raise UserError(f"{out} exists and is not a SavedModel folder; refusing to replace it (move it away first)")
    entries = sorted(p.name for p in out.iterdir())
    if entries and not {"saved_model.pb", "saved_model.pbtxt"} & set(entries):
        raise UserError(f"{out} holds no saved_model.pb, so it is not a SavedModel; refusing to replace it even with "
                        "--force (move it away first)")
    foreign = [e for e in entries if e not in SAVED_MODEL_ENTRIES]
    if foreign:
        raise UserError(f"{out} holds {out / foreign[0]}, which is not part of a SavedModel; refusing to replace "
                        "it even with --force (move it away first)")


def export_saved_model(model, cfg, out, force=False, warmup=True) -> Path:
    """Write the SavedModel of ``model`` to ``out`` (``DIR/VERSION``), with warm-up records
    (``assets.extra/tf_serving_warmup_requests``) unless ``warmup`` is false.

    The version is written into a hidden sibling folder (``.VERSION.*.partial``, ignored by TF Serving, which
    reads integer names only) and then put in place: a new version by one rename; an existing one (``force``) by
    exchanging the two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so at every moment
    ``DIR/VERSION`` holds the old or the new model. Where the system cannot exchange folders, the old version is
    renamed aside and the new one renamed in, leaving a moment without the version. One export per version at a
    time (a lock file ``DIR/.VERSION.export.lock``); the leftovers of a killed export are removed by the next."""
    out = check_version_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    with process_lock(out.parent / f".{out.name}.export.lock", f"the version folder {out}"):
        for leftover in out.parent.glob(f".{out.name}.*{PARTIAL}"):
            shutil.rmtree(leftover, ignore_errors=True)
        check_version_dir(out, force)  # again, now that no other export of this version runs
        tmp = temporary_dir_beside(out)
        try:
            _write_version(model, cfg, tmp, warmup)
            check_version_dir(out, force)  # a folder that appeared during the export is replaced only as allowed
            _put_in_place(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_version(model, cfg, folder: Path, warmup: bool) -> None:
    """The SavedModel, its facts (``assets.extra/waveunet.json``) and warm-up records, into ``folder``."""
    import tensorflow as tf

    module = _module(model, cfg)
    tf.saved_model.save(module, str(folder), signatures={name: getattr(module, name) for name in SIGNATURES})
    facts = model_facts(cfg)
    atomic_write_text(folder / "assets.extra" / "waveunet.json", json.dumps(facts, indent=1) + "\n")
    if warmup:
        production.write_warmup_requests(folder / "assets.extra", facts)


def _put_in_place(tmp: Path, out: Path) -> None:
    if not (out.exists() or out.is_symlink()):
        os.rename(tmp, out)  # fails (ENOTEMPTY) rather than replace a version that appeared meanwhile
        return
    if _exchange(tmp, out):  # out now holds the new model, tmp the old one (removed by the caller)
        return
    aside = out.parent / partial_name(out)
    os.rename(out, aside)
    os.rename(tmp, out)
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux ``renameat2`` with ``RENAME_EXCHANGE``, glibc >= 2.28); False
    where the system or the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2  # <fcntl.h>, <linux/fs.h>
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # e.g. a file system without RENAME_EXCHANGE
        return False
    cause = OSError(err, os.strerror(err), str(b))
    raise UserError(f"cannot replace {b}: {os.strerror(err)}") from cause
