"""A write transaction retried when TiDB says another transaction got in its way."""

from __future__ import annotations

import sqlalchemy as sa

from langchain_tidb_bedrock.db.retry import is_write_conflict
from langchain_tidb_bedrock.db.runner import Op, WriteStep, write

__all__ = ["write_retrying"]

_ATTEMPTS = 4


def write_retrying(*steps: WriteStep) -> Op[int]:
    """One transaction, run again when TiDB reports a deadlock or a write conflict."""
    for attempt in range(_ATTEMPTS):
        try:
            return (yield from write(*steps))
        except sa.exc.DBAPIError as exc:
            if attempt == _ATTEMPTS - 1 or not is_write_conflict(exc):
                raise
    raise AssertionError  # pragma: no cover - the loop returns or raises
