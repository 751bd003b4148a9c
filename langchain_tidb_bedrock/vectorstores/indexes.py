"""Vector index operations: TiFlash detection, HNSW index DDL, build status, EXPLAIN.

A TiDB vector index lives on TiFlash (the columnar replica). A server without a TiFlash store,
such as a standalone ``tidb-server``, serves exact kNN only; these helpers say so plainly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.errors import TiFlashUnavailableError
from langchain_tidb_bedrock.vectorstores.schema import (
    DistanceStrategy,
    index_name,
    quote_identifier,
)

__all__ = [
    "ExplainResult",
    "TiFlashUnavailableError",
    "add_index_sql",
    "has_vector_index",
    "index_name",
    "is_missing_tiflash_error",
    "is_tidb_cloud_host",
]

TIFLASH_COUNT_SQL = sa.text(
    "SELECT COUNT(*) FROM INFORMATION_SCHEMA.CLUSTER_INFO WHERE TYPE = 'tiflash'"
)
INDEX_STATUS_SQL = sa.text(
    "SELECT * FROM INFORMATION_SCHEMA.TIFLASH_INDEXES "
    "WHERE TIDB_DATABASE = DATABASE() AND TIDB_TABLE = :table"
)
REPLICA_SQL = sa.text(
    "SELECT REPLICA_COUNT FROM INFORMATION_SCHEMA.TIFLASH_REPLICA "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table"
)
VECTOR_INDEXES_SQL = sa.text(
    "SELECT KEY_NAME FROM INFORMATION_SCHEMA.TIDB_INDEXES "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table AND KEY_NAME = :name"
)
_CLOUD_HOST = re.compile(r"\.tidbcloud\.com$", re.IGNORECASE)
_NO_TIFLASH = re.compile(
    r"tiflash store count is 0|replica is nil|columnar replica must exist", re.I
)


def has_vector_index(create_table: str, strategy: DistanceStrategy) -> bool:
    """Whether ``SHOW CREATE TABLE`` text has a vector index on ``embedding`` for ``strategy``."""
    pattern = rf"VECTOR\s+INDEX[^\n]*{strategy.sql_function}\s*\(\s*`?embedding`?\s*\)"
    return strategy.indexable and re.search(pattern, create_table, re.IGNORECASE) is not None


def is_tidb_cloud_host(host: str | None) -> bool:
    """TiDB Cloud endpoints (``*.tidbcloud.com``) always have a columnar store."""
    return bool(host and _CLOUD_HOST.search(host))


def is_missing_tiflash_error(exc: BaseException) -> bool:
    """Whether a DB error is TiDB refusing an index for lack of TiFlash (codes 8200/1105)."""
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    code = args[0] if args else None
    text = " ".join(str(a) for a in args)
    return code in (8200, 1105) and bool(_NO_TIFLASH.search(text))


def add_index_sql(table: str, strategy: DistanceStrategy, *, on_demand_replica: bool) -> str:
    """``ALTER TABLE ... ADD VECTOR INDEX`` for the store's metric."""
    if not strategy.indexable:
        msg = (
            f"TiDB has no vector index for {strategy.value!r} distance "
            "(only cosine and l2 are indexable)"
        )
        raise ValueError(msg)
    suffix = " ADD_COLUMNAR_REPLICA_ON_DEMAND" if on_demand_replica else ""
    return (
        f"ALTER TABLE {quote_identifier(table)} ADD VECTOR INDEX `{index_name(table)}` "
        f"(({strategy.sql_function}(`embedding`))) USING HNSW{suffix}"
    )


@dataclass(frozen=True)
class ExplainResult:
    """What TiDB's optimiser plans for a kNN query."""

    uses_vector_index: bool
    plan: list[dict[str, Any]] = field(default_factory=list)
    sql: str = ""

    def __str__(self) -> str:
        lines = [f"{r.get('id', '')}  {r.get('operator info', '')}" for r in self.plan]
        verdict = "uses the vector index" if self.uses_vector_index else "exact scan (no index)"
        return f"{verdict}\n" + "\n".join(lines)


def explain_result(rows: list[Any], sql: str) -> ExplainResult:
    """Interpret EXPLAIN rows: the index shows as ``annIndex:`` in an operator's info."""
    plan = [dict(r._mapping) for r in rows]
    uses = any("annIndex:" in str(v) for r in plan for v in r.values())
    return ExplainResult(uses_vector_index=uses, plan=plan, sql=sql)
