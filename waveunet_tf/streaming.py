"""Separation as a stream: blocks of a song in, blocks of its stems out, memory bounded by one window.

Blocks [n, C] at any rate have their channels matched to the model (:func:`waveunet_tf.audio.match_channels`)
and go through a streaming soxr resampler (the same samples as the one-shot :func:`waveunet_tf.audio.resample`:
soxr gives identical output whatever the chunking). As soon as the next window of the
:class:`waveunet_tf.shapes.WindowPlan` is full it runs, and its kept samples go back through one streaming
resampler per source to the input's rate and channels. The stems come out exactly as long as the input.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from waveunet_tf import shapes
from waveunet_tf.audio import match_channels
from waveunet_tf.errors import UsageError, UserError

WINDOWS = ("default", "paper")


class Resampler:
    """A streaming soxr "HQ" resampler of float32 [n, channels] blocks (the identity when the rates agree)."""

    def __init__(self, rate_in: int, rate_out: int, channels: int):
        self.rates = (int(rate_in), int(rate_out))
        self._stream = None if self.rates[0] == self.rates[1] else self._new(channels)

    def _new(self, channels: int):
        import soxr
        return soxr.ResampleStream(*self.rates, channels, dtype="float32", quality="HQ")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        block = np.ascontiguousarray(block, np.float32)
        return block if self._stream is None else self._stream.resample_chunk(block, last=last)

    def output_count(self, n: int) -> int:
        """Samples out after ``n`` in, before the end (soxr's count does not depend on the chunking)."""
        if self._stream is None:
            return n
        return len(self._new(1).resample_chunk(np.zeros((n, 1), np.float32)))

    def input_needed(self, m: int) -> int:
        """The fewest samples in after which at least ``m`` samples have come out (before the end)."""
        lo, hi = 0, max(1, m * self.rates[0] // self.rates[1])
        while self.output_count(hi) < m:
            lo, hi = hi, 2 * hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.output_count(mid) >= m else (mid, hi)
        return hi if m > 0 else 0


def window_schedule(model, window, length: int | None):
    """``(hop, input_length(hop), output_length(hop), left, shrink)`` of ``model``'s windows at its rate.

    ``window``: ``"default"`` (aligned, at most ``model.max_hop`` kept samples; with ``length`` known, the very
    hop :func:`waveunet_tf.shapes.plan_aligned` gives that length), ``"paper"`` (the official prediction's
    windows), or a positive integer (aligned windows of at most that many kept samples). ``shrink``: whether
    the last window may keep fewer samples (aligned windows: their results do not depend on their length)."""
    if window == "paper":
        if not model.paper_windows:
            raise UsageError("a SavedModel runs its exported windows only; use the .keras model for --window paper")
        p = shapes.plan_paper(model.config, 1)
        return p.hop, (lambda h: p.input_length), (lambda h: p.output_length), p.left, False
    if window == "default":
        max_hop = model.max_hop
    elif isinstance(window, (int, np.integer)) and not isinstance(window, bool) and window > 0:
        max_hop = int(window)
    else:
        raise UsageError(f"window must be one of {', '.join(WINDOWS)} or a positive number of samples, not {window!r}")
    g = model.geometry
    hop = shapes.plan_aligned(g, length or 1, max_hop).hop if length else \
        shapes.hop_at_most(max_hop if g.has_context else g.step, g.step)
    return hop, g.window_input, (lambda h: h + g.extra), g.left, g.has_context


def check_prediction(pred: dict, sources, shape) -> None:
    """Raise a one-line :class:`UserError` when a model's window output is not ``shape`` for every source."""
    for s in sources:
        if tuple(pred[s].shape) != tuple(shape):
            raise UserError(f"the model returned {s} of shape {list(pred[s].shape)} for a window; expected "
                            f"{list(shape)}")


class SongStream:
    """One song's separation fed block by block: ``push(block)`` and, after the last block, ``finish()``, each
    returning ``{source: float32 [m, channels]}`` at ``rate`` (m may be 0); together exactly as long as the input.

    ``model``: a :class:`waveunet_tf.model_io.LoadedModel`; ``rate``, ``channels``: the input's; ``window``: see
    :func:`window_schedule`; ``length``: the input's length in samples if known (it picks today's hop).
    ``progress(seconds)`` is called with the seconds of audio each window completed. A window whose input is all
    zeros gives silent stems without running the network (its biases would invent sound in silence).
    """

    def __init__(self, model, rate: int, channels: int, window="default", length=None, progress=None):
        self.model, self.rate, self.channels, self.progress = model, int(rate), int(channels), progress
        sr, mc = model.sample_rate, model.channels
        guess = None if not length else max(1, round(length * sr / rate))
        self.hop, self._in_len, self._out_len, self.left, self._shrink = window_schedule(model, window, guess)
        self._to_model = Resampler(rate, sr, mc)
        back_channels = mc if channels == mc or mc == 1 else 1  # average before resampling: fewer to resample
        self._back = {s: Resampler(sr, rate, back_channels) for s in model.sources}
        self._buf, self._pending, self._buf_start, self._received = np.zeros((0, mc), np.float32), [], 0, 0
        self._next, self._seen, self._emitted = 0, 0, 0
        self._in_flight = max(1, getattr(model, "concurrency", 1))

    def latency(self) -> int:
        """Input samples pushed before the first stem sample comes out, for a stream of unknown length: the
        windows that must run before the resampler back gives a sample, their input with the right context,
        and the resampler's own delay on the way in."""
        back, k = next(iter(self._back.values())), 1
        while back.output_count(k * self.hop) < 1:
            k += 1
        k = -(-k // self._in_flight) * self._in_flight  # windows run in groups of model.concurrency
        return self._to_model.input_needed((k - 1) * self.hop - self.left + self._in_len(self.hop))

    def push(self, block) -> dict:
        """Take the next float32 [n, channels] block; returns the stem samples now complete."""
        block = np.asarray(block, np.float32)
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise UserError(f"a block must be [samples, {self.channels}], not shape {list(block.shape)}")
        if not np.all(np.isfinite(block)):
            raise UserError("the audio holds NaN or infinite samples")
        self._seen += len(block)
        self._add(self._to_model(match_channels(block, self.model.channels)))
        kept = []
        # windows run ``model.concurrency`` at a time (model_io.WINDOWS_IN_FLIGHT): wait until that many are ready
        while self._received >= (self._next + self._in_flight - 1) * self.hop - self.left + self._in_len(self.hop):
            kept += self._run([self._take(self.hop, self.hop) for _ in range(self._in_flight)])
        return self._back_to_input(kept, last=False)

    def finish(self) -> dict:
        """After the last block: the remaining stem samples (the stems are then exactly as long as the input)."""
        if self._seen == 0:
            raise UserError("cannot separate an empty signal")
        self._add(self._to_model(np.zeros((0, self.model.channels), np.float32), last=True))
        if self._received == 0:  # 1 sample at 48 kHz resamples to none at 22050 Hz: one zero, cut on the way back
            self._add(np.zeros((1, self.model.channels), np.float32))
        kept, windows = [], []
        while self._next * self.hop < self._received:
            rest = self._received - self._next * self.hop
            hop = shapes.round_up(rest, self.model.geometry.step) if self._shrink and rest < self.hop else self.hop
            windows.append(self._take(hop, min(self.hop, rest)))
            if len(windows) == self._in_flight:
                kept, windows = kept + self._run(windows), []
        return self._back_to_input(kept + self._run(windows), last=True)

    def _add(self, x):
        if len(x):  # joined only when a window runs: tiny blocks cost no copy of the whole window each
            self._pending.append(x)
            self._received += len(x)

    def _take(self, hop: int, kept: int):
        """Window ``self._next`` (``hop`` its aligned length) -> (its input [1, n_in, C] or None when all zeros,
        its output length, ``kept``); the samples no later window reads are dropped."""
        start = self._next * self.hop - self.left
        n_in = self._in_len(hop)
        if self._pending:
            self._buf, self._pending = np.concatenate([self._buf, *self._pending]), []
        x = np.zeros((1, n_in, self.model.channels), np.float32)
        lo, hi = max(start, self._buf_start), min(start + n_in, self._received)
        x[0, lo - start:hi - start] = self._buf[lo - self._buf_start:hi - self._buf_start]
        self._next += 1
        drop = max(0, self._next * self.hop - self.left - self._buf_start)
        self._buf, self._buf_start = self._buf[drop:], self._buf_start + drop
        return (x if x.any() else None), self._out_len(hop), kept

    def _run(self, windows: list) -> list:
        """Run the windows of :meth:`_take`, up to ``model.concurrency`` at once -> their first ``kept`` samples
        ``{source: [kept, C]}``, in order. A window whose input is all zeros gives silent stems unrun."""
        def one(window):
            x, n_out, kept = window
            if x is None:
                return {s: np.zeros((kept, self.model.channels), np.float32) for s in self.model.sources}
            pred = self.model.predict(x)
            check_prediction(pred, self.model.sources, (1, n_out, self.model.channels))
            return {s: pred[s][0, :kept] for s in self.model.sources}

        if self._in_flight > 1 and len(windows) > 1:
            with ThreadPoolExecutor(self._in_flight) as pool:
                kept = list(pool.map(one, windows))
        else:
            kept = [one(w) for w in windows]
        if self.progress is not None:
            for w in windows:
                self.progress(w[2] / self.model.sample_rate)
        return kept

    def _back_to_input(self, kept: list, last: bool) -> dict:
        out = {}
        for s in self.model.sources:
            y = np.concatenate([k[s] for k in kept]) if kept else np.zeros((0, self.model.channels), np.float32)
            if y.shape[1] != self.channels and y.shape[1] > 1:
                y = match_channels(y, 1)
            out[s] = match_channels(self._back[s](y, last), self.channels)
        n = min(len(next(iter(out.values()))), self._seen - self._emitted)  # never beyond the input's length
        pad = self._seen - self._emitted - n if last else 0  # resampling rounds the length: pad to the input's
        self._emitted += n + pad
        return {s: np.ascontiguousarray(np.pad(y[:n], ((0, pad), (0, 0)))) for s, y in out.items()}
