"""Operations on stored documents by id or by filter: get, count, update metadata, delete.

Also the reads that touch ids and metadata only (never texts or vectors): metadata by id or
filter, and grouped summaries of one metadata key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from langchain_core.documents import Document

from langchain_tidb_bedrock.db.runner import Op, WriteStep, read, write
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.vectorstores.encoding import decode_metadata, is_utf8
from langchain_tidb_bedrock.vectorstores.filters import (
    CheckedFilter,
    check_filter,
    compile_filter,
    split_path,
)
from langchain_tidb_bedrock.vectorstores.table import TableState

__all__ = [
    "MetadataGroup",
    "op_check_model_dimension",
    "op_clear",
    "op_count",
    "op_delete",
    "op_dimension",
    "op_get",
    "op_get_by_ids",
    "op_get_metadata",
    "op_metadata_summary",
]

# Ids per statement for lookups and deletes: keeps each statement's IN list bounded.
_ID_BATCH = 1000


def _document(row: Any) -> Document:
    return Document(id=row.id, page_content=row.document or "", metadata=decode_metadata(row.meta))


def _check_ids(ids: Sequence[str]) -> None:
    # The driver would raise a bare UnicodeEncodeError mid-statement; add() refuses the same.
    for n, doc_id in enumerate(ids):
        if isinstance(doc_id, str) and not is_utf8(doc_id):
            msg = f"id at position {n} is not valid UTF-8 (it has a lone surrogate)"
            raise InvalidInputError(msg)


def op_get_by_ids(table: TableState, ids: Sequence[str]) -> Op[list[Document]]:
    """Documents for these ids in input order; missing ids skipped, repeated ids once."""
    id_list = list(ids)
    _check_ids(id_list)
    wanted = list(dict.fromkeys(id_list))
    info = yield from table.op_info()
    if info is None or not wanted:
        return []
    found: dict[str, Document] = {}
    for start in range(0, len(wanted), _ID_BATCH):
        rows = yield from read(table.queries.get_by_ids(wanted[start : start + _ID_BATCH]))
        found.update((r.id, _document(r)) for r in rows)
    return [found[i] for i in wanted if i in found]


def op_get(table: TableState, filter: object, limit: int | None) -> Op[list[Document]]:
    """Documents matching ``filter`` (all when None or empty), in id order."""
    condition = check_filter(filter)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        msg = f"limit must be a non-negative integer, got {limit!r}"
        raise InvalidInputError(msg)
    info = yield from table.op_info()
    if info is None:
        return []
    rows = yield from read(table.queries.get_where(condition, limit))
    return [_document(r) for r in rows]


def op_count(table: TableState) -> Op[int]:
    """Number of stored documents (0 when the table does not exist)."""
    info = yield from table.op_info()
    if info is None:
        return 0
    rows = yield from read(table.queries.count())
    return int(rows[0][0])


def op_delete(table: TableState, ids: Sequence[str] | None, filter: object) -> Op[bool]:
    """Delete by ids, by filter, or ids that also match the filter (the intersection)."""
    condition = check_filter(filter)
    if ids is None and condition is None:
        msg = (
            "delete() needs ids= or filter=; refusing to delete every row. "
            "Use clear() to empty the table or drop_table() to remove it."
        )
        raise InvalidInputError(msg)
    if isinstance(ids, str):
        msg = "delete(ids=...) takes a list of ids, got one string"
        raise TypeError(msg)
    if ids is not None:
        ids = list(ids)
        _check_ids(ids)  # before any I/O
    info = yield from table.op_info()
    if info is None:
        return True
    q = table.queries
    kt = table.keyword  # the keyword index loses the same rows, in the same transaction
    sql = compile_filter(condition, table.table.c.meta) if kt and condition else None
    steps: list[WriteStep] = []
    if ids is not None:
        id_list = list(ids)
        for s in range(0, len(id_list), _ID_BATCH):
            chunk = id_list[s : s + _ID_BATCH]
            steps += kt.delete_ids_steps(chunk, sql) if kt else []
            steps.append(q.delete_ids(chunk, condition))
    elif condition is not None:
        steps += kt.delete_filter_steps(sql) if kt and sql is not None else []
        steps.append(q.delete_filter(condition))
    if steps:
        yield from write(*steps)
    return True


def op_clear(table: TableState) -> Op[None]:
    """Delete every row (the table and its index stay)."""
    info = yield from table.op_info()
    if info is not None:
        kt = table.keyword
        yield from write(*(kt.clear_steps() if kt else []), sa.delete(table.table))


# ------------------------------------------------------------------ ids and metadata only


class MetadataGroup(NamedTuple):
    """One row of :meth:`TiDBVectorStore.metadata_summary`.

    Attributes:
        value: The grouped key's value (None for rows without the key).
        rows: Rows in the group.
        maxima: For each ``max_of`` key, its largest value in the group (JSON comparison:
            numbers as numbers, strings by code point); None when no row has it.
        minima: The same for the ``min_of`` keys, smallest values.
    """

    value: Any
    rows: int
    maxima: dict[str, Any]
    minima: dict[str, Any]


def _json_path(key: object, what: str) -> str:
    """A metadata key (dots for nesting, as in filters) as a JSON path, checked like a filter."""
    if not isinstance(key, str) or not key or key.startswith("$"):
        msg = f"{what} must be a metadata key (a non-empty string), got {key!r}"
        raise InvalidInputError(msg)
    check_filter({key: {"$exists": True}})  # the filters' rules for field names
    return "$" + "".join(f'."{seg}"' for seg in split_path(key))


def _where(table: TableState, condition: CheckedFilter | None) -> list[sa.ColumnElement[bool]]:
    if condition is None:
        return []
    meta = table.table.c.meta
    compiled = compile_filter(condition, meta, null_safe=False)
    return [
        *table.queries.narrowing(condition, meta),
        *([compiled] if compiled is not None else []),
    ]


def op_get_metadata(
    table: TableState, ids: Sequence[str] | None, filter: object
) -> Op[dict[str, dict[str, Any]]]:
    """Metadata by id of the rows among ``ids`` and matching ``filter`` (all rows when neither)."""
    condition = check_filter(filter)
    id_list: list[str] | None = None
    if ids is not None:
        if isinstance(ids, str):
            msg = "get_metadata(ids=...) takes a list of ids, got one string"
            raise InvalidInputError(msg)
        id_list = list(dict.fromkeys(ids))
        _check_ids(id_list)
    info = yield from table.op_info()
    if info is None or id_list == []:
        return {}
    t = table.table
    stmt = sa.select(t.c.id, t.c.meta).where(*_where(table, condition))
    found: dict[str, dict[str, Any]] = {}
    if id_list is None:
        rows = yield from read(stmt)
        found.update((r.id, decode_metadata(r.meta)) for r in rows)
        return found
    for start in range(0, len(id_list), _ID_BATCH):
        batch = id_list[start : start + _ID_BATCH]
        rows = yield from read(stmt.where(t.c.id.in_(batch)))
        found.update((r.id, decode_metadata(r.meta)) for r in rows)
    return found


def _decode_json(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


def op_metadata_summary(
    table: TableState,
    key: str,
    max_of: Sequence[str],
    min_of: Sequence[str],
    filter: object,
) -> Op[list[MetadataGroup]]:
    """Rows grouped by one metadata key: count, and maxima/minima of other keys (one read)."""
    for name, keys in (("max_of", max_of), ("min_of", min_of)):
        if isinstance(keys, str):
            msg = f"{name} takes a list of metadata keys, got one string"
            raise InvalidInputError(msg)
    group_path = _json_path(key, "key")
    max_paths = {k: _json_path(k, "a max_of key") for k in max_of}
    min_paths = {k: _json_path(k, "a min_of key") for k in min_of}
    condition = check_filter(filter)
    info = yield from table.op_info()
    if info is None:
        return []
    meta = table.table.c.meta

    def extract(path: str) -> sa.ColumnElement[Any]:
        return sa.func.JSON_EXTRACT(meta, sa.bindparam(None, path, type_=sa.String))

    # The JSON value itself is grouped and compared (MAX/MIN on JSON compare numbers as
    # numbers); the group expression is named once so GROUP BY and ORDER BY repeat the name.
    group = extract(group_path).label("grouped")
    stmt = (
        sa.select(
            group,
            sa.func.count().label("rows"),
            *(sa.func.max(extract(p)) for p in max_paths.values()),
            *(sa.func.min(extract(p)) for p in min_paths.values()),
        )
        .where(*_where(table, condition))
        .group_by(sa.literal_column("grouped"))
        .order_by(sa.literal_column("grouped"))
    )
    rows = yield from read(stmt)
    groups = []
    for row in rows:
        grouped, count, *rest = tuple(row)
        values = [_decode_json(v) for v in rest]
        maxima = dict(zip(max_paths, values[: len(max_paths)], strict=True))
        minima = dict(zip(min_paths, values[len(max_paths) :], strict=True))
        groups.append(MetadataGroup(_decode_json(grouped), int(count), maxima, minima))
    return groups


def op_dimension(table: TableState) -> Op[int | None]:
    """The table's vector size (None when the table does not exist or does not fix one)."""
    info = yield from table.op_info()
    return None if info is None else info.dimension


def op_check_model_dimension(table: TableState, model: object) -> Op[None]:
    """Refuse, before anything is embedded, a model whose ``dimensions`` the table cannot store.

    Only models that say their size (an integer ``dimensions`` attribute, as Titan's) are
    checked here; others are checked when their first vectors arrive.
    """
    size = getattr(model, "dimensions", None)
    if not isinstance(size, int) or isinstance(size, bool):
        return
    yield from table.op_info()
    stored = table.dimension
    if stored is not None and stored != size:
        msg = (
            f"embedding dimension mismatch: table {table.name!r} stores {stored}-dimensional "
            f"vectors, got {size} (the embedding model's dimensions); nothing was embedded: "
            f"use dimensions={stored} or another table"
        )
        raise InvalidInputError(msg)
