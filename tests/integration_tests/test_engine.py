"""TiDBEngine: one connection policy and one set of pools shared by every component."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import ConnectionConfigError, TiDBEngine, TiDBVectorStore
from langchain_tidb_bedrock.db.runner import Op, Rows, read
from tests.helpers.latency_proxy import LatencyProxy


def _count_connects(engine: TiDBEngine) -> list[int]:
    opened = [0]

    def bump(*_: object) -> None:
        opened[0] += 1

    for pool in {engine.sync, engine.sync_read}:
        sa.event.listen(pool, "connect", bump)
    return opened


def _select_one() -> Op[Rows]:
    rows = yield from read(sa.text("SELECT 1"))
    return rows


def _workload(store: TiDBVectorStore, tag: str) -> None:
    store.add_texts([f"{tag} one", f"{tag} two"], ids=[f"{tag}1", f"{tag}2"])
    assert [d.id for d in store.similarity_search(f"{tag} one", k=1)] == [f"{tag}1"]
    assert store.count() == 2


@pytest.fixture
def tables(tidb_url: str) -> Iterator[list[str]]:
    names = [f"t_eng_{uuid.uuid4().hex[:12]}" for _ in range(3)]
    yield names
    cleanup = sa.create_engine(tidb_url)
    with cleanup.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS `{name}`"))
    cleanup.dispose()


def test_stores_on_one_engine_share_its_pools(tidb_url: str, tables: list[str]) -> None:
    emb = DeterministicFakeEmbedding(size=8)
    alone = TiDBEngine(tidb_url)
    opened_alone = _count_connects(alone)
    _workload(TiDBVectorStore(emb, engine=alone, table_name=tables[0]), "a")
    alone.close()

    shared = TiDBEngine(tidb_url)
    opened_shared = _count_connects(shared)
    first = TiDBVectorStore(emb, engine=shared, table_name=tables[1])
    second = TiDBVectorStore(emb, engine=shared, table_name=tables[2])
    _workload(first, "b")
    _workload(second, "c")
    assert shared.run(_select_one())[0][0] == 1
    # Two stores and a plain operation open no more connections than one store alone.
    assert 0 < opened_shared[0] <= opened_alone[0]
    assert first.tidb_engine is second.tidb_engine is shared
    # A store never closes an engine it was given: the other store keeps working.
    first.close()
    assert second.count() == 2
    shared.close()


async def test_async_components_share_one_loop_pool(tidb_url: str, tables: list[str]) -> None:
    emb = DeterministicFakeEmbedding(size=8)
    async with TiDBEngine(tidb_url) as engine:
        first = TiDBVectorStore(emb, engine=engine, table_name=tables[0])
        second = TiDBVectorStore(emb, engine=engine, table_name=tables[1])
        await first.aadd_texts(["x"], ids=["x"])
        await second.aadd_texts(["y"], ids=["y"])
        rows = await engine.arun(_select_one())
        assert rows[0][0] == 1
        pairs = list(engine._async.values())
        assert len(pairs) == 1  # one read/write pool pair for this loop, whoever asks
        assert await first.acount() == 1
        assert await second.acount() == 1


def test_engine_settings_cannot_be_mixed_with_a_shared_engine(tidb_url: str) -> None:
    engine = TiDBEngine(tidb_url)
    with pytest.raises(ConnectionConfigError, match="connection_string, tls"):
        TiDBVectorStore(None, engine=engine, connection_string=tidb_url, tls=False)
    engine.close()


def test_from_env_reads_tidb_variables_and_falls_back_only_when_nothing_is_set() -> None:
    with pytest.raises(ConnectionConfigError, match="TIDB_HOST"):
        TiDBEngine.from_env({}, offline=False)
    local = TiDBEngine.from_env({})  # nothing set: the local server, started on first use
    assert "local tidb-server" in repr(local)
    assert local._pools is None  # no I/O yet
    with pytest.raises(ConnectionConfigError, match="TIDB_USER and TIDB_PASSWORD are set"):
        TiDBEngine.from_env({"TIDB_USER": "app", "TIDB_PASSWORD": "pw"})  # a misspelt host
    engine = TiDBEngine.from_env({"TIDB_HOST": "127.0.0.1", "TIDB_PORT": "4999"})
    assert (engine.url.host, engine.url.port) == ("127.0.0.1", 4999)
    assert "4999" in repr(engine)
    secret = TiDBEngine.from_env({"TIDB_URL": "mysql+pymysql://u:hunter2@127.0.0.1:4000/db"})
    assert "hunter2" not in repr(secret)
    with pytest.raises(ConnectionConfigError, match="url="):
        TiDBEngine()


def test_a_silent_connection_fails_the_read_instead_of_hanging(local_tidb: object) -> None:
    port = local_tidb.port  # type: ignore[attr-defined]
    url = local_tidb.url  # type: ignore[attr-defined]
    with LatencyProxy(port, lifetime=60) as proxy:
        engine = TiDBEngine(proxy.url(url), read_timeout=1.0)
        assert engine.run(_select_one())[0][0] == 1
        proxy.rtt = 30.0  # the server's answers now arrive 30 s late: a silent connection
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError):
            engine.run(_select_one())
        # One timeout, and the one retry on a fresh connection: far from the 30 s silence.
        assert time.monotonic() - started < 15
        engine.close()


async def test_a_silent_connection_fails_the_async_read(local_tidb: object) -> None:
    port = local_tidb.port  # type: ignore[attr-defined]
    url = local_tidb.url  # type: ignore[attr-defined]
    with LatencyProxy(port, lifetime=60) as proxy:
        engine = TiDBEngine(proxy.url(url), read_timeout=1.0)
        assert (await engine.arun(_select_one()))[0][0] == 1
        proxy.rtt = 30.0
        started = time.monotonic()
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            await engine.arun(_select_one())
        assert time.monotonic() - started < 15
        proxy.rtt = 0.0
        await engine.aclose()


def test_a_write_on_a_connection_the_server_closed_is_retried(
    tidb_url: str, tables: list[str], tidb_engine: sa.Engine
) -> None:
    # What a TiDB restart does to a pooled connection used within the idle-ping window.
    store = TiDBVectorStore(
        DeterministicFakeEmbedding(size=8),
        connection_string=tidb_url,
        table_name=tables[0],
        bulk_load=False,
    )
    store.add_texts(["a", "b"], ids=["1", "2"])
    with store.engine.connect() as conn:  # the write pool
        conn_id = conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
        conn.rollback()
    with tidb_engine.connect() as admin:
        admin.execute(sa.text(f"KILL {int(conn_id)}"))  # type: ignore[arg-type]
    store.delete(["1"])  # the first write after the cut succeeds
    store.add_texts(["c"], ids=["3"])
    assert sorted(d.id or "" for d in store.get_by_ids(["1", "2", "3"])) == ["2", "3"]
    store.close()


async def test_an_async_write_on_a_closed_connection_is_retried(
    tidb_url: str, tables: list[str], tidb_engine: sa.Engine
) -> None:
    store = TiDBVectorStore(
        DeterministicFakeEmbedding(size=8),
        connection_string=tidb_url,
        table_name=tables[0],
        bulk_load=False,
    )
    await store.aadd_texts(["a", "b"], ids=["1", "2"])
    _, write_engine = await store.tidb_engine._engines_for_loop()
    async with write_engine.connect() as conn:
        conn_id = (await conn.execute(sa.text("SELECT CONNECTION_ID()"))).scalar()
        await conn.rollback()
    with tidb_engine.connect() as admin:
        admin.execute(sa.text(f"KILL {int(conn_id)}"))  # type: ignore[arg-type]
    await store.adelete(["1"])
    assert [d.id for d in await store.aget_by_ids(["1", "2"])] == ["2"]
    await store.aclose()


@pytest.mark.parametrize("bulk_load", [False, True])
@pytest.mark.parametrize("cuts", [1, 2])
def test_a_connection_lost_during_commit(
    local_tidb: object, tables: list[str], tidb_engine: sa.Engine, bulk_load: bool, cuts: int
) -> None:
    from langchain_tidb_bedrock import WriteError

    with LatencyProxy(local_tidb.port, lifetime=60) as proxy:  # type: ignore[attr-defined]
        store = TiDBVectorStore(
            DeterministicFakeEmbedding(size=8),
            connection_string=proxy.url(local_tidb.url),  # type: ignore[attr-defined]
            table_name=tables[0],
            bulk_load=bulk_load,
        )
        store.add_texts(["warm"], ids=["w"])
        # The whole COM_QUERY packet of COMMIT (not "SET AUTOCOMMIT" on a new connection).
        proxy.cut_after, proxy.cuts_left = b"\x07\x00\x00\x00\x03COMMIT", cuts
        texts = [f"passage {i}" for i in range(50)]
        if cuts == 1:
            # One lost COMMIT: the upsert is idempotent, so it ran again and succeeded.
            assert len(store.add_texts(texts, ids=[str(i) for i in range(50)])) == 50
        else:
            # Lost again: the error says the rows may be stored (never "none after").
            with pytest.raises(WriteError, match="may be stored") as caught:
                store.add_texts(texts, ids=[str(i) for i in range(50)])
            assert caught.value.commit_unknown
            assert "none after are stored" not in str(caught.value)
        assert proxy.cuts_made == cuts
        store.close()
    # Every COMMIT reached the server: all 50 rows are there, as the error allowed.
    with tidb_engine.connect() as conn:
        stored = conn.execute(sa.text(f"SELECT COUNT(*) FROM `{tables[0]}`")).scalar()
    assert stored == 51
