"""What the caches store: hashed keys, generations as JSON, and the text a prompt is about."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
from langchain_core.messages import message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = ["decode_generations", "encode_generations", "key_hash", "prompt_text"]


def key_hash(value: object, what: str) -> bytes:
    """SHA-256 of a prompt or llm_string (fixed-size primary key columns, any length of text)."""
    if not isinstance(value, str):
        msg = f"{what} must be a string, got {type(value).__name__}"
        raise InvalidInputError(msg)
    try:
        return hashlib.sha256(value.encode()).digest()
    except UnicodeEncodeError:
        msg = f"{what} is not valid Unicode (a lone surrogate)"
        raise InvalidInputError(msg) from None


def encode_generations(return_val: object) -> bytes:
    """The generations as JSON (messages through langchain-core's ``message_to_dict``)."""
    if isinstance(return_val, (str, bytes)) or not isinstance(return_val, Sequence):
        msg = f"return_val must be a list of Generation, got {type(return_val).__name__}"
        raise InvalidInputError(msg)
    items: list[dict[str, Any]] = []
    for position, gen in enumerate(return_val):
        if isinstance(gen, ChatGeneration):
            kind = "chat_chunk" if isinstance(gen, ChatGenerationChunk) else "chat"
            items.append(
                {
                    "kind": kind,
                    "message": message_to_dict(gen.message),
                    "generation_info": gen.generation_info,
                }
            )
        elif isinstance(gen, Generation):
            kind = "text_chunk" if isinstance(gen, GenerationChunk) else "text"
            items.append({"kind": kind, "text": gen.text, "generation_info": gen.generation_info})
        else:
            msg = f"the item at position {position} is a {type(gen).__name__}, not a Generation"
            raise InvalidInputError(msg)
    try:
        return orjson.dumps(items)
    except TypeError as exc:
        msg = f"the generations cannot be stored as JSON: {exc}"
        raise InvalidInputError(msg) from None


def decode_generations(raw: bytes) -> list[Generation]:
    """The generations back from :func:`encode_generations`' JSON."""
    out: list[Generation] = []
    for item in orjson.loads(raw):
        info = item.get("generation_info")
        kind = item["kind"]
        if kind in ("chat", "chat_chunk"):
            (message,) = messages_from_dict([item["message"]])
            cls = ChatGenerationChunk if kind == "chat_chunk" else ChatGeneration
            out.append(cls(message=message, generation_info=info))  # type: ignore[arg-type]
        else:
            cls_text = GenerationChunk if kind == "text_chunk" else Generation
            out.append(cls_text(text=item["text"], generation_info=info))
    return out


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text ones
        parts = [
            b if isinstance(b, str) else str(b.get("text", ""))
            for b in content
            if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")
        ]
        return "\n".join(p for p in parts if p)
    return ""


def prompt_text(prompt: str) -> str:
    """The text to embed for a prompt.

    Chat models pass the whole conversation serialised as JSON (``dumps(messages)``); embedding
    that JSON would make every prompt look alike (the same keys and class paths), so the
    conversation becomes ``role: text`` lines. Any other prompt is embedded as it is.
    """
    if not prompt.startswith("[{"):
        return prompt
    try:
        items = orjson.loads(prompt)
    except orjson.JSONDecodeError:
        return prompt
    lines = []
    for item in items:
        kwargs = item.get("kwargs") if isinstance(item, dict) else None
        if not isinstance(kwargs, dict) or "content" not in kwargs:
            return prompt  # not a serialised message list
        role = kwargs.get("type") or (item.get("id") or ["?"])[-1]
        lines.append(f"{role}: {_content_text(kwargs['content'])}")
    return "\n".join(lines)
