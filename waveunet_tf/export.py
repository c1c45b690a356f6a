"""Export a Wave-U-Net as a SavedModel that the stock TensorFlow Serving binary loads.

Signatures (every input is named ``mixture``, float32 ``[batch, time, channels]`` at the model's rate):

- ``serving_default``: a whole song, any ``time >= 1`` -> ``{source: [batch, time, channels]}``. The graph pads
  with the context, runs phase-aligned windows in a ``tf.while_loop`` (memory bounded by the window, not the
  song) and crops: the same stems as ``waveunet separate`` at the model's rate.
- ``piece``: one piece of a long song with its context: ``piece_context_left`` samples before it and
  ``piece_context_right`` after it (zeros beyond the song's ends) -> the centre ``[batch, time - left - right,
  channels]``. Pieces whose centres start on multiples of ``piece_multiple`` join exactly into the
  ``serving_default`` result.
- ``model_info``: the model's facts as constants (sample rate, channels, source names, window and
  context lengths, the full config as JSON), so a client needs nothing but the server. Its ``mixture`` input
  is ignored (send any ``[1, 1, channels]``): TF Serving's predict API needs an input.

Only core TensorFlow ops: no tensorflow-io, no ``py_function`` (checked by the tests against the op registry).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from waveunet_tf import shapes
from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.separation import default_hop, piece_extra

SIGNATURES = ("serving_default", "piece", "model_info")


def model_facts(cfg) -> dict:
    """The facts a server or client needs, as plain values (the ``model_info`` signature's outputs)."""
    left, right = shapes.context(cfg)
    hop = default_hop(cfg)
    return {
        "sample_rate": cfg.sample_rate,
        "channels": cfg.channels,
        "sources": list(cfg.sources),
        "window_input": hop + piece_extra(cfg) + left + right if cfg.context else hop,
        "window_output": hop,
        "context_left": left,
        "context_right": right,
        "piece_context_left": left,
        "piece_context_right": right + piece_extra(cfg),
        "piece_multiple": shapes.step(cfg) if cfg.context else hop,
        "variant": cfg.name,
        "config_json": cfg.to_json(),
    }


def _module(model, cfg):
    import tensorflow as tf

    facts = model_facts(cfg)
    C, sources = cfg.channels, tuple(cfg.sources)
    left, right_piece = facts["piece_context_left"], facts["piece_context_right"]
    context_total = left + right_piece
    step, max_hop = shapes.step(cfg), facts["window_output"]
    spec = tf.TensorSpec([None, None, C], tf.float32, name="mixture")

    class WaveUNetServing(tf.Module):
        def __init__(self):
            super().__init__(name="waveunet_serving")
            self.model = model
            # Keras 3 variables wrap tf.Variables that tf.Module does not see; without tracking them the
            # TF1-style loader of tensorflow_model_server finds no variable (keras-team/keras#20095).
            self.model_variables = [w.value for w in model.weights]

        def _centre(self, x):
            """[B, n + left + right_piece, C] -> [B, n, C] per source, window by window."""
            n = tf.shape(x)[1] - context_total
            with tf.control_dependencies([tf.debugging.assert_greater(
                    n, 0, message=f"the piece must be longer than its context ({context_total} samples)")]):
                n = tf.identity(n)
            if cfg.context:  # a short input: one window just long enough (same phase, same result)
                hop = tf.minimum(max_hop, (n + step - 1) // step * step)
            else:
                hop = tf.constant(max_hop)
            w_in = hop + context_total  # a valid input length: its output is hop + piece_extra samples
            count = (n + hop - 1) // hop
            needed = (count - 1) * hop + w_in
            batch = tf.shape(x)[0]
            x = tf.pad(x, [[0, 0], [0, tf.maximum(needed - tf.shape(x)[1], 0)], [0, 0]])

            def body(i, arrays):
                window = x[:, i * hop:i * hop + w_in, :]
                window = tf.ensure_shape(window, [None, None, C])
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
        def model_info(self, mixture):  # the input is ignored (TF Serving's predict wants one): send [1, 1, C]
            del mixture
            return {k: tf.constant(v) for k, v in facts.items()}

    return WaveUNetServing()


def check_version_dir(out, force=False) -> Path:
    """``DIR/VERSION`` as TF Serving expects: VERSION an integer folder name; an existing one only with force."""
    out = Path(out)
    if not out.name.isdigit():
        raise UsageError(f"--out must end in an integer version folder (TF Serving layout DIR/VERSION, e.g. "
                        f"models/waveunet/1), not {out}")
    if out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to replace it, or export a new version number")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    return out


def export_saved_model(model, cfg, out, force=False) -> Path:
    """Write the SavedModel of ``model`` to ``out`` (``DIR/VERSION``), atomically: built in a hidden sibling
    folder and renamed into place, so a failed export leaves nothing half-written."""
    import tensorflow as tf

    out = check_version_dir(out, force)
    module = _module(model, cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-export"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tf.saved_model.save(module, str(tmp), signatures={name: getattr(module, name) for name in SIGNATURES})
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        (extra / "waveunet.json").write_text(json.dumps(model_facts(cfg), indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


class ServingModel:
    """An exported SavedModel used like a Keras model by :func:`waveunet_tf.separation.separate_array`:
    the song goes through its ``piece`` signature piece by piece (exactly the ``serving_default`` result)."""

    def __init__(self, loaded, facts):
        self.loaded, self.facts = loaded, facts

    def separate_model_rate(self, audio, window="default", progress=None):
        import numpy as np

        from waveunet_tf.separation import song_pieces
        if window != "default":
            raise UserError("a SavedModel runs its exported windows only; use the .keras model for --window paper")
        f = self.facts
        out = {s: [] for s in f["sources"]}
        piece_fn = self.loaded.signatures["piece"]
        for start, n, x in song_pieces(audio, f["piece_context_left"], f["piece_context_right"],
                                       f["piece_multiple"], f["window_output"]):
            pred = piece_fn(mixture=x[None])
            for s in f["sources"]:
                out[s].append(pred[s].numpy()[0])
            if progress is not None:
                progress(n)
        return {s: np.concatenate(v) for s, v in out.items()}


def read_facts(signature_outputs) -> dict:
    """``model_info`` outputs (tensors or arrays) -> plain facts."""
    import numpy as np
    facts = {}
    for k, v in signature_outputs.items():
        v = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        if v.dtype.kind in "SOU":
            v = [b.decode() if isinstance(b, bytes) else str(b) for b in v.reshape(-1)]
            facts[k] = v if k == "sources" else v[0]
        else:
            facts[k] = int(v.reshape(-1)[0])
    return facts


def load_saved_model(path):
    """An exported SavedModel folder -> (ServingModel, WaveUNetConfig)."""
    import tensorflow as tf

    from waveunet_tf.config import WaveUNetConfig
    try:
        loaded = tf.saved_model.load(str(path))
        info = loaded.signatures["model_info"]
        channels = info.structured_input_signature[1]["mixture"].shape[-1]
        facts = read_facts(info(mixture=tf.zeros([1, 1, channels])))
    except (KeyError, OSError, ValueError, tf.errors.OpError) as e:
        raise UserError(f"{path} is not a SavedModel exported by waveunet export: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    return ServingModel(loaded, facts), WaveUNetConfig.from_dict(json.loads(facts["config_json"]))
