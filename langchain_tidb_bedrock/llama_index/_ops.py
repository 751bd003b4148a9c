"""The few operations LlamaIndex needs that the LangChain store has no method for.

Each is built from the store's own pieces (its table state, statement builders, filter compiler
and search planner), so the SQL, the filters and the plans stay the store's:

* reads restricted to a list of node ids (``get_nodes(node_ids, filters)``, a query's
  ``node_ids``): primary-key reads, then the filter, then (for a query) the exact ranking;
* MMR as LlamaIndex defines it (``get_top_k_mmr_embeddings``: a candidate is penalised by its
  similarity to the last pick, not to the closest pick as in LangChain's MMR).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from langchain_core.documents import Document
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings

from langchain_tidb_bedrock.db.runner import Op, read
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore as LangChainStore
from langchain_tidb_bedrock.vectorstores.encoding import (
    decode_metadata,
    decode_vector,
    encode_query_vector,
)
from langchain_tidb_bedrock.vectorstores.filters import check_filter, compile_filter
from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy

__all__ = ["op_get_by_ids", "op_mmr", "op_nearest_in_ids", "op_search_ids"]

# Ids per statement: keeps each IN list bounded (as the store's own lookups do).
_ID_BATCH = 1000


def _document(row: Any) -> Document:
    return Document(id=row.id, page_content=row.document or "", metadata=decode_metadata(row.meta))


def op_get_by_ids(
    store: LangChainStore, ids: Sequence[str], filter: Mapping[str, Any] | None
) -> Op[list[Document]]:
    """Documents for ``ids`` that match ``filter``, in input order (repeats once)."""
    condition = check_filter(filter)
    table = store._table
    wanted = list(dict.fromkeys(ids))
    info = yield from table.op_info()
    if info is None or not wanted:
        return []
    where = compile_filter(condition, table.table.c.meta)
    found: dict[str, Document] = {}
    for start in range(0, len(wanted), _ID_BATCH):
        stmt = table.queries.get_by_ids(wanted[start : start + _ID_BATCH])
        rows = yield from read(stmt.where(where) if where is not None else stmt)
        found.update((r.id, _document(r)) for r in rows)
    return [found[i] for i in wanted if i in found]


def op_search_ids(
    store: LangChainStore,
    vector: Sequence[float],
    k: int,
    ids: Sequence[str],
    filter: Mapping[str, Any] | None,
    *,
    with_vector: bool = False,
) -> Op[list[Any]]:
    """Rows of the k nearest among ``ids`` (exact: point reads by primary key, then ranked)."""
    condition = check_filter(filter)
    table = store._table
    wanted = list(dict.fromkeys(ids))
    info = yield from table.op_info()
    if info is None or not wanted:
        return []
    qv = encode_query_vector(
        vector, table.dimension, reject_zero=table.strategy is DistanceStrategy.COSINE
    )
    t = table.table
    distance = table.queries.distance()
    cols: list[Any] = [t.c.id, t.c.document, t.c.meta]
    if with_vector:
        cols.append(t.c.embedding)
    stmt = (
        sa.select(*cols, distance.label("distance"))
        .where(t.c.id.in_(wanted), distance.is_not(None))
        .order_by(sa.literal_column("distance").asc())
        .limit(k)
    )
    where = compile_filter(condition, t.c.meta)
    if where is not None:
        stmt = stmt.where(where)
    rows = yield from read(stmt, {"qv": qv})
    return list(rows)


def op_nearest_in_ids(
    store: LangChainStore,
    vector: Sequence[float],
    k: int,
    ids: Sequence[str],
    filter: Mapping[str, Any] | None,
) -> Op[list[tuple[Document, float]]]:
    """The k nearest documents among ``ids`` with their distances."""
    rows = yield from op_search_ids(store, vector, k, ids, filter)
    return [(_document(r), float(r.distance)) for r in rows]


def op_mmr(
    store: LangChainStore,
    vector: Sequence[float],
    k: int,
    fetch_k: int,
    filter: Mapping[str, Any] | None,
    ids: Sequence[str] | None,
    filter_strategy: str | None,
    threshold: float | None,
    similarity: Callable[[Any, Any], float],
) -> Op[list[tuple[Document, float]]]:
    """LlamaIndex MMR over the ``fetch_k`` nearest: (document, MMR score) pairs, best first."""
    if ids is None:
        rows = yield from store._search.op_search_vector(
            vector, fetch_k, filter, with_vector=True, filter_strategy=filter_strategy
        )
    else:
        rows = yield from op_search_ids(store, vector, fetch_k, ids, filter, with_vector=True)
    if not rows:
        return []
    embeddings = [decode_vector(r.embedding) for r in rows]
    scores, picked = get_top_k_mmr_embeddings(
        list(vector),
        embeddings,
        similarity_fn=similarity,
        similarity_top_k=k,
        embedding_ids=list(range(len(rows))),
        mmr_threshold=threshold,
    )
    return [(_document(rows[i]), float(s)) for s, i in zip(scores, picked, strict=True)]
