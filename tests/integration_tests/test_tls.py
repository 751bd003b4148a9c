"""TLS for real: the store against a local tidb-server that serves TLS with a throwaway CA.

The certificate is verified (chain and host name) on the sync (PyMySQL) and the async
(aiomysql) path; a server without TLS, or a certificate from another CA, is refused on both.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.local import LocalTiDB
from langchain_tidb_bedrock.local.tidb import make_test_certificates

CR_SSL_CONNECTION_ERROR = 2026  # the client error for "TLS required, server offers none"


@pytest.fixture(scope="module")
def tls_tidb() -> Iterator[LocalTiDB]:
    with LocalTiDB(tls=True) as server:
        yield server


@pytest.fixture
def other_ca(tmp_path: Path) -> str:
    """A CA that did not sign the server's certificate."""
    ca, _, _ = make_test_certificates(tmp_path / "other")
    return str(ca)


def _store(url: str, ca_path: str | None) -> TiDBVectorStore:
    return TiDBVectorStore(
        DeterministicFakeEmbedding(size=4),
        connection_string=url,
        table_name=f"tls_{uuid.uuid4().hex[:12]}",
        tls=True,
        ca_path=ca_path,
    )


def _client_error(exc: sa.exc.DBAPIError) -> int:
    # aiomysql raises PyMySQL's error classes too.
    assert isinstance(exc.orig, pymysql.err.OperationalError), exc
    return int(exc.orig.args[0])


def _verification_failed(exc: BaseException) -> bool:
    """Whether a certificate verification error is behind ``exc`` (drivers wrap it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


@pytest.fixture
def tls_versions() -> Iterator[dict[str, list[str]]]:
    """The TLS version of every new pooled connection made during the test, by driver.

    Asked on the connection itself right after it is made, through the DBAPI connection that
    SQLAlchemy hands to the pool's ``connect`` event (the store's engines are internal).
    """
    seen: dict[str, list[str]] = {"sync": [], "async": []}

    def record(dbapi_connection: Any, record: Any) -> None:
        driver = "async" if "aiomysql" in type(dbapi_connection).__module__ else "sync"
        cur = dbapi_connection.cursor()
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        seen[driver].append(str(cur.fetchone()[1]))
        cur.close()

    sa.event.listen(sa.pool.Pool, "connect", record)
    yield seen
    sa.event.remove(sa.pool.Pool, "connect", record)


def test_local_tidb_serves_tls_with_its_own_ca(tls_tidb: LocalTiDB, local_tidb: LocalTiDB) -> None:
    assert local_tidb.ca_path is None
    assert tls_tidb.ca_path is not None
    assert tls_tidb.ca_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    for host in ("127.0.0.1", "localhost"):  # both names are in the certificate
        conn = pymysql.connect(
            host=host,
            port=tls_tidb.port,
            user="root",
            ssl_ca=str(tls_tidb.ca_path),
            ssl_verify_cert=True,
            ssl_verify_identity=True,
        )
        with conn, conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
            row = cur.fetchone()
            assert row is not None
            assert str(row[1]).startswith("TLSv1.")


def test_sync_store_verifies_tls(tls_tidb: LocalTiDB, tls_versions: dict[str, list[str]]) -> None:
    store = _store(tls_tidb.url, str(tls_tidb.ca_path))
    try:
        store.add_texts(["over TLS", "still TLS"], ids=["a", "b"])
        assert store.similarity_search("over TLS", k=1)[0].id == "a"
        assert tls_versions["sync"]
        assert all(v.startswith("TLSv1.") for v in tls_versions["sync"]), tls_versions
    finally:
        store.drop_table()
        store.close()


async def test_async_store_verifies_tls(
    tls_tidb: LocalTiDB, tls_versions: dict[str, list[str]]
) -> None:
    store = _store(tls_tidb.url, str(tls_tidb.ca_path))
    try:
        await store.aadd_texts(["over TLS", "still TLS"], ids=["a", "b"])
        assert (await store.asimilarity_search("over TLS", k=1))[0].id == "a"
        assert tls_versions["async"]  # reads run on aiomysql
        every = tls_versions["async"] + tls_versions["sync"]
        assert all(v.startswith("TLSv1.") for v in every), tls_versions
        await store.adrop_table()
    finally:
        await store.aclose()


def test_sync_refuses_a_server_without_tls(local_tidb: LocalTiDB, other_ca: str) -> None:
    store = _store(local_tidb.url, other_ca)
    with pytest.raises(sa.exc.OperationalError) as info:
        store.similarity_search("x", k=1)
    assert _client_error(info.value) == CR_SSL_CONNECTION_ERROR
    store.close()


async def test_async_refuses_a_server_without_tls(local_tidb: LocalTiDB, other_ca: str) -> None:
    store = _store(local_tidb.url, other_ca)
    try:
        # aiomysql on its own falls back to plaintext here (and sends the credentials).
        with pytest.raises(sa.exc.OperationalError) as info:
            await store.asimilarity_search("x", k=1)
        assert _client_error(info.value) == CR_SSL_CONNECTION_ERROR
    finally:
        await store.aclose()


def test_sync_refuses_a_certificate_from_another_ca(tls_tidb: LocalTiDB, other_ca: str) -> None:
    store = _store(tls_tidb.url, other_ca)
    with pytest.raises(sa.exc.OperationalError) as info:
        store.similarity_search("x", k=1)
    assert _verification_failed(info.value)
    store.close()


async def test_async_refuses_a_certificate_from_another_ca(
    tls_tidb: LocalTiDB, other_ca: str
) -> None:
    store = _store(tls_tidb.url, other_ca)
    try:
        with pytest.raises(sa.exc.OperationalError) as info:
            await store.asimilarity_search("x", k=1)
        assert _verification_failed(info.value)
    finally:
        await store.aclose()
