"""The tables of ``TiDBStore``: items, and (with an index) one vector per embedded field.

- ``store``: one row per (namespace, key); the namespace is its labels joined by ``.`` (labels
  never contain one), the value is JSON. ``expires_at`` drives TiDB's table TTL, which deletes
  expired rows in the background; reads filter them too, since that job runs only now and then.
- ``store_vectors``: one ``VECTOR(dims)`` per embedded field of an item, with an HNSW index when
  the server has TiFlash. An item's vectors are replaced whenever the item is, and carry its
  ``expires_at`` so the TTL job drops them with it.

Times are ``TIMESTAMP`` (an instant, whatever the session time zone), set by the server's
clock so every process agrees on what has expired.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.db.identifiers import quote_identifier, validate_identifier
from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy

__all__ = ["FIELD_CHARS", "KEY_CHARS", "PREFIX_CHARS", "StoreTables"]

PREFIX_CHARS = 400  # the dotted namespace
KEY_CHARS = 255
FIELD_CHARS = 100  # the field path an embedding came from ("$", "text", "tags.0", ...)

_KEY = "CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin NOT NULL"
_OPTIONS = "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_bin"
_CLUSTERED = "/*T![clustered_index] CLUSTERED */"
_MAX_STATEMENTS = 256


class StoreTables:
    """Names, DDL and Core tables of one store (``<prefix>store``, ``<prefix>store_vectors``)."""

    def __init__(self, prefix: str = "langgraph_") -> None:
        self.store_name = validate_identifier(f"{prefix}store", "table_prefix")
        self.vectors_name = validate_identifier(f"{prefix}store_vectors", "table_prefix")
        md = sa.MetaData()
        self.store = sa.Table(
            self.store_name,
            md,
            sa.Column("prefix", sa.String(PREFIX_CHARS), primary_key=True),
            sa.Column("key", sa.String(KEY_CHARS), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),  # JSON, sent and read as text
            sa.Column("created_at", sa.DateTime),
            sa.Column("updated_at", sa.DateTime),
            sa.Column("expires_at", sa.DateTime),
            sa.Column("ttl_minutes", sa.Float),
        )
        self._statements: dict[Hashable, Any] = {}
        self.vectors = sa.Table(
            self.vectors_name,
            md,
            sa.Column("prefix", sa.String(PREFIX_CHARS), primary_key=True),
            sa.Column("key", sa.String(KEY_CHARS), primary_key=True),
            sa.Column("field_name", sa.String(FIELD_CHARS), primary_key=True),
            sa.Column("embedding", sa.Text),  # VECTOR, sent as its text form
            sa.Column("expires_at", sa.DateTime),  # the item's, so TiDB's TTL drops both
        )

    def cached(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """A statement built once (Core construction costs about as much as a small read)."""
        stmt = self._statements.get(key)
        if stmt is None:
            if len(self._statements) >= _MAX_STATEMENTS:  # keys carry page sizes: stay bounded
                self._statements.clear()
            stmt = self._statements[key] = build()
        return stmt

    def store_ddl(self, ttl_job_interval_minutes: int) -> str:
        """The items table; TiDB's TTL job deletes a row once ``expires_at`` has passed."""
        return (
            f"CREATE TABLE IF NOT EXISTS {quote_identifier(self.store_name)} (\n"
            f"  `prefix` VARCHAR({PREFIX_CHARS}) {_KEY},\n"
            f"  `key` VARCHAR({KEY_CHARS}) {_KEY},\n"
            "  `value` JSON NOT NULL,\n"
            "  `created_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n"
            "  `updated_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n"
            "  `expires_at` TIMESTAMP(6) NULL,\n"
            "  `ttl_minutes` DOUBLE NULL,\n"
            f"  PRIMARY KEY (`prefix`, `key`) {_CLUSTERED},\n"
            "  KEY `expires_at` (`expires_at`)\n"
            f") {_OPTIONS} /*T![ttl] TTL = `expires_at` + INTERVAL 0 MINUTE */ "
            f"/*T![ttl] TTL_JOB_INTERVAL = '{int(ttl_job_interval_minutes)}m' */"
        )

    def vectors_ddl(
        self, dims: int, strategy: DistanceStrategy, *, hnsw: bool, ttl_job_interval_minutes: int
    ) -> str:
        """The vectors table, with an HNSW index on the store's distance when ``hnsw``."""
        index = ""
        if hnsw:
            index = (
                f",\n  VECTOR INDEX `vec_{strategy.value}` "
                f"(({strategy.sql_function}(`embedding`))) USING HNSW"
            )
        return (
            f"CREATE TABLE IF NOT EXISTS {quote_identifier(self.vectors_name)} (\n"
            f"  `prefix` VARCHAR({PREFIX_CHARS}) {_KEY},\n"
            f"  `key` VARCHAR({KEY_CHARS}) {_KEY},\n"
            f"  `field_name` VARCHAR({FIELD_CHARS}) {_KEY},\n"
            f"  `embedding` VECTOR({int(dims)}) NOT NULL,\n"
            "  `expires_at` TIMESTAMP(6) NULL,\n"
            f"  PRIMARY KEY (`prefix`, `key`, `field_name`) {_CLUSTERED}{index}\n"
            f") {_OPTIONS} /*T![ttl] TTL = `expires_at` + INTERVAL 0 MINUTE */ "
            f"/*T![ttl] TTL_JOB_INTERVAL = '{int(ttl_job_interval_minutes)}m' */"
        )
