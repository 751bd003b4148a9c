"""Operations on stored documents by id or by filter: get, count, update metadata, delete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from langchain_core.documents import Document

from langchain_tidb_bedrock.db.runner import Op, WriteStep, read, write
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.vectorstores.encoding import decode_metadata, is_utf8
from langchain_tidb_bedrock.vectorstores.filters import check_filter, compile_filter
from langchain_tidb_bedrock.vectorstores.table import TableState

__all__ = ["op_clear", "op_count", "op_delete", "op_get", "op_get_by_ids"]

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
        raise ValueError(msg)
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
        raise ValueError(msg)
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
