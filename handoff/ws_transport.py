"""How the relay's websockets carry Engine.IO: each complete message queued on its connection as Sanic parses it,
read from there without a turn of the event loop while any are queued, and a client's pending packets written
together.

Why: Sanic's frame assembler holds one message and hands it to the reader in a put/get handshake (a task, a future
and two events per message, two turns of the event loop), and python-engineio's reader then waited for each
message in a new task under ``wait_for`` (a task, a future and a timer more), as its writer did for each wait. An
agent's console carries all its chats on one socket: in scale-out c (docs/benchmarks.md), 50 chats' replies
arriving together waited 2-3 turns of a busy loop each, 34-42 ms at p50 for an agent's message whose handler took
0.4 ms, and the handshakes were a fifth of the relay's CPU per message. Here the frames Sanic's protocol has parsed
go straight onto the connection's ``Inbox``, and ``_websocket_session`` (python-engineio 4.15's websocket loop
otherwise) takes them from it.

What stays Sanic's, the websockets library's and python-engineio's: the handshake, the limits on frame and message
size, pings and pongs and their timeouts, the upgrade from long-polling, the closing handshake. Reading pauses once
a connection has ``PAUSE_AT_MESSAGES`` messages or ``PAUSE_AT_BYTES`` waiting (Sanic paused after one), and resumes
once under half of both. A text message that is not UTF-8 fails the connection with code 1007, as the protocol
asks (Sanic's assembler raised in a task nobody awaited). ``install()`` patches the classes once per process;
tests/test_ws_transport.py checks it on a real Sanic + python-socketio server (tests/ws_echo_server.py), and the
relay's own tests run over it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from importlib.metadata import version
from typing import Any

import engineio.async_drivers.sanic as engineio_sanic
from engineio import exceptions as engineio_exceptions
from engineio import packet
from engineio.async_socket import AsyncSocket
from sanic.exceptions import WebsocketClosed
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

log = logging.getLogger(__name__)

ENGINEIO_VERSION = "4.15.1"  # the python-engineio whose websocket loop _websocket_session follows
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

    def pop(self) -> str | bytes | None:
        """The next queued message, or None if none is queued (now)."""
        if not self._messages:
            return None
        message, size = self._messages.popleft()
        self._bytes -= size
        if self._paused and len(self._messages) < PAUSE_AT_MESSAGES // 2 and self._bytes < PAUSE_AT_BYTES // 2:
            self._paused = not self._set_reading(True)
        return message

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
        return self.pop()

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
    # Sanic's HTTP protocol keeps a timer to check its timeouts (up to 30 s away), which holds the whole closed
    # connection until it fires (docs/reliability.md); a connection that is gone has no timeout left to check.
    timer = getattr(self.io_proto, "_callback_check_timeouts", None)
    if timer is not None:
        timer.cancel()


async def _engineio_wait(self: Any) -> str | bytes:
    """python-engineio's Sanic ``WebSocket.wait``: the next message, or OSError once the connection is gone (what
    its own raises when Sanic's read ends)."""
    message = await inbox_of(self._sock).get()
    if message is None:
        raise OSError("websocket closed")
    return message


async def _next_message(inbox: Inbox, timeout: float | None, limit: int) -> str | bytes | None:
    """The next message without a turn of the loop while one is queued; None at the end, after ``timeout`` seconds
    without one, or for one over ``limit`` bytes (python-engineio's reader ends the session on each)."""
    message = inbox.pop()
    if message is None:
        try:
            async with asyncio.timeout(timeout):
                message = await inbox.get()
        except (TimeoutError, asyncio.CancelledError):
            return None
    if message is not None and len(message) > limit:
        log.info("a websocket message of %d bytes is over the limit of %d", len(message), limit)
        return None
    return message


async def _poll(socket: AsyncSocket, timeout: float) -> list[packet.Packet]:
    """``AsyncSocket.poll`` without a task per wait: every packet queued for the client, [] once it is closing."""
    queue = socket.queue
    try:
        if queue.empty():
            async with asyncio.timeout(timeout):
                first = await queue.get()
        else:
            first = queue.get_nowait()
    except (TimeoutError, asyncio.CancelledError):
        raise engineio_exceptions.QueueEmpty() from None
    queue.task_done()
    if first is None:
        return []
    packets = [first]
    while not queue.empty():
        pkt = queue.get_nowait()
        queue.task_done()
        if pkt is None:
            queue.put_nowait(None)  # the end, for the next poll
            break
        packets.append(pkt)
    return packets


async def _send_all(connection: WebsocketImplProtocol, messages: list[str | bytes]) -> None:
    """The messages in one write: Sanic's ``send`` takes its lock and writes once per message."""
    if len(messages) == 1:
        await connection.send(messages[0])
        return
    async with connection.conn_mutex:
        if connection.ws_proto.state in (State.CLOSED, State.CLOSING):
            raise WebsocketClosed("Cannot write to websocket interface after it is closed.")
        for message in messages:
            if isinstance(message, str):
                connection.ws_proto.send_text(message.encode("utf-8"))
            else:
                connection.ws_proto.send_binary(message)
        chunks = connection.ws_proto.data_to_send()
        if connection.io_proto is not None and all(chunks):
            await connection.io_proto.send(b"".join(chunks))
        else:  # an empty chunk is the end of the stream, which Sanic's own writer handles
            await connection.send_data(chunks)


async def _websocket_session(self: AsyncSocket, ws: engineio_sanic.WebSocket) -> None:
    """python-engineio 4.15's ``AsyncSocket._websocket_handler`` on the connection's inbox: the same upgrade, the
    same writer and reader, minus the task, future and timer it made for each message read (``wait_for`` on a new
    task) and for each wait of the writer, and with the packets queued for a client written together."""
    server = self.server
    inbox = inbox_of(ws._sock)
    timeout = server.ping_interval + server.ping_timeout
    limit = server.max_http_buffer_size

    if self.connected:  # polling until now: this is the upgrade to the websocket
        self.upgrading = True  # the polling transport holds its packets meanwhile
        probe = await _next_message(inbox, None, limit)
        decoded = packet.Packet(encoded_packet=probe) if probe is not None else None
        if decoded is None or decoded.packet_type != packet.PING or decoded.data != "probe":
            server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
            self.upgrading = False
            return
        await ws.send(packet.Packet(packet.PONG, data="probe").encode())
        await self.queue.put(packet.Packet(packet.NOOP))  # ends the pending poll
        upgrade = await _next_message(inbox, None, limit)
        if upgrade is None or packet.Packet(encoded_packet=upgrade).packet_type != packet.UPGRADE:
            self.upgraded = False
            server.logger.info("%s: Failed websocket upgrade, expected UPGRADE packet", self.sid)
            self.upgrading = False
            return
        self.upgraded = True
        self.upgrading = False
    else:
        self.connected = True
        self.upgraded = True

    async def writer() -> None:
        while True:
            try:
                packets = await _poll(self, timeout)
            except engineio_exceptions.QueueEmpty:
                break
            if not packets:
                break
            try:
                await _send_all(ws._sock, [pkt.encode() for pkt in packets])
            except Exception:  # the connection is gone: the reader sees it end too
                break
        await ws.close()

    writer_task = asyncio.ensure_future(writer())
    server.logger.info("%s: Upgrade to websocket successful", self.sid)
    while (message := await _next_message(inbox, timeout, limit)) is not None:
        try:
            await self.receive(packet.Packet(encoded_packet=message))
        except engineio_exceptions.UnknownPacketError:
            pass
        except engineio_exceptions.SocketIsClosedError:
            server.logger.info("Receive error -- socket is closed")
            break
        except Exception:
            server.logger.exception("Unknown receive error")
    # Sanic cancels the connection's task once the connection is lost, perhaps while the session is still ending:
    # the ending (the writer's last write, the disconnect handlers: an agent's presence, say) runs to its end.
    ending = asyncio.ensure_future(_end_session(self, writer_task))
    _ending.add(ending)
    ending.add_done_callback(_ending.discard)
    await asyncio.shield(ending)


_ending: set[asyncio.Future[None]] = set()  # sessions still ending, held so that none is collected half-way


async def _end_session(self: AsyncSocket, writer_task: asyncio.Future[None]) -> None:
    await self.queue.put(None)  # the writer ends
    await writer_task
    await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)


def install() -> None:
    """Idempotent; for every websocket of this process (the relay's are all Engine.IO's). The Engine.IO session
    loop replaces python-engineio's only for the version it was written from; another keeps the library's."""
    WebsocketImplProtocol.process_events = _process_events  # type: ignore[method-assign]
    WebsocketImplProtocol.connection_lost = _connection_lost  # type: ignore[method-assign]
    engineio_sanic.WebSocket.wait = _engineio_wait
    if version("python-engineio") == ENGINEIO_VERSION:
        AsyncSocket._websocket_handler = _websocket_session  # type: ignore[method-assign]
    else:
        log.warning(
            "python-engineio %s, not %s: its own websocket loop runs", version("python-engineio"), ENGINEIO_VERSION
        )
