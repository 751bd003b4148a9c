"""What both cache tables share: the DDL frame with TTL, expiry, upsert-or-create, clearing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa

from langchain_tidb_bedrock.db.component import is_missing_table
from langchain_tidb_bedrock.db.identifiers import quote_identifier
from langchain_tidb_bedrock.db.runner import Op, WriteStep, write
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = ["MAX_VALUE_BYTES", "NOT_EXPIRED", "CacheTable", "ttl_microseconds"]

# One row holds the generations: TiDB's txn-entry-size-limit is 6 MiB by default.
MAX_VALUE_BYTES = 6 * 1024 * 1024 - 4096
NOT_EXPIRED = "(expires_at IS NULL OR expires_at > NOW(6))"
_CLEAR_BATCH = 10_000  # rows per DELETE: a large cache never makes one huge transaction


def ttl_microseconds(ttl: object) -> int | None:
    """``ttl`` (seconds or a timedelta) in microseconds; None for no expiry."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        seconds = float(ttl)
    else:
        msg = f"ttl must be seconds (a number) or a timedelta, got {ttl!r}"
        raise InvalidInputError(msg)
    if not seconds > 0:
        msg = f"ttl must be positive, got {ttl!r}"
        raise InvalidInputError(msg)
    return max(1, round(seconds * 1_000_000))


def check_size(raw: bytes) -> bytes:
    """Refuse generations too large for one row (nothing is written)."""
    if len(raw) > MAX_VALUE_BYTES:
        msg = (
            f"the generations are {len(raw):,} bytes as JSON; at most {MAX_VALUE_BYTES:,} fit "
            "in one row (TiDB's txn-entry-size-limit); nothing was cached"
        )
        raise InvalidInputError(msg)
    return raw


class CacheTable:
    """A cache table: ``(llm_hash, prompt_hash)`` primary key plus the given columns.

    Rows carry ``expires_at``: reads skip expired rows, and TiDB's TTL job deletes them later
    (rows without an expiry are kept).
    """

    def __init__(self, table_name: str, columns: Sequence[str]) -> None:
        self.name = table_name
        self.t = quote_identifier(table_name)
        self.ddl = (
            f"CREATE TABLE IF NOT EXISTS {self.t} ("
            "llm_hash BINARY(32) NOT NULL, prompt_hash BINARY(32) NOT NULL, "
            + "".join(f"{c}, " for c in columns)
            + "generations LONGBLOB NOT NULL, "
            "updated_at DATETIME(6) NOT NULL, expires_at DATETIME(6) NULL, "
            "PRIMARY KEY (llm_hash, prompt_hash)) "
            "TTL = expires_at + INTERVAL 0 SECOND TTL_ENABLE = 'ON' TTL_JOB_INTERVAL = '1h'"
        )

    @staticmethod
    def expiry(ttl_us: int | None) -> str:
        """SQL for a row's ``expires_at``, on the server's clock."""
        return "NULL" if ttl_us is None else f"DATE_ADD(NOW(6), INTERVAL {int(ttl_us)} MICROSECOND)"

    def op_create(self) -> Op[None]:
        """Create the table if it does not exist."""
        yield from write(sa.text(self.ddl))
        return None

    def op_write(self, *steps: WriteStep) -> Op[int]:
        """Run ``steps`` in one transaction, creating the table first when it is missing."""
        try:
            return (yield from write(*steps))
        except Exception as exc:
            if not is_missing_table(exc):
                raise
        yield from self.op_create()
        return (yield from write(*steps))

    def op_clear(self, llm_hash: bytes | None) -> Op[None]:
        """Delete every row, or those of one llm_string, in batches."""
        where = "" if llm_hash is None else " WHERE llm_hash = %s"
        sql = f"DELETE FROM {self.t}{where} LIMIT {_CLEAR_BATCH}"
        params = [() if llm_hash is None else (llm_hash,)]
        while True:
            try:
                deleted = yield from write((sql, params))
            except Exception as exc:
                if is_missing_table(exc):
                    return None
                raise
            if deleted < _CLEAR_BATCH:
                return None
