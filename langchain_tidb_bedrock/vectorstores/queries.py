"""SQL statements of the store, built once and run by either the sync or the async engine.

Every statement is a SQLAlchemy Core construct or driver SQL with ``%s`` placeholders; values are
always bound and table names are validated identifiers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.vectorstores import metadata_index
from langchain_tidb_bedrock.vectorstores.filters import CheckedFilter, compile_filter
from langchain_tidb_bedrock.vectorstores.metadata_index import MetadataIndex
from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy, quote_identifier

__all__ = ["BRANCHES", "PrefilterPlan", "Queries", "filter_key"]

_TEMPLATE_CACHE = 256
BRANCHES = ("selective", "broad")  # the exact filtered search's two plans


@dataclass(frozen=True)
class PrefilterPlan:
    """Where the exact filtered search switches from its selective plan to one filtered scan.

    Measured on 50k rows x 512 d (medians of 7, plain scan = 1): the matches joined back by
    primary key cost 0.54x at 1%, 1.0x at 10%, 1.1x at 30% and 1.7x at 60%; hence up to 5%
    of a sample.
    """

    # 100 rows tell 1% (1 expected; more than 5 in 0.06% of samples) from 10% (10; 5 or fewer
    # in 6%, where both plans cost the same). The guard is evaluated once per branch while
    # planning, about 1.5 ms each, so the sample is kept small.
    sample_rows: int = 100  # rows (the first the scan meets) the JSON filter is tried on
    join_max: int = 5  # matches in that sample up to which ids are joined back
    index_cap: int = 5000  # index entries up to which the index is read instead of a scan


def filter_key(filter: Mapping[str, Any]) -> str:
    """A cache key for a (validated) filter: JSON keeps 1, 1.0, "1" and true apart."""
    if isinstance(filter, CheckedFilter):
        return filter.key  # serialised once, when it was checked
    return json.dumps(filter, sort_keys=True, separators=(",", ":"))


class Queries:
    """Statement builders for one table and one distance strategy."""

    def __init__(
        self,
        table: sa.Table,
        strategy: DistanceStrategy,
        metadata_indexes: Mapping[tuple[str, ...], MetadataIndex] | None = None,
    ) -> None:
        self.table = table
        self.strategy = strategy
        self.metadata_indexes = dict(metadata_indexes or {})
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
        # Only ever a WHERE condition here: the cheaper form (see compile_filter).
        condition = compile_filter(filter, meta, null_safe=False)
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
        self,
        k: int,
        filter: Mapping[str, Any],
        *,
        with_vector: bool = False,
        plan: PrefilterPlan | None = None,
        branch: str | None = None,
    ) -> sa.Select[Any]:
        """Exact filtered kNN in ONE statement whose plan TiDB picks as it runs it.

        Two branches, each guarded by an uncorrelated scalar subquery that TiDB evaluates while
        planning (so the losing branch becomes an empty ``TableDual`` and costs nothing):

        - *selective*: with an indexed key in the filter, the filter with its index condition
          (an index range read, then only the matching rows); otherwise the ids matching the
          filter, read from ``id``/``meta`` only, joined back to the table, so only the
          matches' vectors are decoded and ranked.
        - *broad*: one filtered scan, as a plain ``WHERE filter ORDER BY distance LIMIT k``.

        The guard counts matches in a bounded read: up to ``index_cap + 1`` entries of the
        index, or the filter over the first ``sample_rows`` rows the scan meets for a JSON-only
        filter. Both branches return exactly the filter's k nearest; the guard only chooses
        which is faster. Each row names its branch in a ``plan`` column (``BRANCHES``).

        ``branch`` (one of ``BRANCHES``) asks for that branch alone, without the guard: for a
        filter whose branch is already known (TiDB evaluates the guard once per branch while
        planning, a few ms a search).
        """
        plan = plan or PrefilterPlan()
        if branch is not None and branch not in BRANCHES:
            msg = f"branch must be one of {BRANCHES}, got {branch!r}"
            raise InvalidInputError(msg)
        key = ("pre", k, with_vector, plan, branch, filter_key(filter))

        def build() -> sa.Select[Any]:
            t = self.table
            cond = self._condition(filter, t.c.meta)
            narrow = self.narrowing(filter, t.c.meta)
            distance = self.distance().label("distance")
            cols = self._columns(with_vector)
            selective_tag, broad_tag = (sa.literal(b).label("plan") for b in BRANCHES)
            broad = sa.select(*cols, distance, broad_tag).where(cond)
            if narrow:
                capped = (
                    sa.select(sa.literal(1))
                    .select_from(t)
                    .where(*narrow)
                    .limit(plan.index_cap + 1)
                    .subquery("capped")
                )
                count = sa.select(sa.func.count()).select_from(capped).scalar_subquery()
                selective = sa.select(*cols, distance, selective_tag).where(*narrow, cond)
                limit = plan.index_cap
            else:
                sample = sa.select(t.c.meta).limit(plan.sample_rows).subquery("sample")
                count = (
                    sa.select(sa.func.count())
                    .select_from(sample)
                    .where(self._condition(filter, sample.c.meta))
                    .scalar_subquery()
                )
                ids = sa.select(t.c.id.label("id")).where(cond).subquery("matching")
                # Point reads of the matches by primary key. Unhinted, TiDB may pick a merge
                # join, which reads the whole table (vectors included) a second time: measured
                # 243 ms against 78 ms hinted on 50k rows, where the plain scan took 173 ms.
                selective = (
                    sa.select(*cols, distance, selective_tag)
                    .select_from(ids.join(t, ids.c.id == t.c.id))
                    .prefix_with(f"/*+ INL_JOIN({quote_identifier(t.name)}) */")
                )
                limit = plan.join_max
            order: sa.ColumnElement[Any] = sa.literal_column("distance").asc()
            if branch is not None:
                alone = selective if branch == BRANCHES[0] else broad
                return alone.order_by(order).limit(k)
            selective = selective.where(count <= limit).order_by(order).limit(k)
            broad = broad.where(count > limit).order_by(order).limit(k)
            both = sa.union_all(selective, broad).subquery("plans")
            return sa.select(both).order_by(both.c.distance.asc()).limit(k)

        return self._cached(key, build)

    def narrowing(
        self, filter: Mapping[str, Any] | None, meta: sa.ColumnElement[Any]
    ) -> list[sa.ColumnElement[bool]]:
        """Conditions on indexed metadata keys implied by ``filter`` (supersets of it)."""
        table = quote_identifier(self.table.name)
        return metadata_index.narrowing(
            filter,
            self.metadata_indexes,
            meta,
            lambda name: sa.literal_column(f"{table}.{quote_identifier(name)}"),
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
            meta = self.table.c.meta
            stmt = stmt.where(*self.narrowing(filter, meta), self._condition(filter, meta))
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
            raise InvalidInputError(msg)
        return sa.delete(self.table).where(*self.narrowing(filter, self.table.c.meta), condition)

    def count(self) -> sa.Select[Any]:
        """Number of rows."""
        return sa.select(sa.func.count()).select_from(self.table)
