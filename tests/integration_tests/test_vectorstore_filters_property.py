"""Property: filtered search equals a Python reference on the same rows, in both strategies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from filter_reference import filter_strategy, matches, metadata_strategy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_tidb_bedrock import TiDBVectorStore

DIM = 6


@pytest.fixture(scope="module")
def store(tidb_url: str) -> Iterator[TiDBVectorStore]:
    s = TiDBVectorStore(
        None,
        connection_string=tidb_url,
        table_name=f"prop_{uuid.uuid4().hex[:10]}",
        embedding_dimension=DIM,
        batch_size=64,
    )
    yield s
    s.drop_table()
    s.close()


def _vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, DIM)).astype(np.float32)


def _cosine(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 1 - matrix @ q / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    metas=st.lists(metadata_strategy(), min_size=1, max_size=90),
    filter=filter_strategy(),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_filtered_search_matches_reference(
    store: TiDBVectorStore, metas: list[dict[str, Any]], filter: dict[str, Any], k: int, seed: int
) -> None:
    store.clear()
    vectors = _vectors(len(metas) + 1, seed)
    ids = [str(i) for i in range(len(metas))]
    store.add_embeddings([f"row {i}" for i in ids], vectors[:-1], metas, ids=ids)
    query = vectors[-1]
    expected_ids = [i for i, m in zip(ids, metas, strict=True) if matches(filter, m)]
    distances = _cosine(vectors[:-1], query)
    expected = sorted(distances[int(i)] for i in expected_ids)[:k]
    for strategy in ("pre", "post"):
        hits = store.similarity_search_with_score_by_vector(
            query.tolist(), k=k, filter=filter, filter_strategy=strategy
        )
        # Never an unfiltered row, never fewer than k when k rows match, nearest first.
        assert all(matches(filter, d.metadata) for d, _ in hits), strategy
        assert all(d.id in expected_ids for d, _ in hits), strategy
        assert len(hits) == min(k, len(expected_ids)), strategy
        assert [s for _, s in hits] == pytest.approx(expected, abs=1e-5), strategy
