"""Whole-song separation: the one windowing routine every inference path uses, rates and channels, and writing
each song's stems so that nothing is lost or mixed.

A song is cut into windows by a :class:`waveunet_tf.shapes.WindowPlan` (where windows start, how long they are,
what each keeps; see :mod:`waveunet_tf.shapes`), each window goes through a model's ``predict`` (a Keras model,
a SavedModel's ``piece`` signature, or a TF Serving server), and the kept parts are joined in order.
"""

from __future__ import annotations

import collections
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from waveunet_tf import shapes
from waveunet_tf.audio import load_audio, match_channels, resample, write_wav
from waveunet_tf.errors import UsageError, UserError, first_line
from waveunet_tf.files import atomic_write_text, check_writable, process_lock, remove_partials, temporary_dir_beside
from waveunet_tf.model_io import LoadedModel, load_any_model

WINDOWS = ("default", "paper")
# Held (flock) by the run writing a song's stems: a second run into the same folder is refused until it is done.
LOCK_NAME = ".stems.lock"
# Present only while a run moves its stems into place (it lists them): a run killed in between leaves it, and the
# next run that claims the song removes that mixed set before anything else.
MOVING_NAME = ".stems.moving"
WAV_HEADER_BYTES = 4096  # generous: a float WAV header is 58 bytes


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
        for s in sources:
            y = pred[s]
            if tuple(y.shape) != (1, plan.output_length, channels):
                raise UserError(f"the model returned {s} of shape {list(y.shape)} for a window of "
                                f"{plan.input_length} samples; expected {[1, plan.output_length, channels]}")
            out[s][i * plan.hop:i * plan.hop + n] = y[0, :n]
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
    if window == "paper":
        if not model.paper_windows:
            raise UsageError("a SavedModel runs its exported windows only; use the .keras model for --window paper")
        return shapes.plan_paper(model.config, length)
    if window == "default":
        return shapes.plan_aligned(model.geometry, length, model.max_hop)
    if isinstance(window, (int, np.integer)) and not isinstance(window, bool) and window > 0:
        return shapes.plan_aligned(model.geometry, length, int(window))
    raise UsageError(f"window must be one of {', '.join(WINDOWS)} or a positive number of samples, not {window!r}")


def separate_array(model, config, audio, rate, window="default", progress=None) -> dict:
    """Separate a song held in memory.

    ``model``: a :class:`waveunet_tf.model_io.LoadedModel`, or a Keras Wave-U-Net (``config`` its config),
    wrapped for this call (its function then traced again: wrap it once for many songs).
    ``audio``: float32 [T, C_in] (or [T]) at ``rate`` Hz, any channel count; brought to the model by
    :func:`to_model_input`, run through :func:`run_windows` with :func:`plan_for`'s windows, each source
    brought back by :func:`from_model_output`. Returns ``{source: float32 [T, C_in]}`` at ``rate``, exactly T
    samples. ``progress(seconds_done)`` (optional) is called with the seconds of audio each window completed.
    An all-silent input gives silent stems (the network's biases would otherwise invent sound).
    """
    model = model if isinstance(model, LoadedModel) else LoadedModel.of_keras(model, config)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    x = to_model_input(audio, rate, model.sample_rate, model.channels)
    length, channels = audio.shape
    if not np.any(audio):
        return {s: np.zeros_like(audio) for s in model.sources}
    step_progress = None if progress is None else (lambda n: progress(n / model.sample_rate))
    est = run_windows(model.predict, plan_for(model, x.shape[0], window), x, model.sources, step_progress,
                      concurrency=model.concurrency)
    del x
    # one source at a time back to the input's rate, so a long song is never held twice per source
    return {s: from_model_output(est.pop(s), model.sample_rate, rate, length, channels) for s in model.sources}


def song_name(path) -> str:
    """``OUT/<song>/``: the file name without its extension (and without ``.stem`` of ``x.stem.mp4``)."""
    name = Path(path).stem
    return name[:-len(".stem")] if name.endswith(".stem") and len(name) > len(".stem") else name


def separate_files(paths, model_path, out_dir, force=False, window="default", on_written=None) -> list[Path]:
    """``waveunet separate``: write ``out_dir/<song>/<source>.wav`` for each audio file (see
    :func:`write_separated`). The output folder is checked before the model is loaded."""
    if window not in WINDOWS:
        raise UsageError(f"--window must be one of {', '.join(WINDOWS)}, not {window!r}")
    check_writable(out_dir)
    model, _ = load_any_model(model_path)
    if window == "paper":
        plan_for(model, 1, window)  # a SavedModel cannot: say so before any song is decoded
    return write_separated(paths, out_dir, model.sources, force, "separate",
                           lambda audio, rate, progress: separate_array(model, None, audio, rate, window, progress),
                           on_written)


def write_separated(paths, out_dir, sources, force, command, separate, on_written=None) -> list[Path]:
    """Decode each file, ``separate(audio, rate, progress) -> {source: [T, C]}``, and write
    ``out_dir/<song>/<source>.wav`` (32-bit float, the input's rate and length); returns the song folders
    written, in order, calling ``on_written(folder)`` after each.

    Nothing existing is overwritten without ``force`` (checked for every song before the first is separated).
    Each song is claimed (a lock in its folder) before it is separated, and its stems are written into a
    temporary folder and moved into place together, so two runs never mix their stems. The output folder's
    write access, and its free space for each song, are checked before the compute. A file that cannot be
    decoded or separated is reported on stderr and the others go on; at the end a :class:`UserError` names the
    files that failed (a single file's own error when it was the only one). A failed write stops the batch.
    """
    paths, out_dir = [Path(p) for p in paths], Path(out_dir)
    names = [song_name(p) for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"two inputs would write the same folder {out_dir / dupes[0]}; separate them in two calls")
    check_writable(out_dir)
    if not force:
        for n in names:
            _refuse_existing(out_dir / n, sources)
    written, failed = [], []
    for path, name in zip(paths, names):
        try:
            folder = _separate_one(path, out_dir / name, sources, force, command, separate)
        except _WriteFailed:
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


class _WriteFailed(UserError):
    """Writing the stems failed (a full disk, an I/O error): the next songs would fail alike."""


def _refuse_existing(folder: Path, sources) -> None:
    if (folder / MOVING_NAME).is_file():
        return  # a killed run's half-moved set: not a result to keep (removed when the song is claimed)
    existing = [folder / f"{s}.wav" for s in sources if (folder / f"{s}.wav").exists()]
    if existing:
        raise UserError(f"{existing[0]} exists; pass --force to overwrite")


def _separate_one(path: Path, folder: Path, sources, force, command, separate) -> Path:
    """Decode, claim ``folder``, separate and write one song's stems together."""
    from tqdm import tqdm
    audio, rate = load_audio(path)  # a bad file fails before its folder is claimed or created
    _check_space(folder.parent, len(sources) * (audio.nbytes + WAV_HEADER_BYTES), path)
    with process_lock(folder / LOCK_NAME, f"the output folder {folder}"):
        remove_partials(folder, recursive=False)  # stems of a killed run of this song (we hold its lock)
        _remove_mixed_set(folder, command)
        if not force:
            _refuse_existing(folder, sources)  # another run may have written them since the first check
        if not np.any(audio):
            print(f"waveunet {command}: note: {path} is all silence; writing silent stems", file=sys.stderr)
        total = round(audio.shape[0] / rate, 1)
        with tqdm(total=total, unit="s", desc=folder.name[:30], file=sys.stderr, disable=None,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]"
                  ) as bar:
            stems = separate(audio, rate, lambda sec: bar.update(min(sec, bar.total - bar.n)))
        del audio
        _write_together(folder, {s: stems.pop(s) for s in sources}, rate, path)
    return folder


def _remove_mixed_set(folder: Path, command: str) -> None:
    """A run killed while moving its stems into place left :data:`MOVING_NAME`: the stems it lists may come from
    two runs, so they go (the caller holds the song's lock)."""
    marker = folder / MOVING_NAME
    if not marker.is_file():
        return
    for name in marker.read_text().split():
        (folder / Path(name).name).unlink(missing_ok=True)
    marker.unlink()
    print(f"waveunet {command}: note: removed the stems a killed run left half moved into {folder}", file=sys.stderr)


def _check_space(folder: Path, needed: int, path: Path) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise _WriteFailed(f"not enough space in {folder} for the stems of {path}: they need "
                           f"{needed / 1e6:.1f} MB, {free / 1e6:.1f} MB are free")


def _write_together(folder: Path, stems: dict, rate: int, path: Path) -> None:
    """Write every stem into a temporary folder inside ``folder``, then move them all into place: the folder
    never holds a partial set, and a failed write leaves neither stems nor temporary files."""
    tmp = temporary_dir_beside(folder / "stems")
    try:
        for s, y in stems.items():
            write_wav(tmp / f"{s}.wav", y, rate, subtype="FLOAT")
        atomic_write_text(folder / MOVING_NAME, "\n".join(f"{s}.wav" for s in stems) + "\n")
        for s in stems:
            os.replace(tmp / f"{s}.wav", folder / f"{s}.wav")
        os.unlink(folder / MOVING_NAME)
    except OSError as e:
        raise _WriteFailed(f"cannot write the stems of {path} to {folder}: {e.strerror or first_line(e)}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
