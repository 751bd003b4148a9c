"""What the app-state tables share: created on the first write, read as empty until then, TTL.

The record manager, the key-value stores and the caches own one table each with a fixed DDL.
None of them needs a setup call: the first write that finds the table missing creates it and
runs again, and a read or delete of a table not created yet finds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.db.component import is_missing_table
from langchain_tidb_bedrock.db.runner import Op, Rows, WriteStep, read, write
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = [
    "NOT_EXPIRED",
    "TTL_CLAUSE",
    "op_create",
    "op_delete_namespaced",
    "read_or_none",
    "ttl_microseconds",
    "write_creating",
    "write_or_nothing",
]

# Rows expire at their own ``expires_at`` (NULL: never). TiDB's TTL job deletes them later
# than that, so every read filters with NOT_EXPIRED too.
TTL_CLAUSE = "TTL = `expires_at` + INTERVAL 0 SECOND TTL_ENABLE = 'ON' TTL_JOB_INTERVAL = '1h'"
NOT_EXPIRED = "(expires_at IS NULL OR expires_at > NOW(6))"
DELETE_CHUNK = 1000  # keys per DELETE statement (all of them in one transaction)


def ttl_microseconds(ttl: object) -> int | None:
    """``ttl`` (seconds or a timedelta) in microseconds; None for no expiry.

    Raises:
        InvalidInputError: not a number or timedelta, or not a positive, finite duration.
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        msg = f"ttl must be seconds (a number) or a timedelta, got {type(ttl).__name__}"
        raise InvalidInputError(msg)
    if not seconds > 0 or seconds == float("inf"):
        msg = f"ttl must be a positive, finite duration, got {ttl!r}"
        raise InvalidInputError(msg)
    return max(1, round(seconds * 1_000_000))


def op_create(ddl: str) -> Op[None]:
    """Run a ``CREATE TABLE IF NOT EXISTS``."""
    yield from write(sa.text(ddl))
    return None


def read_or_none(statement: str, params: dict[str, Any] | None = None) -> Op[Rows | None]:
    """The rows of a read; None when the table is not created yet."""
    try:
        return (yield from read(statement, params))
    except Exception as exc:
        if not is_missing_table(exc):
            raise
        return None


def write_creating(ddl: str, *steps: WriteStep) -> Op[int]:
    """Run ``steps`` in one transaction; when the table is missing, create it and run again."""
    try:
        return (yield from write(*steps))
    except Exception as exc:
        if not is_missing_table(exc):
            raise
    yield from op_create(ddl)
    return (yield from write(*steps))


def write_or_nothing(*steps: WriteStep) -> Op[int]:
    """Run ``steps`` in one transaction; a missing table had nothing to change (0 rows)."""
    try:
        return (yield from write(*steps))
    except Exception as exc:
        if not is_missing_table(exc):
            raise
        return 0


def op_delete_namespaced(table: str, namespace: bytes, keys: Sequence[bytes]) -> Op[None]:
    """Delete ``keys`` of ``namespace`` from a ``(namespace, `key`)`` table, one transaction.

    ``table`` is the quoted name. Missing keys, and a missing table, are no error.
    """
    steps: list[WriteStep] = []
    for start in range(0, len(keys), DELETE_CHUNK):
        chunk = keys[start : start + DELETE_CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        sql = f"DELETE FROM {table} WHERE namespace = %s AND `key` IN ({marks})"
        steps.append((sql, [(namespace, *chunk)]))
    yield from write_or_nothing(*steps)
    return None
