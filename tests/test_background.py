"""common/background.py: background work runs in one thread at a lower CPU priority, the rest keeps its own."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from common.background import background_thread


def _niceness() -> tuple[int, str]:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), threading.current_thread().name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is Linux's")
def test_the_worker_yields_and_the_caller_keeps_its_priority() -> None:
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    pool = background_thread("low", 5)
    try:
        first, name = pool.submit(_niceness).result(timeout=10)
        again, same_name = pool.submit(_niceness).result(timeout=10)
    finally:
        pool.shutdown()
    assert first == again == min(before + 5, 19)  # relative to where it started, as nice(1) would be
    assert name == same_name and name.startswith("low")  # one worker: the work runs in turn
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
