"""``waveunet_tf.Separator``: a model loaded once, separating audio in memory, files, and streams of blocks.

Every way in is the same stream (:class:`waveunet_tf.streaming.SongStream`): ``separate`` is the stream over one
block, ``separate_file`` the stream over a file's blocks (:class:`waveunet_tf.audio_stream.AudioReader`) written
as it comes (:class:`waveunet_tf.stems.StemWriter`). ``waveunet separate`` runs on it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from waveunet_tf.audio_stream import AudioReader
from waveunet_tf.errors import UserError
from waveunet_tf.files import check_writable
from waveunet_tf.model_io import LoadedModel, load_any_model
from waveunet_tf.precision import SEPARATE_DEFAULT
from waveunet_tf.progress import Progress
from waveunet_tf.stems import WAV_HEADER_BYTES, StemWriter, check_space, refuse_existing, song_name
from waveunet_tf.streaming import SongStream, window_schedule


# input samples per block when :meth:`Separator.separate` streams a song held in memory (a few MB: the number of
# blocks does not change the stems, only how much is held at once)
IN_MEMORY_BLOCK = 1 << 17


class Separator:
    """A Wave-U-Net loaded once for many songs.

    ``model``: as the CLI takes it (a run directory, a ``.keras`` file, ``official:NAME``, an exported SavedModel
    folder) or a :class:`waveunet_tf.model_io.LoadedModel`. ``precision``: ``"auto"``, ``"float32"`` or
    ``"bfloat16"``. ``window``: ``"default"``, ``"paper"`` or a number of kept samples per window (at the model's
    rate; shorter windows lower :meth:`latency` and cost speed). Windows run as TensorFlow's threads allow: two
    at once where it runs one thread per op, which ``waveunet separate`` chooses before TensorFlow starts and a
    program may choose too, by calling :func:`waveunet_tf.model_io.one_thread_per_window` first (measured faster
    on 2 cores; it holds for the whole process, so the Separator does not choose it by itself).
    """

    def __init__(self, model, precision: str = SEPARATE_DEFAULT, window="default"):
        self.model = model if isinstance(model, LoadedModel) else load_any_model(model, precision=precision)[0]
        window_schedule(self.model, window, None)  # a bad window fails here, not at the first song
        self.window = window
        self.sources, self.sample_rate, self.channels = self.model.sources, self.model.sample_rate, self.model.channels

    def separate(self, audio, rate: int, progress=None) -> dict:
        """``audio`` float32 [T, C] (or [T]) at ``rate`` Hz, any channel count -> ``{source: float32 [T, C]}``
        at ``rate``, exactly T samples: the stems ``waveunet separate`` writes. ``progress(seconds)``: optional,
        called with the seconds of audio each window completed."""
        audio = _as_blocks(audio)
        # fed to the stream in blocks and written into the stems in place: the memory beyond the song and its
        # stems is one window's, not the song's at the model's rate plus copies of every stem
        out = {s: np.empty((len(audio), audio.shape[1]), np.float32) for s in self.sources}
        blocks = (audio[i:i + IN_MEMORY_BLOCK] for i in range(0, len(audio), IN_MEMORY_BLOCK))
        done = 0
        for part in self.stream(blocks, rate, length=len(audio), progress=progress):
            n = len(part[self.sources[0]])
            for s in self.sources:
                out[s][done:done + n] = part[s]
            done += n
        if done != len(audio):  # the stream's promise; never hand back uninitialised samples
            raise RuntimeError(f"the stream gave {done} samples for {len(audio)}")
        return out

    def stream(self, blocks, rate: int, length=None, progress=None):
        """A generator: ``blocks``, an iterable of float32 [n, C] at ``rate`` (n may vary, even 1 or 0), ->
        ``{source: float32 [m, C]}`` blocks as they complete; their concatenation is :meth:`separate` of the
        whole (within 1e-5) and exactly as long. Memory is bounded by one window, whatever the length.
        ``length``: the total input samples if known (then the windows are exactly those of ``separate``)."""
        song = None
        for block in blocks:
            block = _as_blocks(block)
            if song is None:
                song = SongStream(self.model, rate, block.shape[1], self.window, length, progress)
            out = song.push(block)
            if len(out[self.sources[0]]):
                yield out
        if song is None:
            raise UserError("cannot separate an empty signal")
        out = song.finish()
        if len(out[self.sources[0]]):
            yield out

    def latency(self, rate: int) -> int:
        """Input samples at ``rate`` that :meth:`stream` must see before it yields its first sample (for a stream
        of unknown length): the first window, its right context and the resamplers' delays."""
        return SongStream(self.model, rate, self.channels, self.window).latency()

    def separate_file(self, path, out, force: bool = False, command: str = "separate") -> Path:
        """Separate the audio file ``path`` into ``out/<song>/<source>.wav`` (32-bit float WAV, the file's rate,
        channels and length), decoded, separated and written block by block; returns ``out/<song>``. Existing
        stems are kept unless ``force``; the set is moved in together (see :class:`waveunet_tf.stems.StemWriter`)."""
        folder = check_writable(out) / song_name(path)
        refuse_existing(folder, self.sources, force, path)
        reader = AudioReader(path, command)  # a bad file fails before its folder is claimed or created
        if reader.frames:
            check_space(folder.parent, len(self.sources) * (reader.frames * reader.channels * 4 + WAV_HEADER_BYTES),
                        path)
        silent = [True]

        def blocks():
            for block in reader.blocks():
                silent[0] = silent[0] and not block.any()
                yield block

        with StemWriter(folder, self.sources, reader.rate, reader.channels, force, path, command) as writer, \
                progress_report(folder.name, reader.seconds, command) as progress:
            for stems in self.stream(blocks(), reader.rate, reader.frames, progress):
                writer.write(stems)
        if silent[0]:
            print(f"waveunet {command}: note: {path} is all silence; wrote silent stems", file=sys.stderr)
        return folder


def _as_blocks(audio) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio
    if audio.ndim != 2 or audio.shape[1] < 1:
        raise UserError(f"audio must be [time, channels], not shape {list(audio.shape)}")
    return audio


@contextlib.contextmanager
def progress_report(name: str, total, command: str):
    """Yield ``progress(seconds)`` for one song (:class:`waveunet_tf.progress.Progress` in seconds of audio: a bar
    on a terminal, a line at each quarter in a log); at the end, one line with the real-time factor."""
    start = time.monotonic()
    with Progress(round(total, 1) if total else None, f"waveunet {command}: {name[:30]}", "s") as bar:
        yield lambda seconds: bar.update(min(seconds, bar.total - bar.done) if bar.total else seconds)
    elapsed = max(time.monotonic() - start, 1e-9)
    print(f"waveunet {command}: {name}: {bar.done:.1f} s of audio in {elapsed:.1f} s "
          f"({bar.done / elapsed:.1f}x real time)", file=sys.stderr, flush=True)
