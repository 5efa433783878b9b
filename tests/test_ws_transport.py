"""The relay's websocket receive path (handoff/ws_transport.py) on a real Sanic + python-socketio server: every
message of a burst arrives once and in order, fragmented messages are put together, a paused connection resumes,
and what the protocol refuses (invalid UTF-8, an oversized message) closes the connection as it should."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import socketio
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from common.settings import ROOT
from handoff import ws_transport
from tests.stack import free_port
from tests.ws_echo_server import MAX_SIZE


@contextmanager
def echo_server(*args: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "ws_echo_server.py"), str(port), *args], cwd=ROOT)
    url = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{url}/health", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the echo server did not start") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with echo_server() as url:
        yield url


class Raw:
    """Engine.IO / Socket.IO spoken by hand over one websocket, to send exactly the frames a test needs."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, url: str, **options: Any) -> Raw:
        ws = await websockets.connect(f"ws://{url}/socket.io/?EIO=4&transport=websocket", **options)
        opened = await ws.recv()
        assert str(opened).startswith("0{"), opened
        await ws.send("40")
        connected = await ws.recv()
        assert str(connected).startswith("40{"), connected
        return cls(ws)

    async def acks(self, count: int) -> dict[int, Any]:
        """The next ``count`` acknowledgements, by ack id (answering the server's pings meanwhile)."""
        got: dict[int, Any] = {}
        while len(got) < count:
            frame = str(await asyncio.wait_for(self.ws.recv(), 30))
            if frame == "2":
                await self.ws.send("3")
            elif frame.startswith("43"):
                body = frame[2:]
                split = body.index("[")
                got[int(body[:split])] = json.loads(body[split:])[0]
        return got


@pytest.fixture
async def raw(server: str) -> AsyncIterator[Raw]:
    client = await Raw.open(server)
    yield client
    await client.ws.close()


async def arrived(server: str) -> dict[str, Any]:
    client = await Raw.open(server)
    try:
        await client.ws.send('42999["arrived"]')
        return (await client.acks(1))[999]  # type: ignore[no-any-return]
    finally:
        await client.ws.close()


async def test_a_burst_on_one_socket_arrives_once_in_order_and_each_is_acknowledged(raw: Raw, server: str) -> None:
    count = 2_000  # far over the pause mark: reading pauses and resumes many times on the way
    assert count > ws_transport.PAUSE_AT_MESSAGES * 10
    tag = f"burst-{time.monotonic_ns()}"
    for i in range(count):
        await raw.ws.send(f'42{i}["echo",{json.dumps([tag, i])}]')
    acks = await raw.acks(count)
    assert acks == {i: [tag, i] for i in range(count)}
    mine = [item[1] for item in (await arrived(server))["arrived"] if isinstance(item, list) and item[0] == tag]
    assert mine == list(range(count))


def send_frames(client: Raw, *frames: Frame) -> None:
    """Frames written by hand: the websockets client will not cut a character or send invalid UTF-8 itself."""
    for frame in frames:
        client.ws.protocol.send_frame(frame)
    client.ws.send_data()


async def test_a_fragmented_message_is_put_together(raw: Raw) -> None:
    payload = {"text": "日本語 " * 500}
    encoded = ('427["echo",' + json.dumps(payload, ensure_ascii=False) + "]").encode("utf-8")
    first = encoded.index("本".encode()) + 1  # both cuts inside a three-byte character
    second = encoded.index("語".encode(), 2_000) + 2
    send_frames(
        raw,
        Frame(Opcode.TEXT, encoded[:first], fin=False),
        Frame(Opcode.CONT, encoded[first:second], fin=False),
        Frame(Opcode.CONT, encoded[second:], fin=True),
    )
    assert (await raw.acks(1))[7] == payload
    await raw.ws.send('428["echo","after"]')  # the socket goes on
    assert (await raw.acks(1))[8] == "after"


async def test_invalid_utf8_closes_the_connection_with_1007(server: str) -> None:
    client = await Raw.open(server)
    send_frames(client, Frame(Opcode.TEXT, b'421["echo","\xff\xfe"]'))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(client.acks(1), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    # The server is fine: others still talk to it.
    other = await Raw.open(server)
    await other.ws.send('421["echo","still here"]')
    assert (await other.acks(1))[1] == "still here"
    await other.ws.close()


async def test_an_oversized_message_closes_the_connection_with_1009(server: str) -> None:
    client = await Raw.open(server, max_size=None)
    await client.ws.send('421["echo","' + "x" * (MAX_SIZE + 10) + '"]')
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(client.acks(1), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_closed_or_dropped_socket_is_disconnected_on_the_server(server: str) -> None:
    before = (await arrived(server))["disconnects"]
    polite = await Raw.open(server)
    await polite.ws.close()
    dropped = await Raw.open(server)
    dropped.ws.transport.abort()  # no closing handshake: the TCP connection just goes
    for _ in range(3):  # python-socketio's own goodbye: its disconnect packets, then the socket closed at once
        client = socketio.AsyncClient()
        await client.connect(f"http://{server}", transports=["websocket"])
        await client.disconnect()
    # each disconnect handler awaits (tests/ws_echo_server.py) while the connection goes: each still ends
    deadline = time.monotonic() + 10
    while (await arrived(server))["disconnects"] - before < 5:
        assert time.monotonic() < deadline, "the server never noticed the closed sockets"
        await asyncio.sleep(0.1)


async def test_python_socketio_clients_work_over_it(server: str) -> None:
    client = socketio.AsyncClient()
    await client.connect(f"http://{server}", transports=["websocket"])
    answers = await asyncio.gather(*(client.call("echo", {"n": i}, timeout=10) for i in range(300)))
    assert answers == [{"n": i} for i in range(300)]
    await client.disconnect()
    polling = socketio.AsyncClient()
    await polling.connect(f"http://{server}", transports=["polling"])  # the long-polling transport is untouched
    assert await polling.call("echo", "polled", timeout=10) == "polled"
    await polling.eio.disconnect(abort=True)  # python-socketio's polite one waits out the pending long-poll (30 s)


async def test_a_polling_client_upgrades_to_the_websocket(server: str) -> None:
    client = socketio.AsyncClient()
    await client.connect(f"http://{server}")  # long-polling first, then the upgrade (as browsers connect)
    assert client.transport() == "websocket"  # python-engineio's client upgrades before connect returns
    answers = await asyncio.gather(*(client.call("echo", i, timeout=10) for i in range(50)))
    assert answers == list(range(50))
    await client.disconnect()


async def test_a_burst_from_the_server_arrives_once_in_order(server: str) -> None:
    client = socketio.AsyncClient()
    got: list[int] = []
    all_in = asyncio.Event()

    def flooded(n: int) -> None:
        got.append(n)
        if len(got) == 3_000:
            all_in.set()

    client.on("flooded", flooded)
    await client.connect(f"http://{server}", transports=["websocket"])
    assert await client.call("flood", 3_000, timeout=30) == 3_000
    await asyncio.wait_for(all_in.wait(), 10)
    assert got == list(range(3_000))
    await client.disconnect()


async def test_a_silent_client_is_dropped_after_the_ping_timeout_and_a_live_one_is_not() -> None:
    with echo_server("1") as url:  # ping every second, a second to answer
        silent, live = await Raw.open(url), await Raw.open(url)
        live_acks = asyncio.create_task(live.acks(1))  # answers every ping while it waits
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while True:  # reads the pings, never answers
                await asyncio.wait_for(silent.ws.recv(), 10)
        assert time.monotonic() - started < 8
        await live.ws.send('421["echo","still here"]')
        assert await live_acks == {1: "still here"}
        await live.ws.close()


async def test_closed_connections_are_freed_at_once(server: str) -> None:
    """Sanic's timeout-check timer held each closed connection for up to 30 s (docs/reliability.md): memory under
    a churn of connections grew with it. A lost connection cancels that timer."""
    probe = socketio.AsyncClient()
    await probe.connect(f"http://{server}", transports=["websocket"])
    before = await probe.call("connections_held", timeout=10)
    for _ in range(5):
        clients = [await Raw.open(server) for _ in range(20)]
        for client in clients:
            client.ws.transport.abort()
    deadline = time.monotonic() + 5
    while (held := await probe.call("connections_held", timeout=10)) > before:
        assert time.monotonic() < deadline, f"{held - before} closed connections still held"
        await asyncio.sleep(0.2)
    await probe.disconnect()
