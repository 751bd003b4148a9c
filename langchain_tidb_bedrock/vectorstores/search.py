"""The search planner: kNN, filtered kNN (pre- or post-filter), and MMR, as operations.

Every plan returns exactly what the Python reference returns (the property tests hold each path
to it); plans differ in how much of the table TiDB has to touch.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from langchain_tidb_bedrock.db.runner import Op, embed_query, read
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.vectorstores.encoding import (
    decode_metadata,
    decode_vector,
    encode_query_vector,
)
from langchain_tidb_bedrock.vectorstores.filters import check_filter
from langchain_tidb_bedrock.vectorstores.queries import BRANCHES, PrefilterPlan, filter_key
from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy
from langchain_tidb_bedrock.vectorstores.table import TableState

__all__ = ["BranchMemory", "Search", "docs_with_scores"]

# Where the exact plan switches from ranking the matches only to one filtered scan (tests
# patch it to force either branch).
_PLAN = PrefilterPlan()


def docs_with_scores(rows: Iterable[Any]) -> list[tuple[Document, float]]:
    """Rows to (document, distance) pairs, skipping rows whose distance is NULL."""
    return [
        (
            Document(id=r.id, page_content=r.document or "", metadata=decode_metadata(r.meta)),
            float(r.distance),
        )
        for r in rows
        if r.distance is not None
    ]


class BranchMemory:
    """Which branch of the exact filtered search each recent filter took.

    A filter seen before runs its branch alone, without the guard (TiDB evaluates the guard
    once per branch while planning: a few ms a search); every ``recheck`` uses the guarded
    statement runs again, so a filter whose share of the table changed is re-planned. Either
    branch returns the exact result: a stale entry costs speed, never correctness.
    """

    def __init__(self, size: int = 256, recheck: int = 32) -> None:
        """Remember up to ``size`` filters, each for ``recheck`` searches."""
        self.size, self.recheck = size, recheck
        self._known: dict[Hashable, list[Any]] = {}

    def get(self, key: Hashable) -> str | None:
        """The known branch for a filter key, or None when the guard should decide."""
        entry = self._known.get(key)
        if entry is None:
            return None
        entry[1] -= 1
        if entry[1] < 0:
            self._known.pop(key, None)
            return None
        branch: str = entry[0]
        return branch

    def learn(self, key: Hashable, rows: Sequence[Any]) -> None:
        """Remember the branch the guarded statement's rows came from."""
        # No row: nothing matched, so the guard counted no match and chose "selective".
        branch = rows[0].plan if rows else BRANCHES[0]
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[key] = [branch, self.recheck]


class Search:
    """Search operations on one table."""

    def __init__(self, table: TableState, filter_strategy: str) -> None:
        """Keep the table state and the default filter strategy; no I/O."""
        self.table = table
        self.filter_strategy = filter_strategy
        self.branches = BranchMemory()

    def resolve_strategy(self, requested: str | None) -> str:
        """The filter strategy for one call: "auto" becomes "post" with an index, else "pre"."""
        strategy = requested or self.filter_strategy
        if strategy not in ("auto", "pre", "post"):
            msg = f"filter_strategy must be 'auto', 'pre' or 'post', got {strategy!r}"
            raise InvalidInputError(msg)
        if strategy == "auto":
            # Without an index, "pre" is exact and as fast; with one, "post" keeps using it.
            return "post" if self.table.index_ready else "pre"
        return strategy

    def op_search_vector(
        self,
        vector: Sequence[float],
        k: int,
        filter: Mapping[str, Any] | None,
        *,
        with_vector: bool = False,
        filter_strategy: str | None = None,
        overfetch: int = 10,
    ) -> Op[list[Any]]:
        """Rows of the k nearest (NULL distances skipped), with the table's filter plan."""
        if not isinstance(k, int) or k < 1:
            msg = f"k must be a positive integer, got {k!r}"
            raise InvalidInputError(msg)
        filter = check_filter(filter)
        info = yield from self.table.op_info()
        if info is None:
            return []
        rows = yield from self._op_nearest(
            vector, k, filter, with_vector, filter_strategy, overfetch
        )
        return rows

    def _op_nearest(
        self,
        vector: Sequence[float],
        k: int,
        filter: Mapping[str, Any] | None,
        with_vector: bool,
        filter_strategy: str | None,
        overfetch: int,
    ) -> Op[list[Any]]:
        # The filter is checked and the table described: nothing here does either again.
        qv = encode_query_vector(
            vector, self.table.dimension, reject_zero=self.table.strategy is DistanceStrategy.COSINE
        )
        # A row whose distance is NULL (a zero vector under cosine, written by another tool)
        # sorts first and would take a slot: widen the limit by those rows and drop them.
        want = k
        while True:
            rows = yield from self._op_rows(
                qv, want, filter, with_vector, filter_strategy, overfetch
            )
            good = [r for r in rows if r.distance is not None]
            if len(good) >= k or len(rows) < want:
                return good[:k]
            want += len(rows) - len(good)

    def _op_rows(
        self,
        qv: str,
        k: int,
        filter: Mapping[str, Any] | None,
        with_vector: bool,
        filter_strategy: str | None,
        overfetch: int,
    ) -> Op[list[Any]]:
        q = self.table.queries
        params = {"qv": qv}
        if not filter:
            rows = yield from read(q.knn_template(k, with_vector=with_vector), params)
            return rows
        strategy = self.resolve_strategy(filter_strategy)
        if strategy == "pre":
            # Exact search in one statement; TiDB picks its selective or its scan branch, or
            # the branch this filter took lately runs alone.
            # Per statement builder: a new metadata index (a new builder) plans afresh.
            key = (q, _PLAN, filter_key(filter))
            branch = self.branches.get(key)
            pre = q.prefilter_template(
                k, filter, with_vector=with_vector, plan=_PLAN, branch=branch
            )
            rows = yield from read(pre, params)
            if branch is None:
                self.branches.learn(key, rows)
            return rows
        # Post-filter: widen the candidate pool until k rows match or the table is exhausted.
        candidates = max(k * overfetch, 20)
        total: int | None = None
        while True:
            post = q.postfilter_template(k, candidates, filter, with_vector=with_vector)
            rows = yield from read(post, params)
            if len(rows) >= k:
                return rows
            if total is None:
                total = int((yield from read(q.count()))[0][0])
            if candidates >= total:
                return rows
            candidates = min(candidates * 4, total)

    def op_search_text(
        self, query: str, k: int, filter: Mapping[str, Any] | None, filter_strategy: str | None
    ) -> Op[list[tuple[Document, float]]]:
        """Embed ``query`` and return the k nearest documents with distances."""
        if not isinstance(k, int) or k < 1:
            msg = f"k must be a positive integer, got {k!r}"
            raise InvalidInputError(msg)
        filter = check_filter(filter)
        info = yield from self.table.op_info()
        if info is None:
            return []
        vector = yield from embed_query(query)
        rows = yield from self._op_nearest(vector, k, filter, False, filter_strategy, 10)
        return docs_with_scores(rows)

    def op_by_vector(
        self,
        embedding: Sequence[float],
        k: int,
        filter: Mapping[str, Any] | None,
        filter_strategy: str | None,
    ) -> Op[list[tuple[Document, float]]]:
        """The k nearest documents to a vector, with distances."""
        rows = yield from self.op_search_vector(
            embedding, k, filter, filter_strategy=filter_strategy
        )
        return docs_with_scores(rows)

    def op_mmr(
        self,
        embedding: Sequence[float] | None,
        query: str | None,
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: Mapping[str, Any] | None,
        filter_strategy: str | None,
    ) -> Op[list[Document]]:
        """Fetch ``fetch_k`` nearest, then pick k by maximal marginal relevance."""
        if not 0.0 <= lambda_mult <= 1.0:
            msg = f"lambda_mult must be between 0 and 1, got {lambda_mult}"
            raise InvalidInputError(msg)
        filter = check_filter(filter)
        info = yield from self.table.op_info()
        if info is None:
            return []
        if embedding is None:
            embedding = yield from embed_query(query or "")
        rows = yield from self.op_search_vector(
            embedding, max(fetch_k, k), filter, with_vector=True, filter_strategy=filter_strategy
        )
        if not rows:
            return []
        vectors = [decode_vector(r.embedding) for r in rows]
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32), vectors, lambda_mult=lambda_mult, k=k
        )
        docs = docs_with_scores(rows)
        return [docs[i][0] for i in chosen]
