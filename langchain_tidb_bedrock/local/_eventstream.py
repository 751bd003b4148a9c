"""Encoder for ``application/vnd.amazon.eventstream`` frames, the framing botocore decodes.

Message layout (big-endian): ``[total_len u32][headers_len u32][prelude_crc u32][headers]
[payload][message_crc u32]``; both CRCs are IEEE CRC-32. Every header is sent as a string
(type 7), which is all Bedrock's streaming operations use.
"""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

_STRING = b"\x07"


def _header(name: str, value: str) -> bytes:
    nb, vb = name.encode(), value.encode()
    return struct.pack("!B", len(nb)) + nb + _STRING + struct.pack("!H", len(vb)) + vb


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """Encode one event-stream message with both CRCs."""
    hb = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", 12 + len(hb) + len(payload) + 4, len(hb))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    msg = prelude + hb + payload
    return msg + struct.pack("!I", binascii.crc32(msg) & 0xFFFFFFFF)


def event(kind: str, obj: dict[str, Any]) -> bytes:
    """An ``event`` message whose payload is the JSON of one stream member."""
    headers = {
        ":event-type": kind,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame(headers, json.dumps(obj).encode())


def exception(kind: str, message: str, **extra: Any) -> bytes:
    """An in-stream ``exception`` message; botocore raises ``EventStreamError`` for it."""
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, json.dumps({"message": message, **extra}).encode())
