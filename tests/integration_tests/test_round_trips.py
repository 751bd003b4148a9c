"""Round trips per store call, counted by a proxy between the store and a real TiDB.

Against TiDB Cloud from another region every round trip costs 20-80 ms, so these counts are
the latency of each call there. After a store's first call (which reads the table's
description once), the pinned counts are: one per search, sync or async, filtered or not; one
per read by id or count; one per write statement plus the COMMIT (``LOAD DATA LOCAL`` is two:
the server asks for the file, then answers).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from helpers.latency_proxy import LatencyProxy
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.local import LocalTiDB

DIM = 8
ROWS = 40
FILTER = {"half": 1}  # matches every other row


@pytest.fixture(scope="module")
def proxy(local_tidb: LocalTiDB) -> Iterator[LatencyProxy]:
    # No delay: only the counts matter here (timings belong to the benchmarks).
    with LatencyProxy(local_tidb.port, max_connections=256) as p:
        yield p


@pytest.fixture
def store(proxy: LatencyProxy, local_tidb: LocalTiDB) -> Iterator[TiDBVectorStore]:
    s = TiDBVectorStore(
        DeterministicFakeEmbedding(size=DIM),
        connection_string=proxy.url(local_tidb.url),
        table_name=f"rt_{uuid.uuid4().hex[:12]}",
        embedding_dimension=DIM,
    )
    vectors = np.random.default_rng(3).normal(size=(ROWS, DIM))
    s.add_embeddings(
        [f"text {i}" for i in range(ROWS)],
        vectors,
        [{"half": i % 2, "i": i} for i in range(ROWS)],
        ids=[f"id{i}" for i in range(ROWS)],
    )
    yield s
    s.drop_table()
    s.close()


def _count(proxy: LatencyProxy, call: Callable[[], Any]) -> int:
    call()  # warm: table description read, pools filled
    proxy.reset()
    call()
    return proxy.round_trips


def _acount(proxy: LatencyProxy, store: TiDBVectorStore, call: Callable[[], Any]) -> int:
    async def main() -> int:
        await call()
        proxy.reset()
        await call()
        n = proxy.round_trips
        await store.aclose()
        return n

    return asyncio.run(main())


@pytest.mark.parametrize(("filter", "strategy"), [(None, None), (FILTER, "pre"), (FILTER, "post")])
def test_a_search_is_one_round_trip(
    store: TiDBVectorStore,
    proxy: LatencyProxy,
    filter: dict[str, Any] | None,
    strategy: str | None,
) -> None:
    def search() -> None:
        docs = store.similarity_search("text 3", k=3, filter=filter, filter_strategy=strategy)
        assert len(docs) == 3
        assert filter is None or all(d.metadata["half"] == 1 for d in docs)

    assert _count(proxy, search) == 1


@pytest.mark.parametrize(("filter", "strategy"), [(None, None), (FILTER, "pre"), (FILTER, "post")])
def test_an_async_search_is_one_round_trip(
    store: TiDBVectorStore,
    proxy: LatencyProxy,
    filter: dict[str, Any] | None,
    strategy: str | None,
) -> None:
    async def search() -> None:
        docs = await store.asimilarity_search(
            "text 3", k=3, filter=filter, filter_strategy=strategy
        )
        assert len(docs) == 3

    assert _acount(proxy, store, search) == 1


def test_the_first_call_reads_the_table_description_once(
    store: TiDBVectorStore, proxy: LatencyProxy, local_tidb: LocalTiDB
) -> None:
    fresh = TiDBVectorStore(
        DeterministicFakeEmbedding(size=DIM),
        connection_string=proxy.url(local_tidb.url),
        table_name=store.table_name,
    )
    statements: list[str] = []
    sa.event.listen(
        fresh._engines.sync_read,
        "before_cursor_execute",
        lambda conn, cursor, sql, *args: statements.append(sql),
    )
    fresh.similarity_search("text 1", k=2, filter=FILTER)
    first = list(statements)
    proxy.reset()
    fresh.similarity_search("text 1", k=2, filter=FILTER)
    fresh.close()
    # Columns and indexes in one read, the TiFlash question once, then the search itself.
    assert len(first) == 3
    assert "INFORMATION_SCHEMA.COLUMNS" in first[0]
    assert "INFORMATION_SCHEMA.STATISTICS" in first[0]
    assert proxy.round_trips == 1
    assert len(statements) == 4


def test_reads_by_id_and_count_are_one_round_trip(
    store: TiDBVectorStore, proxy: LatencyProxy
) -> None:
    assert _count(proxy, lambda: store.get_by_ids(["id1", "id2"])) == 1
    assert _count(proxy, store.count) == 1
    assert _acount(proxy, store, lambda: store.aget_by_ids(["id1"])) == 1
    assert _acount(proxy, store, store.acount) == 1


@pytest.mark.parametrize(("bulk_load", "per_batch"), [(True, 3), (False, 2)])
def test_a_write_batch_is_its_statement_plus_the_commit(
    proxy: LatencyProxy, local_tidb: LocalTiDB, bulk_load: bool, per_batch: int
) -> None:
    store = TiDBVectorStore(
        DeterministicFakeEmbedding(size=DIM),
        connection_string=proxy.url(local_tidb.url),
        table_name=f"rt_{uuid.uuid4().hex[:12]}",
        embedding_dimension=DIM,
        bulk_load=bulk_load,
        batch_size=10,
    )
    try:
        texts = [f"t{i}" for i in range(25)]  # three batches
        store.create_table()
        rounds = _count(proxy, lambda: store.add_texts(texts, ids=texts))
        # LOAD DATA LOCAL: statement, the server's file request answered, COMMIT.
        assert rounds == 3 * per_batch
        asyncio.run(store.aadd_texts(texts, ids=texts))  # warm the async side
        assert _acount(proxy, store, lambda: store.aadd_texts(texts, ids=texts)) == rounds
    finally:
        store.drop_table()
        store.close()


def test_delete_is_one_statement_plus_the_commit(
    store: TiDBVectorStore, proxy: LatencyProxy
) -> None:
    assert _count(proxy, lambda: store.delete(["id1", "id2"])) == 2
    assert _count(proxy, lambda: store.delete(filter={"i": {"$gte": 30}})) == 2
    assert _acount(proxy, store, lambda: store.adelete(["id3"])) == 2
    assert store.count() == ROWS - 3 - 10


def test_a_connection_returned_mid_transaction_is_still_rolled_back(
    store: TiDBVectorStore,
) -> None:
    # The ROLLBACK is skipped only after the store's own COMMIT: a raw connection borrowed
    # from store.engine and returned with an open transaction is rolled back by the pool.
    table = store.table_name
    raw = store.engine.raw_connection()
    raw.cursor().execute(f"DELETE FROM `{table}` WHERE id = 'id5'")
    raw.close()
    raw = store.engine.raw_connection()  # the same pooled connection
    try:
        cursor = raw.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
        assert cursor.fetchone()[0] == ROWS  # type: ignore[index]
    finally:
        raw.close()
    assert [d.id for d in store.get_by_ids(["id5"])] == ["id5"]
