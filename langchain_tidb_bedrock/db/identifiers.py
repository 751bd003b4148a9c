"""SQL identifiers: validated before they reach any statement text (values are always bound)."""

from __future__ import annotations

import re

from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = ["quote_identifier", "validate_identifier"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,63}")


def validate_identifier(name: str, what: str = "table name") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise an error naming it."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        msg = (
            f"invalid {what} {name!r}: use 1-64 letters, digits, '_' or '$', "
            "starting with a letter or '_'"
        )
        raise InvalidInputError(msg)
    return name


def quote_identifier(name: str) -> str:
    """Backquote a validated identifier for DDL text."""
    return f"`{validate_identifier(name)}`"
