"""Whole-song separation: windows, stitching, resampling, and writing the stems.

How a song is cut into windows (all lengths in samples at the model's rate):

- The song is padded with the model's context, ``left`` zeros in front and zeros at the end, and windows of
  input length ``W_in`` start every ``hop`` samples of the padded song. Window ``i`` predicts the song's samples
  ``[i*hop, i*hop + W_out)``; its first ``hop`` outputs are kept, so the kept parts join without gap or overlap.
- The network decimates ``num_layers`` times, so what it computes depends on where a window starts modulo
  ``2**num_layers`` (the decimation phase). The ``default`` windows of a context model use a ``hop`` that is a
  multiple of ``2**num_layers``: every window sees the same phase, and the stems do not depend on the window
  length at all (measured: identical up to float rounding). The context is then paid once per long window
  instead of once per 0.74 s, which is what makes whole songs fast.
- ``paper`` windows reproduce the official prediction: the training window (e.g. M4: 147443 in, 16389 out),
  ``hop = W_out``, so consecutive windows see different phases.
- Models without context (M1, M2) were trained on windows zero-padded at their edges ("same" convolutions);
  they always use their training window (``W_in = W_out = hop``).
"""

from __future__ import annotations

import math
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from waveunet_tf import shapes
from waveunet_tf.errors import UserError

WINDOWS = ("default", "paper")

# Output samples per default window of a context model (2**18: 11.9 s at 22050 Hz). Measured on M4, 2 cores:
# twice as long gains under 10% speed and costs ~350 MB more, which a 10-minute song cannot afford under 2 GB.
DEFAULT_HOP = 2**19


@dataclass(frozen=True)
class WindowPlan:
    """``count`` windows of ``input_length`` samples every ``hop`` samples of the song padded with ``left``
    zeros in front (and zeros at its end); each predicts ``output_length`` samples, the first ``hop`` kept."""

    input_length: int
    output_length: int
    hop: int
    count: int
    left: int


def piece_extra(cfg) -> int:
    """Extra right context a grid-aligned piece needs: valid output lengths are ``out0 + k*2**L``, so a window
    whose output covers ``n`` (a multiple of ``2**L``) samples exactly produces ``n + piece_extra`` samples."""
    if not cfg.context:
        return 0
    out0 = shapes.lengths_for_bottleneck(cfg, shapes.min_bottleneck(cfg))[1]
    return out0 % shapes.step(cfg)


def default_hop(cfg) -> int:
    """The default window's hop: ``DEFAULT_HOP`` samples of output rounded to a multiple of ``2**num_layers``
    (context models); the training window for models without context."""
    if not cfg.context:
        return cfg.input_length
    s = shapes.step(cfg)
    return max(s, DEFAULT_HOP // s * s)


def plan_windows(cfg, length: int, window="default") -> WindowPlan:
    """How to cut a song of ``length`` samples (model rate) into windows.

    ``window``: ``"default"`` (long phase-aligned windows), ``"paper"`` (the training window), or an integer hop
    (a multiple of ``2**num_layers``, context models only; for tests and benchmarks).
    """
    left, right = shapes.context(cfg)
    if length < 1:
        raise UserError("cannot separate an empty signal")
    if not cfg.context:
        hop = w_in = w_out = cfg.input_length
    elif window == "paper":
        w_in, w_out = cfg.input_length, cfg.output_length
        hop = w_out
    else:
        s = shapes.step(cfg)
        if window == "default":
            hop = default_hop(cfg)
        elif isinstance(window, (int, np.integer)) and not isinstance(window, bool) and window > 0 and window % s == 0:
            hop = int(window)
        else:
            raise UserError(f"window must be one of {', '.join(WINDOWS)} or a positive multiple of {s}, "
                            f"not {window!r}")
        hop = min(hop, math.ceil(length / s) * s)  # a short song: one window just long enough
        if window == "default":  # as many windows as needed, all of about the same length: no wasted tail
            hop = math.ceil(math.ceil(length / math.ceil(length / hop)) / s) * s
        w_out = hop + piece_extra(cfg)
        w_in = w_out + left + right
    count = math.ceil(length / hop)
    return WindowPlan(w_in, w_out, hop, count, left)


# one compiled forward pass per model: [1, time, channels] -> {source: [1, time_out, channels]}
_RUNNERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _runner(model, channels: int):
    import tensorflow as tf
    fn = _RUNNERS.get(model)
    if fn is None:
        def forward(x):
            return model(x, training=False)

        fn = tf.function(forward, input_signature=[tf.TensorSpec([1, None, channels], tf.float32)],
                         autograph=False)
        _RUNNERS[model] = fn
    return fn


def separate_model_rate(model, cfg, audio: np.ndarray, window="default", progress=None) -> dict:
    """Separate ``audio`` float32 [T, cfg.channels] at the model's rate -> ``{source: float32 [T, channels]}``.

    ``progress(samples_done)`` is called after each window with the number of song samples it completed.
    """
    if hasattr(model, "separate_model_rate"):  # an exported SavedModel (waveunet_tf.export.ServingModel)
        return model.separate_model_rate(audio, window, progress)
    length = audio.shape[0]
    plan = plan_windows(cfg, length, window)
    run = _runner(model, cfg.channels)
    out = {s: np.empty((length, cfg.channels), np.float32) for s in cfg.sources}
    window_in = np.zeros((1, plan.input_length, cfg.channels), np.float32)
    for i in range(plan.count):
        start = i * plan.hop  # song sample of the window's first output; its input starts `left` earlier
        lo, hi = max(0, start - plan.left), min(length, start - plan.left + plan.input_length)
        window_in[:] = 0.0  # zeros beyond the song's ends, without a padded copy of the whole song
        window_in[0, lo - (start - plan.left):hi - (start - plan.left)] = audio[lo:hi]
        pred = run(window_in)
        n = min(plan.hop, length - start)
        for s in cfg.sources:
            out[s][start:start + n] = pred[s].numpy()[0, :n]
        if progress is not None:
            progress(n)
    return out


def song_pieces(audio, left: int, right: int, multiple: int, chunk: int):
    """Cut a song [T, C] into pieces for the SavedModel's ``piece`` signature (or a server).

    Yields ``(start, n, piece)``: the piece's centre is the song's samples ``[start, start + n)``, ``start`` a
    multiple of ``multiple``; ``piece`` carries ``left`` samples before it and ``right`` after it (zeros beyond
    the song's ends), so the centres the network returns join exactly. ``chunk`` is rounded down to a multiple
    of ``multiple`` (at least one).
    """
    length, channels = audio.shape
    chunk = max(multiple, int(chunk) // multiple * multiple)
    padded = np.concatenate([np.zeros((left, channels), np.float32), np.asarray(audio, np.float32),
                             np.zeros((right, channels), np.float32)])
    for start in range(0, length, chunk):
        n = min(chunk, length - start)
        yield start, n, padded[start:start + left + n + right]


def to_model_input(audio, rate, sample_rate: int, channels: int) -> np.ndarray:
    """Check a song float32 [T, C_in] at ``rate`` and bring it to the model: resampled to ``sample_rate``,
    channels matched as the official code (mono model: mean of the channels; stereo model and mono input:
    duplicated). Raises a one-line :class:`UserError` for an empty song or NaN/inf samples."""
    from waveunet_tf.audio import match_channels, resample
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] < 1 or audio.shape[1] < 1:
        raise UserError(f"audio must be [time, channels] with at least one sample, not shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise UserError("the audio holds NaN or infinite samples")
    return match_channels(resample(audio, rate, sample_rate), channels)


def from_model_output(estimate, sample_rate: int, rate, length: int, channels: int) -> np.ndarray:
    """One source's estimate [T', C_model] at the model's rate back to the input: its channel count (a mono
    estimate duplicated, a stereo one averaged), its rate, and exactly ``length`` samples."""
    from waveunet_tf.audio import resample
    y = np.asarray(estimate, np.float32)
    if y.shape[1] != channels and channels == 1:
        y = y.mean(axis=1, keepdims=True)
    y = resample(y, sample_rate, rate)
    if y.shape[0] != length:  # resampling rounds the length; pad or cut to the input's exact length
        y = np.pad(y, ((0, max(0, length - y.shape[0])), (0, 0)))[:length]
    if y.shape[1] != channels:  # a mono estimate for a multichannel input: duplicated, after resampling once
        y = np.repeat(y, channels, axis=1)
    return np.ascontiguousarray(y, dtype=np.float32)


def separate_array(model, config, audio, rate, window="default", progress=None) -> dict:
    """Separate a song held in memory.

    ``audio``: float32 [T, C_in] at ``rate`` Hz, any channel count. Resampled to ``config.sample_rate``;
    channels matched as the official code (mono model: mean of the channels, the estimate duplicated back to
    C_in; stereo model and mono input: duplicated, the estimates averaged back to mono); separated; each
    source resampled back. Returns ``{source: float32 [T, C_in]}`` at ``rate``, exactly T samples.
    ``progress(seconds_done)`` (optional) is called with the seconds of audio each window completed.
    An all-silent input gives silent stems (the network's biases would otherwise invent sound).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    x = to_model_input(audio, rate, config.sample_rate, config.channels)
    length, channels = audio.shape
    if not np.any(audio):
        return {s: np.zeros_like(audio) for s in config.sources}
    step_progress = None
    if progress is not None:
        def step_progress(n):
            progress(n / config.sample_rate)
    est = separate_model_rate(model, config, x, window, step_progress)
    del x
    # one source at a time back to the input's rate, so a long song is never held twice per source
    return {s: from_model_output(est.pop(s), config.sample_rate, rate, length, channels) for s in config.sources}


def song_name(path) -> str:
    """``OUT/<song>/``: the file name without its extension (and without ``.stem`` of ``x.stem.mp4``)."""
    name = Path(path).stem
    return name[:-len(".stem")] if name.endswith(".stem") and len(name) > len(".stem") else name


def separate_files(paths, model_path, out_dir, force=False, window="default") -> list[Path]:
    """``waveunet separate``: write ``out_dir/<song>/<source>.wav`` for each audio file, at the input's rate and
    exact length (32-bit float WAV, so nothing is clipped). Existing stems are kept unless ``force``.
    Returns the folders written. A progress bar in seconds of audio goes to stderr."""
    from waveunet_tf.model_io import load_any_model
    check_inputs(paths)
    model, cfg = load_any_model(model_path)
    return write_separated(paths, out_dir, cfg.sources, force, "separate",
                           lambda audio, rate, progress: separate_array(model, cfg, audio, rate, window, progress))


def check_inputs(paths) -> None:
    for p in paths:
        if not Path(p).is_file():
            raise UserError(f"{p} does not exist or is not a file")


def write_separated(paths, out_dir, sources, force, command, separate) -> list[Path]:
    """Decode each file, ``separate(audio, rate, progress) -> {source: [T, C]}``, write
    ``out_dir/<song>/<source>.wav`` atomically. Nothing existing is overwritten without ``force`` (checked for
    every file before the first is separated)."""
    from tqdm import tqdm

    from waveunet_tf.audio import load_audio, write_wav
    paths, out_dir = [Path(p) for p in paths], Path(out_dir)
    check_inputs(paths)
    names = [song_name(p) for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"two inputs would write the same folder {out_dir / dupes[0]}; separate them in two calls")
    if not force:
        for n in names:
            existing = [out_dir / n / f"{s}.wav" for s in sources if (out_dir / n / f"{s}.wav").exists()]
            if existing:
                raise UserError(f"{existing[0]} exists; pass --force to overwrite")
    written = []
    for p, n in zip(paths, names):
        audio, rate = load_audio(p)
        if not np.any(audio):
            print(f"waveunet {command}: note: {p} is all silence; writing silent stems", file=sys.stderr)
        total = round(audio.shape[0] / rate, 1)
        with tqdm(total=total, unit="s", desc=n[:30], file=sys.stderr, disable=None,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]"
                  ) as bar:
            stems = separate(audio, rate, lambda sec: bar.update(min(sec, bar.total - bar.n)))
        for s in sources:
            write_wav(out_dir / n / f"{s}.wav", stems[s], rate, subtype="FLOAT")
        written.append(out_dir / n)
    return written
