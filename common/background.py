"""Worker threads for background work that must never slow a chat down: one thread at a lower CPU priority.

On Linux a thread's niceness is its own (``setpriority`` on its native id), so the process's other threads, the
event loop that answers customers and the bot's decisions, keep theirs; the kernel gives such a thread the cores
when nothing more urgent wants them. Elsewhere the call fails and the thread runs at the process's priority.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor


def _lower_priority(niceness: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: run as is
        thread = threading.get_native_id()
        # Relative, as nice(1) is: a process started niced stays below its own priority, never above it.
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))


def background_thread(name: str, niceness: int) -> ThreadPoolExecutor:
    """An executor of one worker thread, ``niceness`` lower in priority than the thread that first uses it (a new
    thread starts at its creator's niceness; 1-19, higher yields more)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=_lower_priority, initargs=(niceness,))
