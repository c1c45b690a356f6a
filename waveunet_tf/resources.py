"""The memory and disk a job needs, worked out before it starts, so that an absurd size (``--seconds 1e9``) is
refused with one line instead of running for minutes into a ``MemoryError`` or a full disk.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from waveunet_tf.errors import UsageError


def available_memory() -> int | None:
    """Bytes of memory a new allocation can get without swapping (Linux's MemAvailable), or None when the
    system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def free_disk(path) -> int:
    """Free bytes on the file system where ``path`` is or would be created (its nearest existing folder)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def size_text(n: float) -> str:
    """``n`` bytes for people: ``321.0 TB``, ``12.4 GB``, ``640 kB``."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit in ("B", "kB") else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def require_memory(need: float, what: str, smaller: str) -> None:
    """Refuse (one line, :class:`UsageError`) a job whose ``what`` needs ``need`` bytes of memory when less is
    available; ``smaller`` says which option to make smaller. Nothing is refused when the system does not
    say how much memory is available."""
    have = available_memory()
    if have is not None and need > have:
        raise UsageError(f"{what} needs about {size_text(need)} of memory and {size_text(have)} is available; "
                         f"give a smaller {smaller}")


def require_disk(need: float, folder, what: str, smaller: str) -> None:
    """Refuse (one line, :class:`UsageError`) writing ``need`` bytes of ``what`` under ``folder`` when its file
    system has less free space; ``smaller`` says which options to make smaller."""
    have = free_disk(folder)
    if need > have:
        raise UsageError(f"{what} needs {size_text(need)} of disk and {folder} has {size_text(have)} free; give "
                         f"a smaller {smaller}")
