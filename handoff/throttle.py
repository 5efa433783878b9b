"""A per-key rate limit for chatty events (typing): at most one "still typing" per interval, stops always pass."""

from __future__ import annotations

import time
from collections.abc import Callable

# Browsers throttle to one typing event every 2 s; the server allows a little faster, to absorb network jitter,
# and drops anything beyond, so a misbehaving client cannot flood an agent's console.
TYPING_INTERVAL_S = 1.0
MAX_KEYS = 10_000  # forget the oldest keys beyond this; a lost entry only lets one extra event through


class Throttle:
    def __init__(self, interval_s: float = TYPING_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}

    def allow(self, key: str, typing: bool) -> bool:
        now = self.clock()
        if not typing:  # "stopped typing" must always arrive, or the indicator would stick
            self._last.pop(key, None)
            return True
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        if len(self._last) >= MAX_KEYS:
            self._last.pop(next(iter(self._last)))
        self._last[key] = now
        return True

    def forget(self, key: str) -> None:
        self._last.pop(key, None)
