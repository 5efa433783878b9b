"""The relay's Socket.IO packets: python-socketio's, encoded with ujson and checked for binary data in one pass.

Why: every emit and every ack is one packet, and on the human phase's hot path python-socketio's own packet spent
as much time finding out whether the payload holds bytes (a recursive reduce over every value) and running the
standard library's JSON encoder as the relay spent storing the message. ujson (installed with Sanic) reads and
writes the same JSON for what the relay sends and receives (str keys, ints of any size, lone surrogates escaped),
and refuses nesting too deep to decode with a ValueError, which closes that connection (handoff/app.py), where the
standard library raised RecursionError.
"""

from __future__ import annotations

from typing import Any

import ujson
from socketio import packet


class _Ujson:
    """The two calls python-socketio makes of its ``json`` module."""

    @staticmethod
    def dumps(obj: Any, **_options: Any) -> str:  # python-socketio asks for compact separators: ujson's default
        return ujson.dumps(obj, escape_forward_slashes=False)

    @staticmethod
    def loads(text: str | bytes, **_options: Any) -> Any:
        return ujson.loads(text)


class RelayPacket(packet.Packet):  # type: ignore[misc]
    json = _Ujson

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        pending = [data]
        while pending:
            item = pending.pop()
            if isinstance(item, bytes | bytearray):
                return True
            if isinstance(item, list):
                pending.extend(item)
            elif isinstance(item, dict):
                pending.extend(item.values())
        return False
