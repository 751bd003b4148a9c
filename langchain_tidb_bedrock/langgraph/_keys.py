"""Key columns: a value is checked against its column before anything is written."""

from __future__ import annotations

from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = ["check_key"]


def check_key(value: object, what: str, max_chars: int) -> str:
    """``value`` as a key column string, or an error naming ``what`` and the limit."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > max_chars:
        msg = f"{what} is {len(text)} characters long; the limit is {max_chars}"
        raise InvalidInputError(msg)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        msg = f"{what} {text[:40]!r} is not valid Unicode text (a lone surrogate)"
        raise InvalidInputError(msg) from None
    return text
