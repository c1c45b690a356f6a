"""Audio I/O shared by every command: decode anything ffmpeg reads, resample, match channels, write WAV atomically.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from waveunet_tf.errors import UserError
from waveunet_tf.files import atomic_path

# Containers that only libsndfile reads here: when it fails on a file that starts like one of these (a corrupt
# WAV), its error is the real one; any other file it cannot read goes to ffmpeg (m4a, or an mp3 libsndfile's
# decoder rejects), whose error is then reported with libsndfile's.
_LIBSNDFILE_MAGIC = ((0, b"RIFF"), (0, b"RIFX"), (0, b"RF64"), (0, b"fLaC"), (0, b"OggS"), (0, b"FORM"),
                     (0, b"caff"), (0, b".snd"))


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
    """Decode an audio file to float32 [time, channels] and its sample rate.

    Formats libsndfile reads (WAV, FLAC, OGG, MP3) go through it; anything else (m4a/aac, mp4, ...) through
    ffmpeg. A file that is not audio, is corrupt, is empty, or holds NaN/inf samples fails with one line naming
    it (the underlying error is its cause, shown by ``--debug``).
    """
    import soundfile as sf
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist or is not a file")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except sf.LibsndfileError as e:
        if _starts_like_libsndfiles_own(path):
            raise UserError(f"cannot read {path}: {e.error_string}") from e
        audio, rate = _load_with_ffmpeg(path, e)
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise UserError(f"{path} holds no audio samples")
    if not np.all(np.isfinite(audio)):
        raise UserError(f"{path} holds NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32), int(rate)


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
        raise UserError(f"{path} is not an audio file: libsndfile: {libsndfile_error.error_string.rstrip('.')}; "
                        f"ffprobe: {why.replace(str(path) + ': ', '')}") from libsndfile_error
    return int(fields[0]), int(fields[1])


def _load_with_ffmpeg(path: Path, libsndfile_error) -> tuple[np.ndarray, int]:
    rate, channels = _probe(path, libsndfile_error)
    cmd = [_tool("ffmpeg", path), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0", "-f", "f32le",
           "-acodec", "pcm_f32le", "-"]
    res = subprocess.run(cmd, capture_output=True)
    if res.returncode != 0:
        raise UserError(f"ffmpeg could not decode {path}: {res.stderr.decode(errors='replace').strip()[:200]}")
    audio = np.frombuffer(res.stdout, dtype=np.float32)
    return audio[: len(audio) // channels * channels].reshape(-1, channels), rate


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
