"""Several relay processes on one Redis: python-socketio's Redis manager, with each emit to a room published only to
the processes that hold a member of that room.

Why: python-socketio publishes every emit on one channel, so every relay process receives and decodes every emit of
every other process, most of them for rooms it has nobody in (issue 15: 18.6 us of CPU per emit per process, a
cost that grows with the number of processes). Here each process keeps, in Redis, which of its rooms have members
(one set of process ids per room) and a liveness key; an emit to a room goes through one Lua script that publishes
it to the channel of each live process in that room's set, in the same single round trip as the plain publish.

Which rooms: the relay's own (``handoff.conversation``: chats, agents, teams). Everything else (a socket's own
room, a broadcast, python-socketio's enter/leave/disconnect of a socket on another process) goes the usual way, on
the shared channel. After Redis restarts, each process registers its rooms again as its listener reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import socketio
from engineio import packet as eio_packet
from engineio.exceptions import SocketIsClosedError
from socketio import packet as socketio_packet

from handoff.conversation import AGENTS_ROOM

log = logging.getLogger(__name__)

ROUTED_PREFIXES = ("conversation:", "agent:", "team:")
ALIVE_TTL_S = 30  # a process that stops refreshing its liveness key is dropped from the room sets
ALIVE_EVERY_S = 10

# KEYS[1]: the room's set of process ids. ARGV: sender, channel prefix, payload, liveness key prefix. Publishes to
# each other live process in the set, drops the dead ones; returns how many got it.
_PUBLISH_TO_ROOM = """
local sent = 0
for _, host in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if host ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[4] .. host) == 1 then
      redis.call('PUBLISH', ARGV[2] .. host, ARGV[3])
      sent = sent + 1
    else
      redis.call('SREM', KEYS[1], host)
    end
  end
end
return sent
"""


def routed(room: Any) -> bool:
    return isinstance(room, str) and (room == AGENTS_ROOM or room.startswith(ROUTED_PREFIXES))


class LocalRooms(socketio.AsyncManager):
    """The rooms of this process's own sockets, and the delivery of an emit to them. Alone it is the manager of a
    single relay process; under python-socketio's pub/sub manager (below it in the method order) every way a local
    socket enters or leaves a room (its own events, another process's request, a disconnect) passes here."""

    async def emit(
        self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
        callback: Any = None, to: Any = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        """python-socketio's delivery, less a task per recipient: it encodes the packet once and then starts a task
        for each socket and waits for them all, although a send only puts the packet on the socket's unbounded
        queue. Queued in turn, the same packets go out in the same order (the tasks were 8 % of a relay's CPU in
        the human phase, docs/benchmarks.md). Emits with an ack callback (a packet per recipient) go the usual way."""
        room = to or room
        if callback is not None or namespace not in self.rooms:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)  # type: ignore[no-untyped-call]
            return
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        encoded = self.server.packet_class(socketio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        frames = [
            eio_packet.Packet(eio_packet.MESSAGE, p) for p in (encoded if isinstance(encoded, list) else [encoded])
        ]
        for sid, eio_sid in self.get_participants(namespace, room):  # type: ignore[no-untyped-call]
            if sid in skip:
                continue
            for frame in frames:
                try:
                    await self.server._send_eio_packet(eio_sid, frame)
                except SocketIsClosedError:  # closing as we send: python-socketio's tasks dropped it the same way
                    break

    async def _room_joined(self, namespace: str, room: Any) -> None:  # overridden by RoomRoutedRedisManager
        pass

    async def _room_emptied(self, namespace: str, room: Any) -> None:
        pass

    def _has_members(self, namespace: str, room: Any) -> bool:
        return bool(self.rooms.get(namespace, {}).get(room))

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        first = not self._has_members(namespace, room)
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[no-untyped-call]
        if first and routed(room):
            await self._room_joined(namespace, room)

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        await super().leave_room(sid, namespace, room)  # type: ignore[no-untyped-call]
        if routed(room) and not self._has_members(namespace, room):
            await self._room_emptied(namespace, room)

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        rooms = [r for r in self.get_rooms(sid, namespace) if routed(r)]  # type: ignore[no-untyped-call]
        await super().disconnect(sid, namespace, **kwargs)  # type: ignore[no-untyped-call]
        for room in rooms:
            if not self._has_members(namespace, room):
                await self._room_emptied(namespace, room)


class RoomRoutedRedisManager(socketio.AsyncRedisManager, LocalRooms):
    def __init__(self, url: str, channel: str = "socketio") -> None:
        super().__init__(url, channel=channel)
        self._own_channel = f"{self.channel}#{self.host_id}"
        self._script: Callable[..., Any] | None = None

    # --- where this process has members ----------------------------------------------------------------------

    def _room_key(self, namespace: str, room: str) -> str:
        return f"{self.channel}:room:{namespace}:{room}"

    def _alive_key(self, host_id: str) -> str:
        return f"{self.channel}:alive:{host_id}"

    def _client(self) -> Any:
        if not self.connected:
            self._redis_connect()  # type: ignore[no-untyped-call]
        return self.redis

    async def _room_joined(self, namespace: str, room: Any) -> None:
        try:
            redis = self._client()
            async with redis.pipeline(transaction=False) as pipe:
                pipe.set(self._alive_key(self.host_id), 1, ex=ALIVE_TTL_S)
                pipe.sadd(self._room_key(namespace, room), self.host_id)
                await pipe.execute()
        except Exception:  # Redis is down: local delivery goes on; the listener registers every room again
            log.warning("could not register room %s on Redis", room, exc_info=True)

    async def _room_emptied(self, namespace: str, room: Any) -> None:
        try:
            await self._client().srem(self._room_key(namespace, room), self.host_id)
        except Exception:
            log.warning("could not unregister room %s on Redis", room, exc_info=True)

    async def _register_all(self) -> None:
        """After (re)connecting to Redis: every local room with members, and this process is alive."""
        redis = self._client()
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(self._alive_key(self.host_id), 1, ex=ALIVE_TTL_S)
            for namespace, rooms in self.rooms.items():
                for room, members in rooms.items():
                    if members and routed(room):
                        pipe.sadd(self._room_key(namespace, room), self.host_id)
            await pipe.execute()

    async def _keep_alive(self) -> None:
        """The liveness key, and every room again: a registration lost to a Redis hiccup, or a leave and a join of
        one room racing on two connections, heals within ALIVE_EVERY_S."""
        while True:
            await asyncio.sleep(ALIVE_EVERY_S)
            try:
                await self._register_all()
            except Exception:
                log.warning("could not refresh this relay's rooms on Redis", exc_info=True)

    def initialize(self) -> None:
        super().initialize()  # type: ignore[no-untyped-call]
        self.server.start_background_task(self._keep_alive)

    # --- publishing ------------------------------------------------------------------------------------------

    async def _publish(self, data: Any) -> Any:
        room = data.get("room") if isinstance(data, dict) and data.get("method") == "emit" else None
        if not routed(room):
            return await super()._publish(data)  # type: ignore[no-untyped-call]
        for retries_left in (1, 0):
            try:
                redis = self._client()
                if self._script is None:
                    self._script = redis.register_script(_PUBLISH_TO_ROOM)
                return await self._script(
                    keys=[self._room_key(data["namespace"], str(room))],
                    args=[self.host_id, f"{self.channel}#", self.json.dumps(data), self._alive_key("")],
                )
            except Exception:
                log.error("cannot publish to Redis%s", ", retrying" if retries_left else ", giving up", exc_info=True)
                self.connected = False
                self._script = None
        return None

    # --- listening: the shared channel and this process's own -------------------------------------------------

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        retry_sleep = 1
        subscribed = False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()  # type: ignore[no-untyped-call]
                    self._script = None
                    await self.pubsub.subscribe(self.channel, self._own_channel)
                    await self._register_all()
                    subscribed = True
                    retry_sleep = 1
                async for message in self.pubsub.listen():
                    yield message
            except Exception:
                log.error("cannot receive from Redis, retrying in %s s", retry_sleep, exc_info=True)
                subscribed = False
                await asyncio.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, 60)

    async def _listen(self) -> AsyncIterator[Any]:
        channels = {self.channel.encode(), self._own_channel.encode()}
        async for message in self._redis_listen_with_retries():
            if message["channel"] in channels and message["type"] == "message" and "data" in message:
                yield message["data"]
