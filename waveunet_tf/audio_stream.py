"""Reading an audio file block by block, so that a song of any length is decoded in bounded memory.

Formats libsndfile reads (WAV, FLAC, OGG, MP3) are read through ``soundfile.SoundFile``; anything else (m4a/aac,
mp4, ...) through ffmpeg's raw float32 output on a pipe, its rate and channels probed first with ffprobe. A block
that fails to decode, or holds NaN/inf samples, fails with one line naming the file and the time where it is.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from waveunet_tf.errors import UserError

BLOCK = 1 << 16  # samples per block: 1.5 s at 44.1 kHz, 0.5 MB for stereo float32
# Containers that only libsndfile reads here: when it fails on a file that starts like one of these (a corrupt
# WAV), its error is the real one; any other file it cannot read goes to ffmpeg (m4a, or an mp3 libsndfile's
# decoder rejects), whose error is then reported with libsndfile's.
_LIBSNDFILE_MAGIC = ((0, b"RIFF"), (0, b"RIFX"), (0, b"RF64"), (0, b"fLaC"), (0, b"OggS"), (0, b"FORM"),
                     (0, b"caff"), (0, b".snd"))


def at_time(samples: int, rate: int) -> str:
    """``samples`` at ``rate`` as a time a user finds in a player: ``1:02.5`` (minutes:seconds)."""
    seconds = samples / rate
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


class AudioReader:
    """An audio file opened for block-by-block decoding: ``rate``, ``channels``, ``frames`` (the length its
    header or container states, ``None`` if unknown) and, once read, ``decoded`` (samples really decoded).

    ``blocks(size)`` yields float32 [n, channels] blocks, n <= size; at the end it warns on stderr when fewer
    samples were decoded than the header promised (a truncated file), saying how much was decoded.
    """

    def __init__(self, path, command: str = "separate"):
        import soundfile as sf
        self.path = Path(path)
        self.command = command
        if not self.path.is_file():
            raise UserError(f"{self.path} does not exist or is not a file")
        self._sf = None
        self._quiet = not _starts_like_libsndfiles_own(self.path)  # mp3 (mpg123) or not libsndfile's at all
        try:
            with _quiet_stderr(self._quiet):
                self._sf = sf.SoundFile(str(self.path))
        except sf.LibsndfileError as e:
            if _starts_like_libsndfiles_own(self.path):
                raise UserError(f"cannot read {self.path}: {e.error_string}") from e
            self.rate, self.channels = _probe(self.path, e)
            self.frames = _probed_frames(self.path, self.rate)
        else:
            self.rate, self.channels = int(self._sf.samplerate), int(self._sf.channels)
            self.frames = _wav_header_frames(self.path, self._sf) or int(self._sf.frames)
        self.decoded = 0

    @property
    def seconds(self) -> float | None:
        """The length the file states, in seconds (``None`` if unknown): for progress and space checks."""
        return None if self.frames is None else self.frames / self.rate

    def blocks(self, size: int = BLOCK):
        """Yield the file's samples as float32 [n, channels] blocks (n <= ``size``)."""
        source = self._libsndfile_blocks(size) if self._sf is not None else self._ffmpeg_blocks(size)
        for block in source:
            if not np.all(np.isfinite(block)):
                bad = self.decoded + int(np.argmax(~np.all(np.isfinite(block), axis=1)))
                raise UserError(f"{self.path} holds NaN or infinite samples (at {at_time(bad, self.rate)})")
            self.decoded += len(block)
            yield block
        if self.decoded == 0:
            raise UserError(f"{self.path} holds no audio samples")
        if self.frames is not None and self.decoded < self.frames - self.rate // 100:  # 10 ms: durations round
            print(f"waveunet {self.command}: warning: {self.path} is truncated: its header promises "
                  f"{at_time(self.frames, self.rate)}, only {at_time(self.decoded, self.rate)} could be decoded; "
                  "separating what was decoded", file=sys.stderr)

    def _libsndfile_blocks(self, size):
        import soundfile as sf
        with self._sf as f:
            while True:
                try:
                    with _quiet_stderr(self._quiet):
                        block = f.read(size, dtype="float32", always_2d=True)
                except sf.LibsndfileError as e:
                    raise UserError(f"cannot decode {self.path} at {at_time(self.decoded, self.rate)}: "
                                    f"{e.error_string}") from e
                if len(block) == 0:
                    return
                yield block

    def _ffmpeg_blocks(self, size):
        cmd = [_tool("ffmpeg", self.path), "-v", "error", "-nostdin", "-i", str(self.path), "-map", "0:a:0",
               "-f", "f32le", "-acodec", "pcm_f32le", "-"]
        frame_bytes = 4 * self.channels
        with tempfile.TemporaryFile() as errors, \
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL) as proc:
            try:
                while True:
                    data = proc.stdout.read(size * frame_bytes)
                    whole = len(data) // frame_bytes * frame_bytes
                    if whole:
                        yield np.frombuffer(data[:whole], np.float32).reshape(-1, self.channels).copy()
                    if len(data) < size * frame_bytes:
                        break
            finally:
                proc.stdout.close()
                code = proc.wait()
            if code != 0:
                errors.seek(0)
                why = errors.read().decode(errors="replace").strip().splitlines()
                raise UserError(f"ffmpeg could not decode {self.path} after {at_time(self.decoded, self.rate)}: "
                                f"{why[-1][:200] if why else f'exit code {code}'}")


def _probed_frames(path: Path, rate: int) -> int | None:
    """The container's stated duration (ffprobe) in samples, or ``None`` when it states none."""
    cmd = [_tool("ffprobe", path), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return round(float(res.stdout.strip().splitlines()[0]) * rate)
    except (ValueError, IndexError):
        return None


def _wav_header_frames(path: Path, f) -> int | None:
    """The frames a RIFF WAV's header promises (libsndfile shortens ``frames`` to what a truncated file holds).
    ``None`` for other formats, or when the header's sizes cannot be trusted (streamed WAVs write 0 or -1)."""
    if f.format != "WAV":
        return None
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    riff_size = int.from_bytes(head[4:8], "little")
    missing = riff_size + 8 - os.path.getsize(path)
    if riff_size in (0, 0xFFFFFFFF) or missing <= 0:
        return None
    bytes_per_frame = f.channels * {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
                                    "PCM_U8": 1}.get(f.subtype, 0)
    return int(f.frames) + missing // bytes_per_frame if bytes_per_frame else None


@contextlib.contextmanager
def _quiet_stderr(quiet: bool):
    """Silence file descriptor 2 while libsndfile's mpg123 runs: it prints its own notes there ("Illegal
    Audio-MPEG-Header", "Trying to resync") for files we report on in one line of our own."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _starts_like_libsndfiles_own(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return any(head[at:at + len(magic)] == magic for at, magic in _LIBSNDFILE_MAGIC)


def _tool(name: str, path: Path) -> str:
    found = shutil.which(name)
    if found is None:
        raise UserError(f"cannot decode {path}: libsndfile does not read its format and {name} is not installed "
                        "(Debian/Ubuntu: apt-get install ffmpeg)")
    return found


def _probe(path: Path, libsndfile_error) -> tuple[int, int]:
    cmd = [_tool("ffprobe", path), "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels", "-of", "csv=p=0", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    fields = res.stdout.strip().splitlines()[0].split(",") if res.returncode == 0 and res.stdout.strip() else []
    if len(fields) < 2:
        why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "no audio stream"
        raise UserError(f"{path} is not an audio file that libsndfile or ffmpeg can decode (ffprobe: "
                        f"{why.replace(str(path) + ': ', '')}); give a WAV, FLAC, OGG, MP3, M4A or other audio file"
                        ) from libsndfile_error
    return int(fields[0]), int(fields[1])
