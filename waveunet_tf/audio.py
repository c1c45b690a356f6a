"""Audio I/O shared by every command: decode anything ffmpeg reads, resample, and write files atomically.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from waveunet_tf.errors import UserError
from waveunet_tf.files import atomic_path, atomic_write_text  # noqa: F401  (moved; callers move to files)


def write_wav(path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write ``audio`` [time, channels] (or [time]) as WAV, atomically. ``subtype`` "FLOAT" for 32-bit float."""
    import soundfile as sf
    audio = np.asarray(audio)
    if not np.all(np.isfinite(audio)):
        raise UserError(f"refusing to write {path}: the audio holds NaN or infinite samples")
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(str(tmp), audio, int(sample_rate), subtype=subtype, format="WAV")


def _ffmpeg_missing():
    return shutil.which("ffmpeg") is None


def load_audio(path) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 [time, channels] and its sample rate.

    WAV/FLAC/OGG go through libsndfile; anything else (mp3, m4a/aac, ...) through ffmpeg. A file that is
    not audio, is empty, or holds NaN/inf samples fails with one line naming it.
    """
    import soundfile as sf
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist or is not a file")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception:  # libsndfile does not know the format: let ffmpeg decode it
        audio, rate = _load_with_ffmpeg(path)
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise UserError(f"{path} holds no audio samples")
    if not np.all(np.isfinite(audio)):
        raise UserError(f"{path} holds NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


def _probe(path: Path) -> tuple[int, int]:
    if _ffmpeg_missing():
        raise UserError(f"cannot decode {path}: ffmpeg is not installed (Debian/Ubuntu: apt-get install ffmpeg)")
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate,channels",
           "-of", "csv=p=0", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    fields = res.stdout.strip().splitlines()[0].split(",") if res.returncode == 0 and res.stdout.strip() else []
    if len(fields) < 2:
        raise UserError(f"{path} is not an audio file ffmpeg can decode")
    return int(fields[0]), int(fields[1])


def _load_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    rate, channels = _probe(path)
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0", "-f", "f32le",
           "-acodec", "pcm_f32le", "-"]
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0:
        raise UserError(f"ffmpeg could not decode {path}: {res.stderr.decode(errors='replace').strip()[:200]}")
    audio = np.frombuffer(res.stdout, dtype=np.float32)
    return audio[: len(audio) // channels * channels].reshape(-1, channels), rate


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample [time, channels] with librosa's soxr (high quality); identity when the rates agree."""
    if int(rate_in) == int(rate_out):
        return np.asarray(audio, dtype=np.float32)
    # soxr "HQ" directly on [time, channels]: the same samples as librosa's res_type="soxr_hq", without its
    # transposed copies (a 10-minute song is resampled in place of 3-4 extra copies)
    import soxr
    return soxr.resample(np.ascontiguousarray(audio, dtype=np.float32), int(rate_in), int(rate_out), quality="HQ")


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """As the official code: mono model takes the mean of the channels; a mono input to a stereo model is
    duplicated. ``audio`` is [time, channels]."""
    have = audio.shape[1]
    if have == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=1, keepdims=True)
    if have == 1:
        return np.repeat(audio, channels, axis=1)
    raise UserError(f"cannot map {have} channels to the model's {channels}")
