"""TLS for the chat history and the loader: they reach TiDB only through the engine's policy.

Against a local tidb-server serving TLS with a throwaway CA: verified on the sync and async
paths; a server without TLS, or a certificate from another CA, is refused on both.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from langchain_core.messages import HumanMessage

from langchain_tidb_bedrock import TiDBEngine
from langchain_tidb_bedrock.chat_message_histories import TiDBChatMessageHistory
from langchain_tidb_bedrock.document_loaders import TiDBLoader
from langchain_tidb_bedrock.local import LocalTiDB
from langchain_tidb_bedrock.local.tidb import make_test_certificates

CR_SSL_CONNECTION_ERROR = 2026


@pytest.fixture(scope="module")
def tls_tidb() -> Iterator[LocalTiDB]:
    with LocalTiDB(tls=True) as server:
        yield server


@pytest.fixture
def other_ca(tmp_path: Path) -> str:
    ca, _, _ = make_test_certificates(tmp_path / "other")
    return str(ca)


@pytest.fixture
def ssl_versions() -> Iterator[list[str]]:
    """The TLS version of every new pooled connection (sync and async) during the test."""
    seen: list[str] = []

    def record(dbapi_connection: Any, record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        seen.append(str(cur.fetchone()[1]))
        cur.close()

    sa.event.listen(sa.pool.Pool, "connect", record)
    yield seen
    sa.event.remove(sa.pool.Pool, "connect", record)


def _refused_by_verification(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _plaintext_refused(exc: sa.exc.DBAPIError) -> bool:
    return isinstance(exc.orig, pymysql.err.OperationalError) and (
        exc.orig.args[0] == CR_SSL_CONNECTION_ERROR
    )


def test_sync_history_and_loader_verify_tls(tls_tidb: LocalTiDB, ssl_versions: list[str]) -> None:
    table = f"tls_chat_{uuid.uuid4().hex[:10]}"
    with TiDBEngine(tls_tidb.url, tls=True, ca_path=str(tls_tidb.ca_path)) as engine:
        history = TiDBChatMessageHistory("s", engine=engine, table_name=table)
        history.add_messages([HumanMessage("over TLS")])
        assert [m.content for m in history.messages] == ["over TLS"]
        loader = TiDBLoader(
            f"SELECT session_id, seq FROM `{table}`", engine=engine, id_column="seq"
        )
        assert [d.id for d in loader.load()] == ["1"]
        history.delete_session("s")
        with engine.sync.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE `{table}`"))
    assert len(ssl_versions) >= 2  # the read pool and the write pool
    assert all(v.startswith("TLSv1.") for v in ssl_versions), ssl_versions


async def test_async_history_and_loader_verify_tls(
    tls_tidb: LocalTiDB, ssl_versions: list[str]
) -> None:
    table = f"tls_chat_{uuid.uuid4().hex[:10]}"
    engine = TiDBEngine(tls_tidb.url, tls=True, ca_path=str(tls_tidb.ca_path))
    try:
        history = TiDBChatMessageHistory("s", engine=engine, table_name=table)
        await history.aadd_messages([HumanMessage("async TLS")])
        assert [m.content for m in await history.aget_messages()] == ["async TLS"]
        loader = TiDBLoader(f"SELECT seq FROM `{table}`", engine=engine, id_column="seq")
        assert [d.id async for d in loader.alazy_load()] == ["1"]
        with engine.sync.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE `{table}`"))
    finally:
        await engine.aclose()
    assert ssl_versions
    assert all(v.startswith("TLSv1.") for v in ssl_versions), ssl_versions


def _sync_calls(engine: TiDBEngine) -> list[Callable[[], Any]]:
    history = TiDBChatMessageHistory("s", engine=engine, table_name="never_made")
    return [
        lambda: history.messages,
        lambda: history.add_messages([HumanMessage("secret")]),
        lambda: TiDBLoader("SELECT 1", engine=engine).load(),
    ]


def _async_calls(engine: TiDBEngine) -> list[Callable[[], Awaitable[Any]]]:
    history = TiDBChatMessageHistory("s", engine=engine, table_name="never_made")
    return [
        history.aget_messages,
        lambda: history.aadd_messages([HumanMessage("secret")]),
        lambda: TiDBLoader("SELECT 1", engine=engine).aload(),
    ]


def test_sync_refuses_a_server_without_tls(local_tidb: LocalTiDB, other_ca: str) -> None:
    with TiDBEngine(local_tidb.url, tls=True, ca_path=other_ca) as engine:
        for call in _sync_calls(engine):
            with pytest.raises(sa.exc.OperationalError) as info:
                call()
            assert _plaintext_refused(info.value), info.value


async def test_async_refuses_a_server_without_tls(local_tidb: LocalTiDB, other_ca: str) -> None:
    engine = TiDBEngine(local_tidb.url, tls=True, ca_path=other_ca)
    try:
        for call in _async_calls(engine):
            with pytest.raises(sa.exc.OperationalError) as info:
                await call()
            assert _plaintext_refused(info.value), info.value
    finally:
        await engine.aclose()


def test_sync_refuses_a_certificate_from_another_ca(tls_tidb: LocalTiDB, other_ca: str) -> None:
    with TiDBEngine(tls_tidb.url, tls=True, ca_path=other_ca) as engine:
        for call in _sync_calls(engine):
            with pytest.raises(sa.exc.OperationalError) as info:
                call()
            assert _refused_by_verification(info.value)


async def test_async_refuses_a_certificate_from_another_ca(
    tls_tidb: LocalTiDB, other_ca: str
) -> None:
    engine = TiDBEngine(tls_tidb.url, tls=True, ca_path=other_ca)
    try:
        for call in _async_calls(engine):
            with pytest.raises(sa.exc.OperationalError) as info:
                await call()
            assert _refused_by_verification(info.value)
    finally:
        await engine.aclose()
