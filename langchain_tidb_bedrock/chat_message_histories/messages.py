"""Checking and encoding messages: everything is validated before anything is written."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = ["SESSION_ID_MAX_CHARS", "check_session_id", "decode_message", "encode_messages"]

SESSION_ID_MAX_CHARS = 255  # the session_id column is VARCHAR(255), in both table layouts


def check_session_id(session_id: object, what: str = "session_id") -> str:
    """Return ``session_id`` if it can name a session, else raise an error saying why.

    Surrounding whitespace is refused: TiDB's ``utf8mb4_bin`` pads with spaces when comparing,
    so ``"a"`` and ``"a "`` would silently share one history.
    """
    if not isinstance(session_id, str):
        msg = f"{what} must be a string, got {type(session_id).__name__}"
        raise InvalidInputError(msg)
    if not session_id.strip():
        msg = f"{what} must not be blank"
        raise InvalidInputError(msg)
    if session_id != session_id.strip():
        msg = f"{what} {session_id!r} must not start or end with whitespace"
        raise InvalidInputError(msg)
    if len(session_id) > SESSION_ID_MAX_CHARS:
        msg = f"{what} is {len(session_id)} characters long; the limit is {SESSION_ID_MAX_CHARS}"
        raise InvalidInputError(msg)
    try:
        session_id.encode("utf-8")
    except UnicodeEncodeError:
        msg = f"{what} {session_id!r} is not valid Unicode text (a lone surrogate)"
        raise InvalidInputError(msg) from None
    return session_id


def encode_messages(messages: object) -> list[str]:
    """JSON text for each message (langchain-core's ``message_to_dict`` form), in order.

    Raises:
        InvalidInputError: ``messages`` is not a sequence of ``BaseMessage``, or one of them
            cannot be stored as JSON; the message names its position.
    """
    if isinstance(messages, BaseMessage):
        msg = "add_messages takes a list of messages, got one message: wrap it in a list"
        raise InvalidInputError(msg)
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        msg = f"add_messages takes a list of messages, got {type(messages).__name__}"
        raise InvalidInputError(msg)
    encoded: list[str] = []
    for position, message in enumerate(messages):
        if not isinstance(message, BaseMessage):
            msg = (
                f"message {position} is a {type(message).__name__}, not a langchain-core "
                "message (HumanMessage, AIMessage, ...); nothing was written"
            )
            raise InvalidInputError(msg)
        try:
            text = json.dumps(message_to_dict(message), ensure_ascii=False, allow_nan=False)
            text.encode("utf-8")
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            msg = (
                f"message {position} ({message.type}) cannot be stored as JSON "
                f"({type(exc).__name__}: {_short(exc)}); nothing was written"
            )
            raise InvalidInputError(msg) from None
        encoded.append(text)
    return encoded


def decode_message(value: Any) -> BaseMessage:
    """The message stored as JSON text (PyMySQL returns JSON columns as text)."""
    data = json.loads(value) if isinstance(value, (str, bytes)) else value
    return messages_from_dict([data])[0]


def _short(exc: BaseException) -> str:
    # The reason only: a serialisation error can quote the message content.
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if len(text) <= 80 else text[:77] + "..."
