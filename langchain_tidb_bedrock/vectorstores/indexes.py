"""Vector index operations: TiFlash detection, HNSW index DDL, build status, EXPLAIN.

A TiDB vector index lives on TiFlash (the columnar replica). A server without a TiFlash store,
such as a standalone ``tidb-server``, serves exact kNN only; these helpers say so plainly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from langchain_tidb_bedrock.db.runner import Op, embed_query, read, write
from langchain_tidb_bedrock.errors import InvalidInputError, TiFlashUnavailableError
from langchain_tidb_bedrock.vectorstores.encoding import encode_query_vector
from langchain_tidb_bedrock.vectorstores.schema import (
    DistanceStrategy,
    index_name,
    quote_identifier,
)

if TYPE_CHECKING:
    from langchain_tidb_bedrock.vectorstores.table import TableState

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
        raise InvalidInputError(msg)
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


# ---------------------------------------------------------------------- operations


def op_require_tiflash(table: TableState, operation: str) -> Op[None]:
    """Raise :class:`TiFlashUnavailableError` unless the server has a TiFlash store."""
    if not (yield from table.op_has_tiflash()):
        raise TiFlashUnavailableError(operation)


def _op_existing(table: TableState) -> Op[None]:
    info = yield from table.op_info()
    if info is None:
        msg = f"table {table.name!r} does not exist yet: add documents first"
        raise InvalidInputError(msg)


def op_create_vector_index(table: TableState, host: str | None) -> Op[None]:
    """Add the HNSW index for the table's metric, with a TiFlash replica where needed."""
    yield from op_require_tiflash(table, "create_vector_index()")
    yield from _op_existing(table)
    name = index_name(table.name)
    existing = yield from read(VECTOR_INDEXES_SQL, {"table": table.name, "name": name})
    if existing:
        table.index_ready = True
        return
    cloud = is_tidb_cloud_host(host)
    if not cloud:
        replicas = yield from read(REPLICA_SQL, {"table": table.name})
        if not replicas or not replicas[0][0]:
            quoted = quote_identifier(table.name)
            yield from write(sa.text(f"ALTER TABLE {quoted} SET TIFLASH REPLICA 1"))
    yield from write(sa.text(add_index_sql(table.name, table.strategy, on_demand_replica=cloud)))
    table.index_ready = True


def op_index_status(table: TableState) -> Op[list[dict[str, Any]]]:
    """Build progress rows from ``INFORMATION_SCHEMA.TIFLASH_INDEXES`` for the table."""
    yield from op_require_tiflash(table, "vector_index_status()")
    rows = yield from read(INDEX_STATUS_SQL, {"table": table.name})
    return [dict(r._mapping) for r in rows]


def op_explain(
    table: TableState, query: str | Sequence[float], k: int, dialect: sa.Dialect
) -> Op[ExplainResult]:
    """``EXPLAIN`` the kNN statement for ``query``: does it use the vector index?"""
    yield from op_require_tiflash(table, "explain()")
    yield from _op_existing(table)
    vector = (yield from embed_query(query)) if isinstance(query, str) else query
    qv = encode_query_vector(vector, table.dimension, reject_zero=False)
    compiled = table.queries.knn(qv, k).compile(dialect=dialect)
    sql = "EXPLAIN " + compiled.string
    rows = yield from read(sql, dict(compiled.params))
    return explain_result(list(rows), sql)


def op_drop_table(table: TableState) -> Op[None]:
    """``DROP TABLE IF EXISTS`` (its keyword index first), then forget what was known of it."""
    from langchain_tidb_bedrock.vectorstores.hybrid import op_drop_keyword_tables  # cycle

    yield from op_drop_keyword_tables(table)
    yield from write(sa.text(f"DROP TABLE IF EXISTS {quote_identifier(table.name)}"))
    table.forget()
