"""Abuse limits, with the ``limits`` library: moving windows kept in memory, or on Redis when ``REDIS_URL`` is set
(so every relay process counts together). The limits themselves are settings in limits' notation ("5 per second;
30 per minute"); a refused event gets ``rate_limited`` with ``retry_after`` seconds and nothing of it is stored,
so the client's later resend (same client id) is stored once."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from limits import RateLimitItem, WindowStats, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from common.errors import RelayError
from common.settings import Settings


class RateLimited(RelayError):
    status = 429
    code = "rate_limited"
    message = "Too many at once: please wait a moment and try again. Nothing was lost."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def payload(self, **extra: object) -> dict[str, object]:
        return super().payload(retry_after=self.retry_after, **extra)


class Limits:
    """Every limit the relay applies, parsed once from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.customer_message = parse_many(settings.rate_customer_message)
        self.customer_message_address = parse_many(settings.rate_customer_message_address)
        self.session_request = parse_many(settings.rate_session_request)
        self.session_request_address = parse_many(settings.rate_session_request_address)
        self.customer_signal = parse_many(settings.rate_customer_signal)
        self.customer_signal_address = parse_many(settings.rate_customer_signal_address)
        self.agent_event = parse_many(settings.rate_agent_event)
        self.login_address = parse_many(settings.rate_login_address)
        self.login_failures = parse_many(settings.rate_login_failures)


class Windows(Protocol):
    """What ``Limiter`` uses of a moving-window strategy (``limits``' own, or ``InMemoryWindows``)."""

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool: ...

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool: ...

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None: ...

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats: ...


class InMemoryWindows:
    """``limits``' moving windows (same answers: at most ``amount`` events in any ``expiry`` seconds), kept in this
    process's memory at O(1) per event.

    Why not ``limits.aio.storage.MemoryStorage``: after every event it schedules a sweep over every key it holds,
    with a thread hop (``asyncio.to_thread``) per key. With a window per socket that sweep is O(sockets) per message:
    15 % of the relay's CPU at 50 chats (py-spy, 2026-12-01), more with every socket. Here a key keeps only its
    newest ``amount`` times (all a moving window needs), and keys idle for longer than their window are dropped in
    a sweep every ``SWEEP_EVERY`` events.
    """

    SWEEP_EVERY = 4096

    def __init__(self) -> None:
        self._events: dict[str, tuple[deque[float], float]] = {}  # key -> (times, the window's length in s)
        self._since_sweep = 0

    def _live(self, key: str, now: float) -> deque[float] | None:
        """The key's times still inside its window (older ones dropped), or None for a key not held."""
        entry = self._events.get(key)
        if entry is None:
            return None
        times, expiry = entry
        while times and times[0] < now - expiry:
            times.popleft()
        return times

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        times = self._live(item.key_for(*identifiers), time.time())
        return times is None or len(times) < item.amount

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self.take((item,), identifiers) is None

    def take(self, items: Sequence[RateLimitItem], identifiers: tuple[str, ...]) -> RateLimitItem | None:
        """``test`` then ``hit`` of every item in one pass (each key built once, no awaits): an event counted in
        every window, or in none and the first full window's item returned. Every message passes here."""
        now = time.time()
        windows: list[tuple[RateLimitItem, str, deque[float] | None]] = []
        for item in items:
            key = item.key_for(*identifiers)
            times = self._live(key, now)
            if times is not None and len(times) >= item.amount:
                return item
            windows.append((item, key, times))
        for item, key, times in windows:
            if times is None:
                times = deque(maxlen=item.amount)
                self._events[key] = (times, item.get_expiry())
            times.append(now)
        self._since_sweep += 1
        if self._since_sweep >= self.SWEEP_EVERY:
            self._sweep(now)
        return None

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        self._events.pop(item.key_for(*identifiers), None)

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        now = time.time()
        times = self._live(item.key_for(*identifiers), now) or deque()
        reset = (times[0] if len(times) >= item.amount else now) + item.get_expiry()
        return WindowStats(reset, item.amount - len(times))

    def _sweep(self, now: float) -> None:
        self._since_sweep = 0
        idle = [key for key, (times, expiry) in self._events.items() if not times or times[-1] < now - expiry]
        for key in idle:
            del self._events[key]

    def __len__(self) -> int:
        return len(self._events)


class Limiter:
    """Counts in two places: what belongs to one socket (per connection, per agent socket) in this process's memory,
    since a socket lives in exactly one relay process; what spans sockets (per address, per account) in the shared
    storage (Redis when set), so every process counts together. A socket's own limits then cost no round trip."""

    LOCAL_SCOPES = frozenset({"connection", "socket"})  # the key's second part, after the family

    def __init__(self, shared: Windows, limits: Limits, local: Windows | None = None) -> None:
        self._windows = shared
        self._local = local if local is not None else shared
        self.limits = limits

    @classmethod
    def create(cls, settings: Settings) -> Limiter:
        if settings.redis_url:
            uri = settings.redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
            shared = RedisStorage(uri, implementation="redispy", key_prefix="warmline-limits")
            return cls(MovingWindowRateLimiter(shared), Limits(settings), local=InMemoryWindows())
        return cls(InMemoryWindows(), Limits(settings))

    def _strategy(self, key: tuple[str, ...]) -> Windows:
        return self._local if len(key) > 1 and key[1] in self.LOCAL_SCOPES else self._windows

    async def hit(self, items: Sequence[RateLimitItem], *key: str) -> None:
        """Count one event against every window of ``items``; refuse it (uncounted) if any window is full."""
        windows = self._strategy(key)
        if isinstance(windows, InMemoryWindows):
            full = windows.take(items, key)
            if full is not None:
                raise RateLimited(await self._retry_after(full, *key))
            return
        for item in items:
            if not await windows.test(item, *key):
                raise RateLimited(await self._retry_after(item, *key))
        for item in items:
            await windows.hit(item, *key)

    async def check(self, items: Sequence[RateLimitItem], *key: str) -> None:
        """Refuse if any window is full, counting nothing (a login is counted only when it fails)."""
        windows = self._strategy(key)
        for item in items:
            if not await windows.test(item, *key):
                raise RateLimited(
                    await self._retry_after(item, *key),
                    "Too many failed logins for this account: it is locked for a while. Try again later.",
                )

    async def count(self, items: Sequence[RateLimitItem], *key: str) -> None:
        windows = self._strategy(key)
        for item in items:
            await windows.hit(item, *key)

    async def clear(self, items: Sequence[RateLimitItem], *key: str) -> None:
        windows = self._strategy(key)
        for item in items:
            await windows.clear(item, *key)

    async def _retry_after(self, item: RateLimitItem, *key: str) -> int:
        stats = await self._strategy(key).get_window_stats(item, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))


def socket_gate(limiter: Limiter, items: Sequence[RateLimitItem], family: str) -> Callable[[str, Any], Awaitable[None]]:
    """A gate for ``guard.register``: one budget per socket for every event of a side (an agent's console)."""

    async def gate(sid: str, _event: Any) -> None:
        await limiter.hit(items, family, "socket", sid)

    return gate
