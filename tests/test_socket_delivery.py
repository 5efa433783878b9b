"""How the relay puts Socket.IO packets on the wire (handoff/packets.py, handoff/pubsub.py's LocalRooms): the same
packets as python-socketio's own, to the same sockets, without its per-recipient tasks."""

from __future__ import annotations

from typing import Any

import pytest
import socketio
from engineio.exceptions import SocketIsClosedError
from socketio import packet

from handoff.packets import RelayPacket
from handoff.pubsub import LocalRooms

PAYLOADS: list[Any] = [
    ["chat_message", {"ticket_id": 7, "message": {"text": 'a/b "quoted" \\ back', "data": {"agent_name": "Zoë"}}}],
    ["bot_uttered", {"text": "日本語 and emoji 🙂", "quick_replies": [{"title": "Yes", "payload": "/affirm"}]}],
    ["x", {"big": 2**70, "neg": -1, "float": 0.1, "none": None, "flag": True, "empty": [], "nested": [[{}]]}],
    ["surrogate", "\ud800 alone"],
]


@pytest.mark.parametrize("data", PAYLOADS)
def test_packets_encode_and_decode_as_python_socketio_does(data: list[Any]) -> None:
    mine = RelayPacket(packet.EVENT, data=data, namespace="/agent", id=12).encode()
    stock = packet.Packet(packet.EVENT, data=data, namespace="/agent", id=12).encode()
    assert mine == stock
    assert RelayPacket(encoded_packet=stock).data == packet.Packet(encoded_packet=stock).data == data


def test_binary_payloads_still_travel_as_attachments() -> None:
    data = ["file", {"parts": [b"\x00\x01", {"deep": bytearray(b"z")}], "name": "a.bin"}]
    assert RelayPacket.data_is_binary(data) and not RelayPacket.data_is_binary(["text", {"a": ["b", 1]}])
    mine, stock = RelayPacket(packet.EVENT, data=data).encode(), packet.Packet(packet.EVENT, data=data).encode()
    assert mine == stock and len(mine) == 3  # the packet and its two attachments


@pytest.mark.parametrize("text", ['2["a",', "2" + "[" * 100_000, '2["a"]]', "2{nope}"])
def test_malformed_json_is_a_value_error(text: str) -> None:
    # handoff/app.py closes the connection on ValueError; too deep a nesting must not be a RecursionError.
    with pytest.raises(ValueError):
        RelayPacket(encoded_packet=text)


async def test_a_room_emit_reaches_each_member_once_in_order_skipping_the_sender_and_closed_sockets() -> None:
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=LocalRooms(), serializer=RelayPacket)
    sent: list[tuple[str, str]] = []

    async def send(eio_sid: str, frame: Any) -> None:
        if eio_sid == "eio-closed":
            raise SocketIsClosedError()
        sent.append((eio_sid, frame.data))

    sio._send_eio_packet = send  # type: ignore[method-assign]
    sids = {}
    for name in ("a", "b", "closed", "c"):
        sids[name] = await sio.manager.connect(f"eio-{name}", "/agent")
        await sio.manager.enter_room(sids[name], "/agent", "conversation:1")
    await sio.manager.connect("eio-elsewhere", "/agent")

    await sio.emit("first", {"n": 1}, to="conversation:1", namespace="/agent", skip_sid=sids["b"])
    await sio.emit("second", {"n": 2}, to="conversation:1", namespace="/agent")
    first, second = '2/agent,["first",{"n":1}]', '2/agent,["second",{"n":2}]'
    assert sent == [("eio-a", first), ("eio-c", first), ("eio-a", second), ("eio-b", second), ("eio-c", second)]
    sent.clear()
    await sio.emit("nobody", {}, to="conversation:2", namespace="/agent")
    await sio.emit("no namespace", {}, to="conversation:1", namespace="/other")
    assert sent == []
