"""How the relay takes in a websocket's messages: each complete message queued on its connection as it is parsed,
instead of Sanic's hand-over of one message at a time.

Why: Sanic's frame assembler holds one message and hands it to the reader in a put/get handshake (a task, a future
and two events per message, two turns of the event loop), and python-engineio's Sanic driver reads through it. An
agent's console carries all its chats on one socket: in scale-out c (docs/benchmarks.md), 50 chats' replies
arriving together waited 2-3 turns of a busy loop each, 34-42 ms at p50 for an agent's message whose handler took
0.4 ms, and the handshakes were a fifth of the relay's CPU per message. Here the frames Sanic's protocol has parsed
go straight onto the connection's queue, and Engine.IO's reader takes them from it without waiting while any are
there.

What stays Sanic's and the websockets library's: the handshake, the limits on frame and message size, pings and
pongs, the closing handshake. Reading pauses once a connection has ``PAUSE_AT_MESSAGES`` messages or ``PAUSE_AT_BYTES``
waiting (Sanic paused after one), and resumes once under half of both. A text message that is
not UTF-8 fails the connection with code 1007, as the protocol asks (Sanic's assembler raised in a task nobody
awaited). ``install()`` patches the two classes once per process; tests/test_ws_receive.py checks it on a real
Sanic + python-socketio server (tests/ws_echo_server.py), and the relay's own tests run over it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Any

import engineio.async_drivers.sanic as engineio_sanic
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

PAUSE_AT_MESSAGES = 32
PAUSE_AT_BYTES = 512 * 1024
_ATTRIBUTE = "_warmline_inbox"


class Inbox:
    """One connection's complete messages, in arrival order, until it closes."""

    def __init__(self, connection: WebsocketImplProtocol) -> None:
        # Weak: the connection holds its inbox, and a cycle would keep each closed connection until a full
        # collection (the relay handles thousands of short-lived ones, tests/test_hostile_input.py).
        self._connection = weakref.ref(connection)
        self._messages: deque[tuple[str | bytes, int]] = deque()  # each with its size in bytes
        self._bytes = 0
        self._chunks: list[bytes] = []
        self._text = True
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._paused = False

    def add(self, frame: Frame) -> None:
        """A data frame (text, binary or a continuation); a message is queued when its last frame arrives."""
        if self._closed:
            return
        if frame.opcode is not Opcode.CONT:
            self._text = frame.opcode is Opcode.TEXT
            self._chunks = []
        self._chunks.append(bytes(frame.data))
        if not frame.fin:
            return
        data = b"".join(self._chunks)
        self._chunks = []
        if self._text:
            try:
                message: str | bytes = data.decode("utf-8")
            except UnicodeDecodeError:
                if (connection := self._connection()) is not None:
                    connection.fail_connection(1007, "invalid UTF-8")
                self.close()
                return
        else:
            message = data
        self._messages.append((message, len(data)))
        self._bytes += len(data)
        if not self._paused and (len(self._messages) >= PAUSE_AT_MESSAGES or self._bytes >= PAUSE_AT_BYTES):
            self._paused = self._set_reading(False)
        self._wake()

    def close(self) -> None:
        """No more messages: a reader gets what is queued, then the end."""
        self._closed = True
        self._chunks = []
        self._wake()

    async def get(self) -> str | bytes | None:
        """The next message, at once if one is queued; None once the connection has closed and none is left."""
        while not self._messages:
            connection = self._connection()
            if self._closed or connection is None or connection.ws_proto.state is State.CLOSED:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message, size = self._messages.popleft()
        self._bytes -= size
        if self._paused and len(self._messages) < PAUSE_AT_MESSAGES // 2 and self._bytes < PAUSE_AT_BYTES // 2:
            self._paused = not self._set_reading(True)
        return message

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _set_reading(self, on: bool) -> bool:
        connection = self._connection()
        transport = connection.io_proto.transport if connection is not None and connection.io_proto else None
        if transport is None or transport.is_closing():
            return False
        if on:
            transport.resume_reading()
        else:
            transport.pause_reading()
        return True


def inbox_of(connection: WebsocketImplProtocol) -> Inbox:
    box: Inbox | None = getattr(connection, _ATTRIBUTE, None)
    if box is None:
        box = Inbox(connection)
        setattr(connection, _ATTRIBUTE, box)
    return box


async def _process_events(self: WebsocketImplProtocol, events: Any) -> None:
    """Sanic's ``process_events`` with data frames queued instead of put into the one-message assembler."""
    async with self.process_event_mutex:
        for event in events:
            if not isinstance(event, Frame):
                continue
            if event.opcode is Opcode.PONG:
                await self.process_pong(event)
            elif event.opcode is Opcode.CLOSE:
                if self.recv_cancel:
                    self.recv_cancel.cancel()
                inbox_of(self).close()
            elif event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                inbox_of(self).add(event)
            # PING: the websockets library has queued the PONG already; nothing for the reader


_sanic_connection_lost = WebsocketImplProtocol.connection_lost


def _connection_lost(self: WebsocketImplProtocol, exc: Exception | None) -> None:
    _sanic_connection_lost(self, exc)
    inbox_of(self).close()


async def _engineio_wait(self: Any) -> str | bytes:
    """python-engineio's Sanic ``WebSocket.wait``: the next message, or OSError once the connection is gone (what
    its own raises when Sanic's read ends)."""
    message = await inbox_of(self._sock).get()
    if message is None:
        raise OSError("websocket closed")
    return message


def install() -> None:
    """Idempotent; for every websocket of this process (the relay's are all Engine.IO's)."""
    WebsocketImplProtocol.process_events = _process_events  # type: ignore[method-assign]
    WebsocketImplProtocol.connection_lost = _connection_lost  # type: ignore[method-assign]
    engineio_sanic.WebSocket.wait = _engineio_wait
