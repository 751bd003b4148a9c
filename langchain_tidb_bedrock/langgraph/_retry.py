"""A write transaction retried when TiDB says another transaction got in its way."""

from __future__ import annotations

import sqlalchemy as sa

from langchain_tidb_bedrock.db.runner import Op, WriteStep, write

__all__ = ["write_retrying"]

_ATTEMPTS = 4
# Deadlock, write conflict, "try again later", and schema changed: a retry may succeed.
_RETRYABLE = {1213, 9007, 8002, 8022, 8028}


def _retryable(exc: sa.exc.DBAPIError) -> bool:
    args = getattr(exc.orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    # 1105 is TiDB's catch-all code; this one means "too many lock conflicts, try again".
    return code in _RETRYABLE or (code == 1105 and "lock retry limit" in str(exc.orig))


def write_retrying(*steps: WriteStep) -> Op[int]:
    """One transaction, run again when TiDB reports a deadlock or a write conflict."""
    for attempt in range(_ATTEMPTS):
        try:
            return (yield from write(*steps))
        except sa.exc.DBAPIError as exc:
            if attempt == _ATTEMPTS - 1 or not _retryable(exc):
                raise
    raise AssertionError  # pragma: no cover - the loop returns or raises
