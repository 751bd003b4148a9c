"""The store's SQL as operations: one definition runs on the sync and the async engine.

Reads skip expired rows (``expires_at`` passed; TiDB's TTL job deletes them later). A read that
refreshes TTLs writes the new expiry in its own short transaction. Search ranks by vector
distance in SQL: exactly (without a value filter, the nearest vectors first and then their items;
with one, every vector of the matching items) or, with an HNSW index, over the index's nearest
candidates, widened until the page is full.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert

from langchain_tidb_bedrock.db.identifiers import quote_identifier
from langchain_tidb_bedrock.db.runner import Op, Rows, WriteStep, embed_documents, read
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.langgraph._retry import write_retrying
from langchain_tidb_bedrock.langgraph.store_schema import StoreTables
from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy

__all__ = [
    "ItemKey",
    "Upsert",
    "VectorQuery",
    "op_get",
    "op_list_namespaces",
    "op_put",
    "op_search",
]

ItemKey = tuple[str, str]  # (dotted namespace, key)
Upsert = tuple[str, str, str, float | None]  # (namespace, key, value JSON, ttl minutes)
_NOW: Any = sa.literal_column("NOW(6)")
_ANN_ROUNDS = 4


def _alive(store: Any) -> sa.ColumnElement[bool]:
    return sa.or_(store.c.expires_at.is_(None), store.c.expires_at > _NOW)


def _expiry(ttl_minutes: Any) -> Any:
    micros = sa.cast(ttl_minutes * 60_000_000, sa.BigInteger)
    return sa.func.TIMESTAMPADD(sa.literal_column("MICROSECOND"), micros, _NOW)


def _keys_in(table: Any, keys: Sequence[ItemKey]) -> sa.ColumnElement[bool]:
    return sa.tuple_(table.c.prefix, table.c.key).in_(list(keys))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def namespace_under(column: Any, labels: Sequence[str]) -> sa.ColumnElement[bool]:
    """The namespace ``labels`` or one below it (``a`` matches ``a`` and ``a.b``, not ``ab``)."""
    if not labels:
        return sa.true()
    text = ".".join(labels)
    return sa.or_(column == text, column.like(_escape_like(text) + ".%", escape="\\"))


def _refresh(t: StoreTables, keys: Sequence[ItemKey], *, indexed: bool) -> list[WriteStep]:
    s = t.store
    if not keys:
        return []
    steps: list[WriteStep] = [
        sa.update(s)
        .where(_keys_in(s, keys), s.c.ttl_minutes.is_not(None), _alive(s))
        .values(expires_at=_expiry(s.c.ttl_minutes))
    ]
    if indexed:
        steps.append(_copy_expiry(t, keys))
    return steps


def _copy_expiry(t: StoreTables, keys: Sequence[ItemKey]) -> WriteStep:
    """Give the items' vectors their items' expiry (one multi-table UPDATE)."""
    s, v = t.store, t.vectors
    return (
        sa.update(v)
        .where(v.c.prefix == s.c.prefix, v.c.key == s.c.key, _keys_in(s, keys))
        .values(expires_at=s.c.expires_at)
    )


def _item_columns(s: Any) -> list[Any]:
    return [
        s.c.prefix,
        s.c.key,
        s.c.value,
        sa.func.UNIX_TIMESTAMP(s.c.created_at).label("created"),
        sa.func.UNIX_TIMESTAMP(s.c.updated_at).label("updated"),
        s.c.ttl_minutes,
    ]


# ---------------------------------------------------------------------------------- get / put


def op_get(
    t: StoreTables,
    keys: Sequence[ItemKey],
    refresh: Sequence[ItemKey],
    *,
    omit_expired: bool,
    indexed: bool,
) -> Op[Rows]:
    """Live items for these keys; the TTL of those in ``refresh`` restarts first."""
    if refresh:
        yield from write_retrying(*_refresh(t, sorted(set(refresh)), indexed=indexed))
    s = t.store
    where = [_keys_in(s, sorted(set(keys)))]
    if omit_expired:
        where.append(_alive(s))
    return (yield from read(sa.select(*_item_columns(s)).where(*where)))


def op_put(
    t: StoreTables,
    deletes: Sequence[ItemKey],
    upserts: Sequence[Upsert],
    to_embed: Sequence[tuple[str, str, str, str]],
    *,
    indexed: bool,
    dims: int | None,
) -> Op[None]:
    """Delete, then upsert items and replace their vectors, in one transaction.

    ``to_embed`` holds (namespace, key, field, text); the texts are embedded first, in one
    call, so a failed embedding writes nothing.
    """
    vectors: list[tuple[str, str, str, str]] = []
    if to_embed:
        embedded = yield from embed_documents([text for *_, text in to_embed])
        for (ns, key, field, _), vector in zip(to_embed, embedded, strict=True):
            if dims is not None and len(vector) != dims:
                msg = (
                    f"the embedding model returned {len(vector)} dimensions for field "
                    f"{field!r} of {key!r}; the index is configured with dims={dims}"
                )
                raise InvalidInputError(msg)
            vectors.append((ns, key, field, "[" + ",".join(map(repr, map(float, vector))) + "]"))
    s, v = t.store, t.vectors
    steps: list[WriteStep] = []
    if deletes:
        steps.append(sa.delete(s).where(_keys_in(s, sorted(set(deletes)))))
    touched = sorted({*deletes, *((ns, key) for ns, key, *_ in upserts)})
    if indexed and touched:
        steps.append(sa.delete(v).where(_keys_in(v, touched)))
    if upserts:
        rows = [
            {
                "prefix": ns,
                "key": key,
                "value": value,
                "created_at": _NOW,
                "updated_at": _NOW,
                "expires_at": None if ttl is None else _expiry(sa.literal(float(ttl))),
                "ttl_minutes": ttl,
            }
            for ns, key, value, ttl in sorted(upserts, key=lambda u: (u[0], u[1]))
        ]
        stmt = insert(s).values(rows)
        steps.append(
            stmt.on_duplicate_key_update(
                value=stmt.inserted.value,
                updated_at=_NOW,
                expires_at=stmt.inserted.expires_at,
                ttl_minutes=stmt.inserted.ttl_minutes,
            )
        )
    if vectors:
        sql = (
            f"INSERT INTO {quote_identifier(v.name)} (`prefix`, `key`, `field_name`, `embedding`) "
            "VALUES (%s, %s, %s, %s)"
        )
        steps.append((sql, sorted(vectors)))
        with_ttl = sorted({(ns, key) for ns, key, _, ttl in upserts if ttl is not None})
        if with_ttl:
            steps.append(_copy_expiry(t, with_ttl))
    if steps:
        yield from write_retrying(*steps)


# ---------------------------------------------------------------------------------- search


class VectorQuery:
    """A query vector, the distance to rank by, and whether an HNSW index can serve it."""

    def __init__(self, vector: list[float], strategy: DistanceStrategy, *, ann: bool) -> None:
        self.text = "[" + ",".join(map(repr, map(float, vector))) + "]"
        self.strategy = strategy
        self.ann = ann

    def distance(self, column: Any) -> Any:
        """The distance of ``column`` to this query, in SQL."""
        fn = getattr(sa.func, self.strategy.sql_function)
        return fn(column, sa.bindparam(None, self.text, type_=sa.String))


def op_search(
    t: StoreTables,
    *,
    labels: Sequence[str],
    condition: sa.ColumnElement[bool] | None,
    query: VectorQuery | None,
    limit: int,
    offset: int,
    fields_per_item: int,
    omit_expired: bool,
    refresh: bool,
    indexed: bool,
) -> Op[Rows]:
    """Items under ``labels`` matching ``condition``, one page.

    Nearest first with a query vector, else most recently updated first. Rows carry ``dist``
    (None without a query).
    """
    s = t.store
    where = [namespace_under(s.c.prefix, labels)]
    if condition is not None:
        where.append(condition)
    if omit_expired:
        where.append(_alive(s))
    if query is None:
        stmt = (
            sa.select(*_item_columns(s), sa.null().label("dist"))
            .where(*where)
            .order_by(s.c.updated_at.desc(), s.c.prefix, s.c.key)
            .limit(limit)
            .offset(offset)
        )
        rows = yield from read(stmt)
    else:
        rows = yield from _nearest(
            t,
            where,
            query,
            limit,
            offset,
            fields_per_item,
            labels=labels,
            condition=condition,
            omit_expired=omit_expired,
        )
    if refresh:
        keys = [(r.prefix, r.key) for r in rows if r.ttl_minutes is not None]
        if keys:
            yield from write_retrying(*_refresh(t, keys, indexed=indexed))
    return rows


def _ranked(
    t: StoreTables, where: list[Any], query: VectorQuery, limit: int, offset: int, pool: int | None
) -> sa.Select[Any]:
    """Items ranked by their nearest vector.

    ``pool`` limits them to the index's ``pool`` nearest vectors (an ANN read: ORDER BY
    distance LIMIT on the vectors table alone, which TiDB serves from the HNSW index).
    """
    s, v = t.store, t.vectors
    if pool is None:
        vectors: Any = v
        dist = query.distance(v.c.embedding)
    else:
        d = query.distance(v.c.embedding)
        vectors = (
            sa.select(v.c.prefix, v.c.key, d.label("dist")).order_by(d).limit(pool).subquery("ann")
        )
        dist = vectors.c.dist
    best = (
        sa.select(vectors.c.prefix, vectors.c.key, sa.func.MIN(dist).label("dist"))
        .select_from(
            vectors.join(s, sa.and_(s.c.prefix == vectors.c.prefix, s.c.key == vectors.c.key))
        )
        .where(*where)
        .group_by(vectors.c.prefix, vectors.c.key)
        .order_by(sa.literal_column("dist"), vectors.c.prefix, vectors.c.key)
        .limit(limit)
        .offset(offset)
        .subquery("best")
    )
    return (
        sa.select(*_item_columns(s), best.c.dist)
        .select_from(best.join(s, sa.and_(s.c.prefix == best.c.prefix, s.c.key == best.c.key)))
        .order_by(best.c.dist, s.c.prefix, s.c.key)
    )


def _nearest(
    t: StoreTables,
    where: list[Any],
    query: VectorQuery,
    limit: int,
    offset: int,
    fields_per_item: int,
    *,
    labels: Sequence[str],
    condition: sa.ColumnElement[bool] | None,
    omit_expired: bool,
) -> Op[Rows]:
    if query.ann:
        # Each item may own several vectors; ask the index for enough to fill the page.
        pool = max(limit + offset, 10) * max(fields_per_item, 1) * 4
        for _ in range(_ANN_ROUNDS):
            rows = yield from read(_ranked(t, where, query, limit, offset, pool))
            if len(rows) >= limit:
                return rows
            pool *= 4
    elif condition is None:
        found = yield from _nearest_vectors_first(
            t, query, labels, limit, offset, fields_per_item, omit_expired=omit_expired
        )
        if found is not None:
            return found
    # Exact: every vector of the items that pass the filters.
    return (yield from read(_ranked(t, where, query, limit, offset, None)))


def _nearest_vectors_first(
    t: StoreTables,
    query: VectorQuery,
    labels: Sequence[str],
    limit: int,
    offset: int,
    fields_per_item: int,
    *,
    omit_expired: bool,
) -> Op[Rows | None]:
    """The exact page without a value filter, ranking the vectors table alone (a TopN).

    The ``pool`` nearest vectors under the namespace, ordered by (distance, namespace, key),
    hold the items ranked by their nearest vector in the same order, first occurrence first:
    once the pool holds ``limit + offset`` live items, or the vectors ran out before it filled,
    those are the page the grouped exact statement returns, without joining and grouping every
    vector. Otherwise the pool widens; None hands over to that statement (after
    ``_ANN_ROUNDS`` rounds, or when a distance is NULL, which that statement ranks its own way).
    """
    want = limit + offset
    pool = max(want, 1) * max(fields_per_item, 1)
    for _ in range(_ANN_ROUNDS):
        stmt = t.cached(
            ("nearest", bool(labels), omit_expired, query.strategy, pool),
            partial(_pool_statement, t, bool(labels), query.strategy, pool, omit_expired),
        )
        params: dict[str, Any] = {"qv": query.text}
        if labels:
            text = ".".join(labels)
            params.update(ns=text, ns_below=_escape_like(text) + ".%")
        rows = yield from read(stmt, params)
        if any(r.dist is None for r in rows):
            return None
        page: list[Any] = []
        seen: set[tuple[str, str]] = set()
        for r in rows:
            if r.live and (r.prefix, r.key) not in seen:
                seen.add((r.prefix, r.key))
                page.append(r)
        if len(page) >= want or len(rows) < pool:
            return page[offset:want]
        pool *= 4
    return None


def _pool_statement(
    t: StoreTables, labels: bool, strategy: DistanceStrategy, pool: int, omit_expired: bool
) -> sa.Select[Any]:
    """The ``pool`` nearest vectors (bound: qv, and ns/ns_below with labels) and their items.

    Every pooled vector comes back, with ``live`` false when its item is gone or expired, so
    the caller can tell a short pool (the vectors ran out) from a pool of dead items.
    """
    s, v = t.store, t.vectors
    fn = getattr(sa.func, strategy.sql_function)
    dist = fn(v.c.embedding, sa.bindparam("qv", type_=sa.String))
    where: list[Any] = []
    if labels:
        ns = sa.bindparam("ns", type_=sa.String)
        below = sa.bindparam("ns_below", type_=sa.String)
        where.append(sa.or_(v.c.prefix == ns, v.c.prefix.like(below, escape="\\")))
    nearest = (
        sa.select(v.c.prefix, v.c.key, dist.label("dist"))
        .where(*where)
        .order_by(sa.literal_column("dist"), v.c.prefix, v.c.key)
        .limit(pool)
        .subquery("pool")
    )
    live: sa.ColumnElement[bool] = s.c.prefix.is_not(None)
    if omit_expired:
        live = sa.and_(live, _alive(s))
    return (
        sa.select(
            nearest.c.prefix,
            nearest.c.key,
            s.c.value,
            sa.func.UNIX_TIMESTAMP(s.c.created_at).label("created"),
            sa.func.UNIX_TIMESTAMP(s.c.updated_at).label("updated"),
            s.c.ttl_minutes,
            nearest.c.dist,
            live.label("live"),
        )
        .select_from(
            nearest.outerjoin(s, sa.and_(s.c.prefix == nearest.c.prefix, s.c.key == nearest.c.key))
        )
        .order_by(nearest.c.dist, nearest.c.prefix, nearest.c.key)
    )


# ---------------------------------------------------------------------------------- namespaces


def _segment_pattern(path: Sequence[str], match_type: str) -> str:
    """A regular expression over the dotted namespace matching whole labels (``*``: any one)."""
    import re

    body = r"\.".join("[^.]+" if part == "*" else re.escape(part) for part in path)
    return rf"(^|\.){body}$" if match_type == "suffix" else rf"^{body}(\.|$)"


def op_list_namespaces(
    t: StoreTables,
    conditions: Sequence[tuple[str, Sequence[str]]],
    max_depth: int | None,
    limit: int,
    offset: int,
    *,
    omit_expired: bool,
) -> Op[list[str]]:
    """Distinct namespaces (cut to ``max_depth`` labels) matching every (type, path) condition."""
    s = t.store
    ns = s.c.prefix if max_depth is None else sa.func.SUBSTRING_INDEX(s.c.prefix, ".", max_depth)
    where = [
        s.c.prefix.regexp_match(_segment_pattern(path, kind)) for kind, path in conditions if path
    ]
    if omit_expired:
        where.append(_alive(s))
    stmt = (
        sa.select(ns.label("ns"))
        .distinct()
        .where(*where)
        .order_by(sa.literal_column("ns"))
        .limit(limit)
        .offset(offset)
    )
    return [row.ns for row in (yield from read(stmt))]
