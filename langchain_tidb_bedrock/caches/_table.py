"""What both cache tables share: the DDL frame with TTL, expiry, upsert-or-create, clearing."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_tidb_bedrock.db.identifiers import quote_identifier
from langchain_tidb_bedrock.db.runner import Op, WriteStep
from langchain_tidb_bedrock.db.tables import TTL_CLAUSE, write_creating, write_or_nothing
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = ["MAX_VALUE_BYTES", "CacheTable", "check_size"]

# One row holds the generations: TiDB's txn-entry-size-limit is 6 MiB by default.
MAX_VALUE_BYTES = 6 * 1024 * 1024 - 4096
_CLEAR_BATCH = 10_000  # rows per DELETE: a large cache never makes one huge transaction


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
            f"PRIMARY KEY (llm_hash, prompt_hash)) {TTL_CLAUSE}"
        )
        self._columns = [c.split()[0] for c in columns]  # the names of the given columns

    @staticmethod
    def expiry(ttl_us: int | None) -> str:
        """SQL for a row's ``expires_at``, on the server's clock."""
        return "NULL" if ttl_us is None else f"DATE_ADD(NOW(6), INTERVAL {int(ttl_us)} MICROSECOND)"

    def upsert_sql(self, ttl_us: int | None) -> str:
        """The INSERT of one row (hashes, the given columns, generations) replacing any old one."""
        names = ["llm_hash", "prompt_hash", *self._columns, "generations"]
        updated = [*self._columns, "generations", "updated_at", "expires_at"]
        return (
            f"INSERT INTO {self.t} ({', '.join(names)}, updated_at, expires_at) "
            f"VALUES ({', '.join(['%s'] * len(names))}, NOW(6), {self.expiry(ttl_us)}) "
            f"ON DUPLICATE KEY UPDATE {', '.join(f'{c} = VALUES({c})' for c in updated)}"
        )

    def op_write(self, *steps: WriteStep) -> Op[int]:
        """Run ``steps`` in one transaction, creating the table first when it is missing."""
        return write_creating(self.ddl, *steps)

    def op_clear(self, llm_hash: bytes | None) -> Op[None]:
        """Delete every row, or those of one llm_string, in batches."""
        where = "" if llm_hash is None else " WHERE llm_hash = %s"
        sql = f"DELETE FROM {self.t}{where} LIMIT {_CLEAR_BATCH}"
        params = [() if llm_hash is None else (llm_hash,)]
        while True:
            deleted = yield from write_or_nothing((sql, params))  # 0: no table yet
            if deleted < _CLEAR_BATCH:
                return None
