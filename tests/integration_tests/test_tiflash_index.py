"""The HNSW vector index path, end to end, on a TiDB with TiFlash.

Runs on ``LocalTiDB(tiflash=True)`` (mock TiFlash stores: TiDB's real index DDL, replicas and
``annIndex`` plans; the ANN itself runs as an exact TopN, so results equal the exact path), or on
the cluster ``TIDB_URL`` names. TiFlash replicas become available asynchronously, so every plan
assertion first waits for ``TIFLASH_REPLICA.AVAILABLE``. Sequential on purpose: the mock TiFlash
answers slowly under concurrency.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from helpers.tiflash import wait_for_tiflash_replica
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import TiDBVectorStore

pytestmark = pytest.mark.tiflash

DIM = 8
ROWS = 200
BUCKETS = 20  # a bucket filter matches 5% of the rows

StoreFactory = Callable[..., TiDBVectorStore]


@pytest.fixture
def make_store(tidb_url: str, tidb_engine: sa.Engine) -> Iterator[StoreFactory]:
    made: list[TiDBVectorStore] = []

    def factory(table_name: str | None = None, **kwargs: Any) -> TiDBVectorStore:
        store = TiDBVectorStore(
            DeterministicFakeEmbedding(size=DIM),
            connection_string=tidb_url,
            table_name=table_name or f"ix_{uuid.uuid4().hex[:12]}",
            **kwargs,
        )
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()
    with tidb_engine.begin() as conn:
        for name in {s.table_name for s in made}:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS `{name}`"))


def _fill(store: TiDBVectorStore, rows: int = ROWS) -> None:
    store.add_texts(
        [f"document number {i}" for i in range(rows)],
        [{"bucket": i % BUCKETS, "n": i} for i in range(rows)],
        ids=[f"doc-{i}" for i in range(rows)],
    )


def _nearest(query: str, rows: Iterable[int], k: int) -> list[str]:
    """The ids of the k rows (of those ``_fill`` wrote) nearest ``query`` by cosine, in numpy."""
    emb = DeterministicFakeEmbedding(size=DIM)
    numbers = list(rows)
    vectors = np.asarray(
        emb.embed_documents([f"document number {i}" for i in numbers]), dtype=np.float32
    )
    q = np.asarray(emb.embed_query(query), dtype=np.float32)
    cosine = 1 - vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
    return [f"doc-{numbers[i]}" for i in np.argsort(cosine, kind="stable")[:k]]


def _vector_indexes(engine: sa.Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        ddl = str(conn.execute(sa.text(f"SHOW CREATE TABLE `{table}`")).one()[1])
    return [line.strip() for line in ddl.splitlines() if "VECTOR INDEX" in line]


def _explain(engine: sa.Engine, sql: str, params: Any) -> str:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN " + sql, params).all()
    return "\n".join(" ".join(str(v) for v in row) for row in rows)


class _Statements:
    """The kNN SELECTs sent to the server, with their parameters (whatever engine sends them)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def record(self, conn: Any, cursor: Any, sql: str, params: Any, *args: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT") and "distance" in sql:
            self.seen.append((sql, params))

    def last(self) -> tuple[str, Any]:
        assert self.seen, "no kNN statement was sent"
        return self.seen[-1]


@pytest.fixture
def statements() -> Iterator[_Statements]:
    recorder = _Statements()
    # On the Engine class: the store's own read and write engines are internal.
    sa.event.listen(sa.Engine, "before_cursor_execute", recorder.record)
    yield recorder
    sa.event.remove(sa.Engine, "before_cursor_execute", recorder.record)


@pytest.mark.parametrize(
    ("metric", "function"), [("cosine", "VEC_COSINE_DISTANCE"), ("l2", "VEC_L2_DISTANCE")]
)
def test_index_is_created_with_the_table(
    make_store: StoreFactory, tidb_engine: sa.Engine, metric: str, function: str
) -> None:
    store = make_store(distance_strategy=metric)
    _fill(store, 20)
    (index,) = _vector_indexes(tidb_engine, store.table_name)
    assert function in index
    wait_for_tiflash_replica(tidb_engine, store.table_name)
    plan = store.explain("document number 3", k=5)
    assert plan.uses_vector_index, str(plan)
    assert any(f"annIndex:{metric.upper()}(" in str(r) for r in plan.plan)
    hits = store.similarity_search("document number 3", k=5)
    assert hits[0].id == "doc-3"
    assert len(hits) == 5


def test_no_index_for_inner_product(make_store: StoreFactory, tidb_engine: sa.Engine) -> None:
    store = make_store(distance_strategy="inner_product")
    _fill(store, 20)
    assert _vector_indexes(tidb_engine, store.table_name) == []
    with pytest.raises(ValueError, match="only cosine and l2"):
        store.create_vector_index()
    assert not store.explain("document number 3").uses_vector_index
    assert store.similarity_search("document number 3", k=1)[0].id == "doc-3"


def test_create_vector_index_on_an_existing_table(
    make_store: StoreFactory, tidb_engine: sa.Engine
) -> None:
    store = make_store(vector_index=False)
    _fill(store, 50)
    assert _vector_indexes(tidb_engine, store.table_name) == []
    assert store.vector_index_status() == []
    assert not store.explain("document number 7").uses_vector_index

    store.create_vector_index()
    (index,) = _vector_indexes(tidb_engine, store.table_name)
    assert "VEC_COSINE_DISTANCE" in index
    store.create_vector_index()  # a second call finds the index and adds nothing
    assert len(_vector_indexes(tidb_engine, store.table_name)) == 1
    wait_for_tiflash_replica(tidb_engine, store.table_name)
    assert store.explain("document number 7").uses_vector_index
    assert store.similarity_search("document number 7", k=1)[0].id == "doc-7"


def test_vector_index_status(make_store: StoreFactory) -> None:
    store = make_store()
    _fill(store, 30)
    (row,) = store.vector_index_status()
    assert row["TIDB_TABLE"] == store.table_name
    assert row["COLUMN_NAME"] == "embedding"
    assert row["INDEX_KIND"] == "HNSW"
    assert row["ROWS_STABLE_NOT_INDEXED"] == 0  # the mock reports every index fully built
    assert row["INDEX_NAME"]


def test_the_search_sql_keeps_the_index_compatible_shape(
    make_store: StoreFactory, tidb_engine: sa.Engine, statements: _Statements
) -> None:
    store = make_store()
    _fill(store)
    wait_for_tiflash_replica(tidb_engine, store.table_name)
    store.similarity_search("document number 11", k=4)
    plain, plain_params = statements.last()
    store.similarity_search("document number 11", k=4, filter={"bucket": 11})
    post, post_params = statements.last()
    assert "candidates" in post
    assert "annIndex:COSINE(" in _explain(tidb_engine, plain, plain_params)
    # The post-filter's inner query is the indexable shape; the filter sits outside it.
    post_plan = _explain(tidb_engine, post, post_params)
    assert "annIndex:COSINE(" in post_plan
    # The check tells the shapes apart: a WHERE in the kNN query loses the index.
    pre = plain.replace("ORDER BY", "WHERE document LIKE 'doc%%' ORDER BY", 1)
    assert "annIndex" not in _explain(tidb_engine, pre, plain_params)


def test_auto_takes_the_index_path_and_post_returns_exactly_k(
    make_store: StoreFactory, tidb_engine: sa.Engine, statements: _Statements
) -> None:
    store = make_store()
    _fill(store)
    wait_for_tiflash_replica(tidb_engine, store.table_name)
    flt = {"bucket": 7}  # 10 of 200 rows: far fewer than the first candidate pool holds
    auto = store.similarity_search("document number 7", k=8, filter=flt)
    sql, params = statements.last()
    assert "candidates" in sql  # the post-filter over index candidates
    assert "annIndex:" in _explain(tidb_engine, sql, params)

    post = store.similarity_search("document number 7", k=8, filter=flt, filter_strategy="post")
    exact = store.similarity_search("document number 7", k=8, filter=flt, filter_strategy="pre")
    assert len(post) == 8
    expected = _nearest("document number 7", range(7, ROWS, BUCKETS), 8)
    assert [d.id for d in post] == [d.id for d in exact] == [d.id for d in auto] == expected
    assert all(d.metadata["bucket"] == 7 for d in post)
    # All 10 matches are found even when k asks for all of them (the pool widens).
    wide = store.similarity_search("document number 7", k=10, filter=flt, filter_strategy="post")
    assert sorted(str(d.id) for d in wide) == sorted(f"doc-{i}" for i in range(7, ROWS, BUCKETS))


@pytest.mark.parametrize("reopen", ["from_existing_table", "constructor"])
def test_a_reopened_store_recognises_its_index(
    make_store: StoreFactory,
    tidb_url: str,
    tidb_engine: sa.Engine,
    caplog: pytest.LogCaptureFixture,
    statements: _Statements,
    reopen: str,
) -> None:
    first = make_store()
    _fill(first)
    wait_for_tiflash_replica(tidb_engine, first.table_name)
    with caplog.at_level(logging.WARNING):
        if reopen == "from_existing_table":
            again = TiDBVectorStore.from_existing_table(
                DeterministicFakeEmbedding(size=DIM), first.table_name, connection_string=tidb_url
            )
        else:
            again = make_store(first.table_name)
        hits = again.similarity_search("document number 5", k=3, filter={"bucket": 5})
    assert "no vector index" not in caplog.text
    assert [d.id for d in hits] == _nearest("document number 5", range(5, ROWS, BUCKETS), 3)
    sql, params = statements.last()
    assert "candidates" in sql  # 'auto' chose the index path
    assert "annIndex:" in _explain(tidb_engine, sql, params)
    assert again.explain("document number 5").uses_vector_index
    again.close()


def test_table_splits_are_refused(tidb_engine: sa.Engine, table_name: str) -> None:
    # Mock TiFlash runs an MPP task over its first region only: a split table would silently
    # lose rows there, so the variant keeps every table in one region.
    with tidb_engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, v VECTOR(3),"
                " VECTOR INDEX idx_v ((VEC_COSINE_DISTANCE(v))))"
            )
        )
        conn.execute(
            sa.text(f"INSERT INTO `{table_name}` VALUES (:i, :v)"),
            [{"i": i * 1000, "v": f"[{i + 1},1,1]"} for i in range(100)],
        )
    with tidb_engine.connect() as conn:
        conn.execute(
            sa.text(f"SPLIT TABLE `{table_name}` BETWEEN (0) AND (100000) REGIONS 4")
        ).all()
        regions = conn.execute(sa.text(f"SHOW TABLE `{table_name}` REGIONS")).all()
    wait_for_tiflash_replica(tidb_engine, table_name)
    with tidb_engine.connect() as conn:
        count = conn.execute(
            sa.text(
                f"SELECT /*+ READ_FROM_STORAGE(TIFLASH[`{table_name}`]) */ COUNT(*)"
                f" FROM `{table_name}`"
            )
        ).scalar()
    assert len(regions) == 1
    assert count == 100
