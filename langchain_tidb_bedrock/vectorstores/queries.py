"""SQL statements of the store, built once and run by either the sync or the async engine.

Every statement is a SQLAlchemy Core construct or driver SQL with ``%s`` placeholders; values are
always bound and table names are validated identifiers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.vectorstores.filters import compile_filter
from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy, quote_identifier

__all__ = ["Queries", "filter_key"]

_TEMPLATE_CACHE = 256


def filter_key(filter: Mapping[str, Any]) -> str:
    """A cache key for a (validated) filter: JSON keeps 1, 1.0, "1" and true apart."""
    return json.dumps(filter, sort_keys=True, separators=(",", ":"))


class Queries:
    """Statement builders for one table and one distance strategy."""

    def __init__(self, table: sa.Table, strategy: DistanceStrategy) -> None:
        self.table = table
        self.strategy = strategy
        self._templates: dict[tuple[Any, ...], Any] = {}
        q = quote_identifier(table.name)
        # Driver-level SQL for bulk writes: PyMySQL/aiomysql executemany rewrites this into
        # multi-row INSERTs (~1 MB each), the fastest path the drivers offer.
        self.upsert_sql = (
            f"INSERT INTO {q} (`id`, `embedding`, `document`, `meta`) VALUES (%s, %s, %s, %s) "
            "ON DUPLICATE KEY UPDATE `embedding` = VALUES(`embedding`), "
            "`document` = VALUES(`document`), `meta` = VALUES(`meta`)"
        )

    def distance(self, query_vector: str | None = None) -> sa.ColumnElement[float]:
        """``VEC_*_DISTANCE(embedding, <constant>)``: the form a vector index recognises.

        The query vector is the bind parameter ``qv``; PyMySQL inlines it as a literal, so the
        server sees a constant.
        """
        fn = getattr(sa.func, self.strategy.sql_function)
        qv = sa.bindparam("qv", query_vector, type_=sa.String)
        expr: sa.ColumnElement[float] = fn(self.table.c.embedding, qv)
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

    # Templates: built once per shape and reused (statement construction costs about as much
    # as a small query's round trip). Parameters: ``qv`` the query vector, ``ids`` an id list.

    def _cached(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        stmt = self._templates.get(key)
        if stmt is None:
            if len(self._templates) >= _TEMPLATE_CACHE:
                self._templates.clear()
            stmt = self._templates[key] = build()
        return stmt

    def _condition(self, filter: Mapping[str, Any], meta: Any) -> sa.ColumnElement[bool]:
        condition = compile_filter(filter, meta)
        return condition if condition is not None else sa.true()

    def knn_template(self, k: int, *, with_vector: bool = False) -> sa.Select[Any]:
        """Unfiltered kNN in the index-compatible shape: ``ORDER BY distance ASC LIMIT k``."""

        def build() -> sa.Select[Any]:
            distance = self.distance().label("distance")
            return (
                sa.select(*self._columns(with_vector), distance)
                .order_by(sa.literal_column("distance").asc())
                .limit(k)
            )

        return self._cached(("knn", k, with_vector), build)

    def prefilter_template(
        self, k: int, filter: Mapping[str, Any], *, with_vector: bool = False
    ) -> sa.Select[Any]:
        """Exact filtered kNN: filter first, then order by distance (no index)."""
        return self._cached(
            ("pre", k, with_vector, filter_key(filter)),
            lambda: self.knn_template(k, with_vector=with_vector).where(
                self._condition(filter, self.table.c.meta)
            ),
        )

    def matching_ids_template(self, filter: Mapping[str, Any], limit: int) -> sa.Select[Any]:
        """Ids of rows matching ``filter`` (reads ``id`` and ``meta`` only, never the vectors)."""
        return self._cached(
            ("ids", limit, filter_key(filter)),
            lambda: (
                sa.select(self.table.c.id)
                .where(self._condition(filter, self.table.c.meta))
                .limit(limit)
            ),
        )

    def among_ids_template(
        self, k: int, filter: Mapping[str, Any], *, with_vector: bool = False
    ) -> sa.Select[Any]:
        """KNN over the ids in ``ids`` only (point reads), with the filter applied again.

        Re-checking the filter means a row changed since its id was read never slips through.
        """
        return self._cached(
            ("among", k, with_vector, filter_key(filter)),
            lambda: (
                self.knn_template(k, with_vector=with_vector)
                .where(self.table.c.id.in_(sa.bindparam("ids", expanding=True)))
                .where(self._condition(filter, self.table.c.meta))
            ),
        )

    def postfilter_template(
        self, k: int, candidates: int, filter: Mapping[str, Any], *, with_vector: bool = False
    ) -> sa.Select[Any]:
        """Index kNN of ``candidates`` rows in a subquery, then the filter, then the top k."""

        def build() -> sa.Select[Any]:
            inner = self.knn_template(candidates, with_vector=with_vector).subquery("candidates")
            outer = sa.select(inner).order_by(inner.c.distance.asc()).limit(k)
            return outer.where(self._condition(filter, inner.c.meta))

        return self._cached(("post", k, candidates, with_vector, filter_key(filter)), build)

    # Value-carrying forms, for inspection and tests.

    def knn(self, query_vector: str, k: int, *, with_vector: bool = False) -> sa.Select[Any]:
        """:meth:`knn_template` with the query vector bound."""
        return self.knn_template(k, with_vector=with_vector).params(qv=query_vector)

    def knn_prefilter(
        self,
        query_vector: str,
        k: int,
        filter: Mapping[str, Any],
        *,
        with_vector: bool = False,
    ) -> sa.Select[Any]:
        """:meth:`prefilter_template` with the query vector bound."""
        stmt = self.prefilter_template(k, filter, with_vector=with_vector)
        return stmt.params(qv=query_vector)

    def knn_among_ids(
        self,
        query_vector: str,
        k: int,
        ids: Sequence[str],
        filter: Mapping[str, Any],
        *,
        with_vector: bool = False,
    ) -> sa.Select[Any]:
        """:meth:`among_ids_template` with the query vector and ids bound."""
        stmt = self.among_ids_template(k, filter, with_vector=with_vector)
        return stmt.params(qv=query_vector, ids=list(ids))

    def knn_postfilter(
        self,
        query_vector: str,
        k: int,
        candidates: int,
        filter: Mapping[str, Any],
        *,
        with_vector: bool = False,
    ) -> sa.Select[Any]:
        """:meth:`postfilter_template` with the query vector bound."""
        stmt = self.postfilter_template(k, candidates, filter, with_vector=with_vector)
        return stmt.params(qv=query_vector)

    def get_by_ids(self, ids: Sequence[str]) -> sa.Select[Any]:
        """Rows for the given ids."""
        return sa.select(*self._columns(False)).where(self.table.c.id.in_(list(ids)))

    def get_where(self, filter: Mapping[str, Any] | None, limit: int | None) -> sa.Select[Any]:
        """Rows matching a metadata filter (all rows when None), in id order."""
        stmt = sa.select(*self._columns(False)).order_by(self.table.c.id)
        if filter:
            stmt = stmt.where(self._condition(filter, self.table.c.meta))
        return stmt.limit(limit) if limit is not None else stmt

    def update_meta_sql(self) -> str:
        """Driver SQL to replace one row's metadata: parameters (meta JSON, id)."""
        return f"UPDATE {quote_identifier(self.table.name)} SET `meta` = %s WHERE `id` = %s"

    def delete_ids(self, ids: Sequence[str], filter: Mapping[str, Any] | None = None) -> sa.Delete:
        """Delete the given ids; with a filter, only those of them that also match it."""
        stmt = sa.delete(self.table).where(self.table.c.id.in_(list(ids)))
        if filter:
            stmt = stmt.where(self._condition(filter, self.table.c.meta))
        return stmt

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
