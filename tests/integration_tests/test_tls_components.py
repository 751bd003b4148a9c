"""The record manager, the stores and the caches go through TiDBEngine's TLS policy: against a
tidb-server serving TLS with a throwaway CA, each works (sync and async) when given the CA and
is refused without it (the certificate is verified, never skipped)."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.outputs import Generation

from langchain_tidb_bedrock import (
    TiDBByteStore,
    TiDBCache,
    TiDBDocStore,
    TiDBEngine,
    TiDBRecordManager,
    TiDBSemanticCache,
)
from langchain_tidb_bedrock.local import LocalTiDB


@pytest.fixture(scope="module")
def tls_tidb() -> Iterator[LocalTiDB]:
    with LocalTiDB(tls=True) as server:
        yield server


@pytest.fixture
def tls_versions() -> Iterator[list[str]]:
    """The TLS version of every new pooled connection (sync and async) made during the test."""
    seen: list[str] = []

    def record(dbapi_connection: Any, record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        seen.append(str(cur.fetchone()[1]))
        cur.close()

    sa.event.listen(sa.pool.Pool, "connect", record)
    yield seen
    sa.event.remove(sa.pool.Pool, "connect", record)


def _verification_failed(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _name() -> str:
    return f"tls_{uuid.uuid4().hex[:12]}"


# Each family: build the components from connection settings, then a sync and an async round trip.


def _record_manager(**kw: Any) -> Any:
    return TiDBRecordManager("tls", table_name=_name(), **kw)


def _record_manager_sync(rm: Any) -> None:
    rm.update(["a"], time_at_least=rm.get_time())
    assert rm.exists(["a", "b"]) == [True, False]


async def _record_manager_async(rm: Any) -> None:
    await rm.aupdate(["b"], time_at_least=await rm.aget_time())
    assert await rm.aexists(["a", "b"]) == [True, True]


def _stores(**kw: Any) -> Any:
    return TiDBByteStore(table_name=_name(), **kw), TiDBDocStore(table_name=_name(), **kw)


def _stores_sync(pair: Any) -> None:
    bytes_store, docs = pair
    bytes_store.mset([("k", b"v")])
    docs.mset([("d", Document("doc"))])
    assert bytes_store.mget(["k"]) == [b"v"]
    assert docs.mget(["d"]) == [Document("doc")]


async def _stores_async(pair: Any) -> None:
    bytes_store, docs = pair
    await bytes_store.amset([("k2", b"v2")])
    assert [k async for k in bytes_store.ayield_keys()] == ["k", "k2"]
    assert await docs.amget(["d"]) == [Document("doc")]


def _caches(**kw: Any) -> Any:
    emb = DeterministicFakeEmbedding(size=8)
    return TiDBCache(table_name=_name(), **kw), TiDBSemanticCache(emb, table_name=_name(), **kw)


def _caches_sync(pair: Any) -> None:
    for cache in pair:
        cache.update("p", "m", [Generation(text="a")])
        assert cache.lookup("p", "m") == [Generation(text="a")]


async def _caches_async(pair: Any) -> None:
    for cache in pair:
        await cache.aupdate("q", "m", [Generation(text="b")])
        assert await cache.alookup("q", "m") == [Generation(text="b")]


FAMILIES = {
    "record_manager": (_record_manager, _record_manager_sync, _record_manager_async),
    "storage": (_stores, _stores_sync, _stores_async),
    "caches": (_caches, _caches_sync, _caches_async),
}


def _parts(built: Any) -> list[Any]:
    return list(built) if isinstance(built, tuple) else [built]


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_works_with_the_ca_sync_and_async(
    family: str, tls_tidb: LocalTiDB, tls_versions: list[str]
) -> None:
    build, sync_check, async_check = FAMILIES[family]
    # A private engine from connection settings: the component hands TLS to TiDBEngine.
    built = build(connection_string=tls_tidb.url, tls=True, ca_path=str(tls_tidb.ca_path))
    try:
        sync_check(built)
        await async_check(built)
    finally:
        for part in _parts(built):
            await part.aclose()
    assert len(tls_versions) >= 2  # sync and async pools
    assert all(v.startswith("TLSv1.") for v in tls_versions), tls_versions


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_shared_tls_engine(family: str, tls_tidb: LocalTiDB) -> None:
    build, sync_check, async_check = FAMILIES[family]
    async with TiDBEngine(tls_tidb.url, tls=True, ca_path=str(tls_tidb.ca_path)) as engine:
        built = build(engine=engine)
        sync_check(built)
        await async_check(built)


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_refused_without_the_ca(
    family: str, tls_tidb: LocalTiDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDB_CA_PATH", raising=False)
    build, sync_check, async_check = FAMILIES[family]
    built = build(connection_string=tls_tidb.url, tls=True)  # the system bundle only
    try:
        with pytest.raises(sa.exc.OperationalError) as sync_error:
            sync_check(built)
        assert _verification_failed(sync_error.value)
        with pytest.raises(sa.exc.OperationalError) as async_error:
            await async_check(built)
        assert _verification_failed(async_error.value)
    finally:
        for part in _parts(built):
            await part.aclose()
