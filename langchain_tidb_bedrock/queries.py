"""SQL statements of the store, built once and run by either the sync or the async engine.

Every statement is a SQLAlchemy Core construct or driver SQL with ``%s`` placeholders; values are
always bound and table names are validated identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.filters import compile_filter
from langchain_tidb_bedrock.schema import DistanceStrategy, quote_identifier

__all__ = ["Queries"]


class Queries:
    """Statement builders for one table and one distance strategy."""

    def __init__(self, table: sa.Table, strategy: DistanceStrategy) -> None:
        self.table = table
        self.strategy = strategy
        q = quote_identifier(table.name)
        # Driver-level SQL for bulk writes: PyMySQL/aiomysql executemany rewrites this into
        # multi-row INSERTs (~1 MB each), the fastest path the drivers offer.
        self.upsert_sql = (
            f"INSERT INTO {q} (`id`, `embedding`, `document`, `meta`) VALUES (%s, %s, %s, %s) "
            "ON DUPLICATE KEY UPDATE `embedding` = VALUES(`embedding`), "
            "`document` = VALUES(`document`), `meta` = VALUES(`meta`)"
        )

    def distance(self, query_vector: str) -> sa.ColumnElement[float]:
        """``VEC_*_DISTANCE(embedding, <constant>)``: the form a vector index recognises."""
        fn = getattr(sa.func, self.strategy.sql_function)
        expr: sa.ColumnElement[float] = fn(self.table.c.embedding, sa.literal(query_vector))
        return expr

    def _columns(self, with_vector: bool) -> list[sa.ColumnElement[Any]]:
        cols: list[sa.ColumnElement[Any]] = [
            self.table.c.id,
            self.table.c.document,
            self.table.c.meta,
        ]
        if with_vector:
            cols.append(self.table.c.embedding)
        return cols

    def knn(self, query_vector: str, k: int, *, with_vector: bool = False) -> sa.Select[Any]:
        """Unfiltered kNN in the index-compatible shape: ``ORDER BY distance ASC LIMIT k``."""
        distance = self.distance(query_vector).label("distance")
        return (
            sa.select(*self._columns(with_vector), distance)
            .order_by(sa.literal_column("distance").asc())
            .limit(k)
        )

    def knn_prefilter(
        self,
        query_vector: str,
        k: int,
        filter: Mapping[str, Any],
        *,
        with_vector: bool = False,
    ) -> sa.Select[Any]:
        """Exact filtered kNN: filter first, then order by distance (no index)."""
        condition = compile_filter(filter, self.table.c.meta)
        stmt = self.knn(query_vector, k, with_vector=with_vector)
        return stmt.where(condition) if condition is not None else stmt

    def matching_ids(self, filter: Mapping[str, Any], limit: int) -> sa.Select[Any]:
        """Ids of rows matching ``filter`` (reads ``id`` and ``meta`` only, never the vectors)."""
        condition = compile_filter(filter, self.table.c.meta)
        stmt = sa.select(self.table.c.id).limit(limit)
        return stmt.where(condition) if condition is not None else stmt

    def knn_among_ids(
        self,
        query_vector: str,
        k: int,
        ids: Sequence[str],
        filter: Mapping[str, Any],
        *,
        with_vector: bool = False,
    ) -> sa.Select[Any]:
        """KNN over the given ids only (point reads), with the filter applied again.

        Re-checking the filter means a row changed since its id was read never slips through.
        """
        condition = compile_filter(filter, self.table.c.meta)
        stmt = self.knn(query_vector, k, with_vector=with_vector).where(
            self.table.c.id.in_(list(ids))
        )
        return stmt.where(condition) if condition is not None else stmt

    def knn_postfilter(
        self,
        query_vector: str,
        k: int,
        candidates: int,
        filter: Mapping[str, Any],
        *,
        with_vector: bool = False,
    ) -> sa.Select[Any]:
        """Index kNN of ``candidates`` rows in a subquery, then the filter, then the top k."""
        inner = self.knn(query_vector, candidates, with_vector=with_vector).subquery("candidates")
        condition = compile_filter(filter, inner.c.meta)
        outer = sa.select(inner).order_by(inner.c.distance.asc()).limit(k)
        return outer.where(condition) if condition is not None else outer

    def get_by_ids(self, ids: Sequence[str]) -> sa.Select[Any]:
        """Rows for the given ids."""
        return sa.select(*self._columns(False)).where(self.table.c.id.in_(list(ids)))

    def delete_ids(self, ids: Sequence[str]) -> sa.Delete:
        """Delete the given ids."""
        return sa.delete(self.table).where(self.table.c.id.in_(list(ids)))

    def delete_filter(self, filter: Mapping[str, Any]) -> sa.Delete:
        """Delete the rows matching a metadata filter (validated; never unfiltered)."""
        condition = compile_filter(filter, self.table.c.meta)
        if condition is None:
            msg = "delete(filter=...) needs a non-empty filter; use clear() to delete every row"
            raise ValueError(msg)
        return sa.delete(self.table).where(condition)

    def count(self) -> sa.Select[Any]:
        """Number of rows."""
        return sa.select(sa.func.count()).select_from(self.table)
