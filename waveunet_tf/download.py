"""Downloading one large file over HTTP(S) so that an interruption costs nothing: the bytes go to a file that is
resumed with a Range request (restarted when the server ignores Range), with its progress in bytes (a bar in a
terminal, a few lines in a log file). A download that receives nothing for ``TIMEOUT_S`` seconds is interrupted
and resumed (``RETRIES`` attempts in all); a server that cannot be reached or does not answer a request within
``TIMEOUT_S`` ends it at once (:class:`DownloadFailed`).

The caller names the file (a name its cleanup keeps) and renames it when the download is complete and checked.
"""

from __future__ import annotations

import errno
import http.client
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from waveunet_tf.version import __version__
from waveunet_tf.errors import first_line
from waveunet_tf.progress import Progress

RETRIES = 3  # attempts per download, each resuming where the last one stopped
TIMEOUT_S = 60  # seconds to wait to connect, for an answer, or for the next bytes (the README says it)
_CHUNK = 1 << 20


class DownloadFailed(Exception):
    """The network failed us; ``reason`` says how in one line. Bytes already received stay in the file."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def download(url: str, partial: Path, progress: bool = True, desc: str = "download") -> None:
    """Download ``url`` into ``partial``, resuming the bytes already there with an HTTP Range request (a server
    that ignores Range sends everything again, and the file restarts from zero); an interruption is retried a
    few times, resuming each time, with a progress bar in bytes on stderr.

    Raises :class:`DownloadFailed` when the network fails (an empty file is removed, received bytes stay for
    the next try), or the ``OSError`` of writing the file (after a full disk the file is removed)."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(RETRIES):
        try:
            _download_once(url, partial, progress, desc)
            return
        except _Interrupted as e:
            last = e
            if progress:
                print(f"download interrupted ({e.reason}); resuming", file=sys.stderr)
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as e:
            if partial.exists() and partial.stat().st_size == 0:
                partial.unlink()
            raise DownloadFailed(_reason(e)) from e
        except OSError as e:  # writing the file
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                partial.unlink(missing_ok=True)
            raise
    have = partial.stat().st_size if partial.exists() else 0
    raise DownloadFailed(f"interrupted {RETRIES} times ({last.reason}; {have:,} bytes kept, run again to "
                         "resume)") from last


class _Interrupted(Exception):
    """The connection ended before the announced length."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _reason(e) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return first_line(e.reason)
    return first_line(e)


def _download_once(url: str, partial: Path, progress: bool, desc: str) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": f"waveunet-tf/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:
            raise
        return  # Range Not Satisfiable: we already have every byte
    with response:
        resumed = response.status == 206
        if resumed and _range_start(response) != have:
            partial.unlink()
            raise _Interrupted(f"the server resumed at byte {_range_start(response)}, not {have}; restarting")
        start = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        bar = Progress(total, desc, "B", initial=start, enabled=progress)
        received = start
        try:
            with open(partial, "r+b" if resumed else "wb") as f:
                f.seek(start)
                f.truncate()
                for chunk in iter(lambda: _read(response), b""):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    if total is not None and received < total:
        raise _Interrupted(f"{received:,} of {total:,} bytes received")


def _read(response) -> bytes:
    try:
        return response.read(_CHUNK)
    except (ConnectionError, TimeoutError, http.client.HTTPException) as e:
        raise _Interrupted(first_line(e)) from e


def _range_start(response) -> int | None:
    m = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None
