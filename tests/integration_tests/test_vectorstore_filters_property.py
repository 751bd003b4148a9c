"""Property: filtered search equals a Python reference on the same rows, in every strategy.

The rows are fixed and diverse (seeded), so random filters split them into matching and
non-matching sets; only the filter, k and the query vary per example.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
from filter_reference import filter_strategy, matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.vectorstores import search

DIM = 6
ROWS = 80
_VALUES: list[Any] = [
    0,
    1,
    -1,
    2,
    2.5,
    -1.5,
    1.0,
    2**53,
    2**53 + 1,
    "1",
    "a",
    "A",
    "",
    "aA",
    " %_",
    "é",
    True,
    False,
    None,
]


def _metadata(rng: random.Random) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key in ("a", "b", "c"):
        if rng.random() < 0.75:
            meta[key] = rng.choice(_VALUES)
    roll = rng.random()
    if roll < 0.5:
        meta["n"] = {k: rng.choice(_VALUES) for k in ("x", "y") if rng.random() < 0.7}
    elif roll < 0.7:
        meta["n"] = rng.choice(_VALUES)
    # "t" holds what a list[str] index accepts: a list of strings, a string, or nothing.
    strings = [v for v in _VALUES if isinstance(v, str)]
    roll = rng.random()
    if roll < 0.6:
        meta["t"] = rng.sample(strings, rng.randint(0, 3))
    elif roll < 0.8:
        meta["t"] = rng.choice(strings)
    return meta


# Indexed keys of every kind, over values of every JSON type: the index narrows, the JSON
# condition decides, so results must not change.
INDEXED = {"a": str, "b": float, "c": int, "n.x": str, "t": list[str]}


@pytest.fixture(scope="module", params=["json", "indexed"])
def table(
    tidb_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[TiDBVectorStore, list[dict[str, Any]], np.ndarray]]:
    rng = random.Random(20261124)
    metas = [_metadata(rng) for _ in range(ROWS)]
    vectors = np.random.default_rng(7).normal(size=(ROWS, DIM)).astype(np.float32)
    store = TiDBVectorStore(
        None,
        connection_string=tidb_url,
        embedding_dimension=DIM,
        table_name=f"prop_{uuid.uuid4().hex[:10]}",
        batch_size=32,
        indexed_metadata=INDEXED if request.param == "indexed" else None,
    )
    store.add_embeddings(
        [f"row {i}" for i in range(ROWS)], vectors, metas, ids=[str(i) for i in range(ROWS)]
    )
    yield store, metas, vectors
    store.drop_table()
    store.close()


_PLANS = {
    # Force each branch of the exact plan's one statement, and let the guard choose.
    "join": search.PrefilterPlan(join_max=ROWS, index_cap=ROWS),
    "scan": search.PrefilterPlan(join_max=-1, index_cap=-1),
    "auto": search.PrefilterPlan(sample_rows=8, join_max=1, index_cap=3),
}


@pytest.mark.parametrize("path", ["pre-join", "pre-scan", "pre-auto", "post"])
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(filter=filter_strategy(), k=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_filtered_search_matches_reference(
    table: tuple[TiDBVectorStore, list[dict[str, Any]], np.ndarray],
    path: str,
    filter: dict[str, Any],
    k: int,
    seed: int,
) -> None:
    store, metas, vectors = table
    query = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    expected_ids = {str(i) for i, m in enumerate(metas) if matches(filter, m)}
    distances = 1 - vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    expected = sorted(float(distances[int(i)]) for i in expected_ids)[:k]
    strategy, _, plan = path.partition("-")
    with patch.object(search, "_PLAN", _PLANS.get(plan, search._PLAN)):
        hits = store.similarity_search_with_score_by_vector(
            query.tolist(), k=k, filter=filter, filter_strategy=strategy
        )
    if store.indexed_metadata:
        assert len(store._table.metadata_indexes) == len(INDEXED)
    # Never an unfiltered row, never fewer than k when k rows match, nearest first.
    assert {d.id for d, _ in hits} <= expected_ids
    assert all(matches(filter, d.metadata) for d, _ in hits)
    assert len(hits) == min(k, len(expected_ids))
    assert [s for _, s in hits] == pytest.approx(expected, abs=1e-5)
