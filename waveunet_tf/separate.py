"""Whole-song separation: the windowing routine of the serving client, songs in memory, and the `separate`
command's batch of files, each song's stems written so that nothing is lost or mixed.

A song is cut into windows by a :class:`waveunet_tf.shapes.WindowPlan` (where windows start, how long they are,
what each keeps; see :mod:`waveunet_tf.shapes`), each window goes through a model's ``predict`` (a Keras model,
a SavedModel's ``piece`` signature, or a TF Serving server), and the kept parts are joined in order. Local
models run as a stream (:mod:`waveunet_tf.streaming`, :class:`waveunet_tf.separator.Separator`); the serving
client runs its windows concurrently with :func:`run_windows`.
"""

from __future__ import annotations

import collections
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from waveunet_tf import pretrained, shapes
from waveunet_tf.audio import load_audio, match_channels, resample
from waveunet_tf.config import variant_config
from waveunet_tf.errors import UsageError, UserError, first_line
from waveunet_tf.files import check_writable
from waveunet_tf.model_io import LoadedModel, one_thread_per_window
from waveunet_tf.precision import SEPARATE_DEFAULT, resolve
from waveunet_tf.separator import Separator, progress_report
from waveunet_tf.stems import WAV_HEADER_BYTES, StemWriter, WriteFailed, check_space, refuse_existing, song_name
from waveunet_tf.streaming import WINDOWS, check_prediction, window_schedule


def run_windows(predict, plan: shapes.WindowPlan, audio: np.ndarray, sources, progress=None,
                concurrency: int = 1) -> dict:
    """Run ``audio`` float32 [T, C] (``T == plan.length``, at the model's rate and channels) through ``predict``
    window by window -> ``{source: float32 [T, C]}``.

    Window ``i`` is the song's samples from ``plan.input_start(i)``, ``plan.input_length`` long (zeros beyond
    either end), sent as [1, input_length, C]; ``predict`` returns ``{source: [1, plan.output_length, C]}``, of
    which the first ``plan.kept(i)`` samples are the song's from ``i * plan.hop``. With ``concurrency > 1`` that
    many windows are in flight at once (a thread pool: a server, or cores TensorFlow leaves idle); the results
    are joined in order all the same. ``progress(samples)`` is called with each window's kept samples.
    """
    length, channels = audio.shape
    if length != plan.length:
        raise ValueError(f"the plan is for {plan.length} samples, the audio has {length}")
    out = {s: np.empty((length, channels), np.float32) for s in sources}

    def window(i):
        x = np.zeros((1, plan.input_length, channels), np.float32)
        start = plan.input_start(i)
        lo, hi = max(0, start), min(length, start + plan.input_length)
        x[0, lo - start:hi - start] = audio[lo:hi]
        return predict(x)

    def keep(i, pred):
        n = plan.kept(i)
        check_prediction(pred, sources, (1, plan.output_length, channels))
        for s in sources:
            out[s][i * plan.hop:i * plan.hop + n] = pred[s][0, :n]
        if progress is not None:
            progress(n)

    if concurrency <= 1:
        for i in range(plan.count):
            keep(i, window(i))
        return out
    with ThreadPoolExecutor(concurrency) as pool:
        pending = collections.deque()
        for i in range(plan.count):
            pending.append(pool.submit(window, i))
            if len(pending) == concurrency:  # bounded: at most `concurrency` windows held at once
                keep(i - concurrency + 1, pending.popleft().result())
        for j, future in enumerate(pending, start=plan.count - len(pending)):
            keep(j, future.result())
    return out


def to_model_input(audio, rate, sample_rate: int, channels: int) -> np.ndarray:
    """A song float32 [T, C_in] at ``rate`` -> [T', channels] at ``sample_rate``, T' >= 1: channels matched as
    the official code (:func:`waveunet_tf.audio.match_channels`), then resampled. Raises a one-line
    :class:`UserError` for an empty song or NaN/inf samples."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] < 1 or audio.shape[1] < 1:
        raise UserError(f"audio must be [time, channels] with at least one sample, not shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise UserError("the audio holds NaN or infinite samples")
    x = resample(match_channels(audio, channels), rate, sample_rate)
    if x.shape[0] == 0:  # 1 sample at 48 kHz resamples to none at 22050 Hz: one zero, cut again on the way back
        x = np.zeros((1, channels), np.float32)
    return x


def from_model_output(estimate, sample_rate: int, rate, length: int, channels: int) -> np.ndarray:
    """One source's estimate [T', C_model] at the model's rate back to the input: ``channels`` channels (as
    :func:`waveunet_tf.audio.match_channels`: a mono estimate duplicated, else the mean of the estimate's channels
    repeated), ``rate``, exactly ``length`` samples -> float32 [length, channels]."""
    y = np.asarray(estimate, np.float32)
    if y.shape[1] != channels and y.shape[1] > 1:
        y = match_channels(y, 1)  # average before resampling (fewer channels to resample)
    y = resample(y, sample_rate, rate)
    if y.shape[0] != length:  # resampling rounds the length; pad or cut to the input's exact length
        y = np.pad(y, ((0, max(0, length - y.shape[0])), (0, 0)))[:length]
    return np.ascontiguousarray(match_channels(y, channels), dtype=np.float32)


def plan_for(model: LoadedModel, length: int, window="default") -> shapes.WindowPlan:
    """The windows ``model`` runs over ``length`` samples (model rate): ``"default"`` (aligned, at most
    ``model.max_hop`` kept samples), ``"paper"`` (the official prediction's windows), or an integer: aligned
    windows of at most that many kept samples (tests and benchmarks)."""
    window_schedule(model, window, None)  # the one check of a window argument
    if window == "paper":
        return shapes.plan_paper(model.config, length)
    return shapes.plan_aligned(model.geometry, length, model.max_hop if window == "default" else int(window))


def separate_array(model, config, audio, rate, window="default", progress=None) -> dict:
    """Separate a song held in memory: :meth:`waveunet_tf.separator.Separator.separate` (the stream over one
    block), for callers holding a model.

    ``model``: a :class:`waveunet_tf.model_io.LoadedModel`, or a Keras Wave-U-Net (``config`` its config),
    wrapped for this call (its function then traced again: wrap it once for many songs).
    ``audio``: float32 [T, C_in] (or [T]) at ``rate`` Hz, any channel count. Returns ``{source: float32
    [T, C_in]}`` at ``rate``, exactly T samples. ``progress(seconds_done)`` (optional) is called with the seconds
    of audio each window completed. Silent windows give silent stems (the network's biases would invent sound).
    """
    model = model if isinstance(model, LoadedModel) else LoadedModel.of_keras(model, config)
    return Separator(model, window=window).separate(audio, rate, progress)


def separate_files(paths, model_path, out_dir, force=False, window="default", on_written=None,
                   precision=SEPARATE_DEFAULT, threads_per_window=False) -> list[Path]:
    """``waveunet separate``: write ``out_dir/<song>/<source>.wav`` for each audio file, streamed (see
    :meth:`waveunet_tf.separator.Separator.separate_file`). Everything that needs no model is checked before
    it is loaded (and an ``official:`` model downloaded): the output folder, the inputs, existing stems.
    ``threads_per_window``: first set TensorFlow's threads for the whole process to one per op, two windows at
    once (:func:`waveunet_tf.model_io.one_thread_per_window`), as the CLI does."""
    if window not in WINDOWS:
        raise UsageError(f"--window must be one of {', '.join(WINDOWS)}, not {window!r}")
    resolve(precision)  # bfloat16 on a CPU without it is refused before any download
    paths, out_dir = _check_batch(paths, out_dir)
    for p in paths:
        if not p.is_file():
            raise UserError(f"{p} does not exist or is not a file")
    sources = _known_sources(model_path)
    if sources is not None:
        for p in paths:
            refuse_existing(out_dir / song_name(p), sources, force, p)
    if threads_per_window:
        one_thread_per_window()
    separator = Separator(model_path, precision=precision, window=window)
    return _for_each_song(paths, out_dir, separator.sources, force, "separate",
                          lambda path: separator.separate_file(path, out_dir, force), on_written)


def write_separated(paths, out_dir, sources, force, command, separate, on_written=None) -> list[Path]:
    """Decode each file whole, ``separate(audio, rate, progress) -> {source: [T, C]}``, and write
    ``out_dir/<song>/<source>.wav`` (32-bit float, the input's rate and length) with the same protocol as
    ``separate`` (:class:`waveunet_tf.stems.StemWriter`); returns the song folders written, in order, calling
    ``on_written(folder)`` after each. (The serving client: its server separates a song held in memory.)"""
    paths, out_dir = _check_batch(paths, out_dir)
    for p in paths:
        refuse_existing(out_dir / song_name(p), sources, force, p)

    def one(path):
        audio, rate = load_audio(path)  # a bad file fails before its folder is claimed or created
        folder = out_dir / song_name(path)
        check_space(out_dir, len(sources) * (audio.nbytes + WAV_HEADER_BYTES), path)
        with StemWriter(folder, sources, rate, audio.shape[1], force, path, command) as writer:
            with progress_report(folder.name, audio.shape[0] / rate, command) as progress:
                stems = separate(audio, rate, progress)
            del audio
            writer.write(stems)
        return folder

    return _for_each_song(paths, out_dir, sources, force, command, one, on_written)


def _check_batch(paths, out_dir):
    """The checks of a batch that need nothing but the arguments: ``-o`` a folder, one folder per song."""
    paths, out_dir = [Path(p) for p in paths], Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir} is a file; give the folder the stems go into (it is created if missing)")
    names = [song_name(p) for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"two inputs would write the same folder {out_dir / dupes[0]}; separate them in two calls")
    check_writable(out_dir)
    return paths, out_dir


def _known_sources(model_path):
    """The sources of ``official:NAME`` without downloading or importing it (its variant says them); ``None``
    for other models (loading them is the way to know)."""
    text = str(model_path)
    if not text.startswith(pretrained.PREFIX):
        return None
    return tuple(variant_config(pretrained.official_model(text[len(pretrained.PREFIX):]).variant).sources)


def _for_each_song(paths, out_dir, sources, force, command, one, on_written) -> list[Path]:
    """``one(path) -> folder`` for each song. A file that cannot be decoded or separated is reported on stderr
    and the others go on; at the end a :class:`UserError` names the files that failed (a single file's own
    error when it was the only one). A failed write stops the batch."""
    written, failed = [], []
    for path in paths:
        try:
            folder = one(path)
        except WriteFailed:
            raise
        except UserError as e:
            error = e if str(path) in str(e) else UserError(f"{path}: {first_line(e)}")
            if len(paths) == 1:
                if error is e:
                    raise
                raise error from e
            print(f"waveunet {command}: error: {first_line(error)}", file=sys.stderr)
            failed.append((path, e))
            continue
        written.append(folder)
        if on_written is not None:
            on_written(folder)
    if failed:
        raise UserError(f"{len(failed)} of {len(paths)} files failed: {', '.join(str(p) for p, _ in failed)}"
                        ) from failed[0][1]
    return written
