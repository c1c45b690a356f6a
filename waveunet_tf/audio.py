"""Audio I/O shared by every command: decode anything ffmpeg reads, resample, match channels, write WAV atomically.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from waveunet_tf.audio_stream import AudioReader
from waveunet_tf.errors import UserError
from waveunet_tf.files import atomic_path

def write_wav(path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write ``audio`` [time, channels] (or [time]) as WAV, atomically. ``subtype`` "FLOAT" for 32-bit float.
    A failed write raises :class:`OSError` (``ENOSPC`` for a full disk) and leaves no file behind."""
    import soundfile as sf
    audio = np.asarray(audio)
    if not np.all(np.isfinite(audio)):
        raise UserError(f"refusing to write {path}: the audio holds NaN or infinite samples")
    with atomic_path(path, suffix=".wav") as tmp:
        try:
            sf.write(str(tmp), audio, int(sample_rate), subtype=subtype, format="WAV")
        except sf.LibsndfileError as e:
            # libsndfile reports a failed write(2) as "System error." without its errno. A full disk is the
            # usual cause: the part written so far still holds the space, so less than the audio is left.
            vfs = os.statvfs(Path(tmp).parent)
            if vfs.f_bavail * vfs.f_frsize < audio.nbytes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
            raise OSError(errno.EIO, f"libsndfile could not write it: {e.error_string}", str(path)) from e


def load_audio(path) -> tuple[np.ndarray, int]:
    """Decode a whole audio file to float32 [time, channels] and its sample rate.

    Formats libsndfile reads (WAV, FLAC, OGG, MP3) go through it; anything else (m4a/aac, mp4, ...) through
    ffmpeg (:class:`waveunet_tf.audio_stream.AudioReader`, whose blocks are joined here). A file that is not
    audio, is corrupt, is empty, or holds NaN/inf samples fails with one line naming it (the underlying error is
    its cause, shown by ``--debug``).
    """
    reader = AudioReader(path)
    return np.concatenate(list(reader.blocks())), reader.rate


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample float32 [time, channels] with soxr's "HQ" quality -> [round(time * rate_out / rate_in),
    channels]; identity when the rates agree. The same samples as ``librosa.resample(..., res_type="soxr_hq",
    axis=0)`` (a test checks it), which calls soxr once per channel: about 10x slower here."""
    if int(rate_in) == int(rate_out):
        return np.asarray(audio, dtype=np.float32)
    import soxr
    return soxr.resample(np.ascontiguousarray(audio, dtype=np.float32), int(rate_in), int(rate_out), quality="HQ")


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """[time, C] -> [time, channels] as the official code: unchanged if the counts agree, else the mean of the
    channels repeated ``channels`` times (its two cases: a mono model takes the mean, a mono file is duplicated
    for a stereo model; a stereo model given 6 channels gets their mean in both)."""
    have = audio.shape[1]
    if have == channels:
        return audio
    mono = audio if have == 1 else audio.mean(axis=1, keepdims=True, dtype=np.float32)
    return mono if channels == 1 else np.repeat(mono, channels, axis=1)
