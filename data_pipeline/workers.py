"""Worker processes that die with their parent: the one process pool of ``prepare --jobs`` and the benchmarks.

A ``ProcessPoolExecutor`` worker whose parent is killed (kill -9, an OOM kill) is not told: it finishes the calls
already queued and then waits on its queue for ever, and meanwhile keeps writing into the cache. Here each
worker asks the kernel to kill it when its parent dies (Linux ``PR_SET_PDEATHSIG``), or, where that call does
not exist, watches its parent from a thread.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with(parent: int) -> None:
    """Runs first in each worker: end this process as soon as ``parent`` is gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        def watch():
            while os.getppid() == parent:
                time.sleep(0.2)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh processes (spawned, not forked: the parent may hold TensorFlow's threads,
    which do not survive a fork) that die with this process. The kernel ties a death signal to the thread that
    started the worker, so submit to it from the thread that lives as long as the pool (as ``with`` does)."""
    return ProcessPoolExecutor(max_workers=int(workers), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with, initargs=(os.getpid(),))
