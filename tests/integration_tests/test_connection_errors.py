"""No usable connection to TiDB: one named error (``TiDBConnectionError``), sync and async.

Before it, a call made while the server was down or restarting raised SQLAlchemy's raw
``OperationalError`` with the statement and a link to SQLAlchemy's docs (the fault campaign
counted 104 of them). The named error is still an ``OperationalError`` (``orig`` kept), so code
that caught the driver's error keeps working.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from helpers.latency_proxy import LatencyProxy
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import TiDBEngine, TiDBVectorStore
from langchain_tidb_bedrock.db.runner import Op, Rows, read
from langchain_tidb_bedrock.errors import TiDBBedrockError, TiDBConnectionError
from langchain_tidb_bedrock.local import LocalTiDB

PASSWORD = "s3cr3t-pw"  # noqa: S105 - a made-up one, to check it never shows
PRIVATE_TEXT = "the private text of a document that must never reach an error message"


def _assert_clear(exc: BaseException, *, hidden: str | None = None) -> None:
    assert isinstance(exc, TiDBConnectionError)
    assert isinstance(exc, TiDBBedrockError)
    assert isinstance(exc, sa.exc.OperationalError)  # what callers caught before
    message = str(exc)
    assert "unreachable or closed the connection" in message
    assert "client error 20" in message  # the driver's code: 2003, 2006 or 2013
    assert "Background on this error" not in message
    assert PRIVATE_TEXT not in message
    if hidden is not None:
        assert hidden not in message


def test_a_server_that_is_not_there() -> None:
    url = f"mysql+pymysql://app:{PASSWORD}@127.0.0.1:1/test"  # nothing listens on port 1
    store = TiDBVectorStore(DeterministicFakeEmbedding(size=4), connection_string=url)
    try:
        with pytest.raises(TiDBConnectionError) as info:
            store.similarity_search("x", k=1)
        _assert_clear(info.value, hidden=PASSWORD)
        assert "2003" in str(info.value)
        with pytest.raises(TiDBConnectionError) as info:
            store.add_texts([PRIVATE_TEXT], ids=["a"])
        _assert_clear(info.value, hidden=PASSWORD)
    finally:
        store.close()


def _store(url: str, table: str) -> TiDBVectorStore:
    return TiDBVectorStore(
        DeterministicFakeEmbedding(size=4), connection_string=url, table_name=table
    )


def test_the_server_going_away_between_calls(local_tidb: LocalTiDB) -> None:
    table = f"gone_{uuid.uuid4().hex[:8]}"
    proxy = LatencyProxy(local_tidb.port).start()
    store = _store(proxy.url(local_tidb.url), table)
    try:
        store.add_texts(["kept"], ids=["k"])
        assert [d.id for d in store.similarity_search("kept", k=1)] == ["k"]
        proxy.stop()  # pooled connections cut, and nothing listens any more
        for call in (
            lambda: store.similarity_search("x", k=1),
            lambda: store.add_texts([PRIVATE_TEXT], ids=["s"]),
            lambda: store.delete(["k"]),
            lambda: store.get_by_ids(["k"]),
        ):
            with pytest.raises(TiDBConnectionError) as info:
                call()
            _assert_clear(info.value)
    finally:
        store.close()
        proxy.stop()
    # Nothing of the failed calls reached the table: "kept" is there, the private text is not.
    check = _store(local_tidb.url, table)
    try:
        assert [d.id for d in check.get_by_ids(["k", "s"])] == ["k"]
    finally:
        check.drop_table()
        check.close()


async def test_async_calls_name_it_too(local_tidb: LocalTiDB) -> None:
    table = f"agone_{uuid.uuid4().hex[:8]}"
    proxy = LatencyProxy(local_tidb.port).start()
    store = _store(proxy.url(local_tidb.url), table)
    try:
        await store.aadd_texts(["kept"], ids=["k"])
        assert [d.id for d in await store.asimilarity_search("kept", k=1)] == ["k"]
        proxy.stop()
        with pytest.raises(TiDBConnectionError) as info:
            await store.asimilarity_search("x", k=1)
        _assert_clear(info.value)
        with pytest.raises(TiDBConnectionError) as info:
            await store.adelete(["k"])
        _assert_clear(info.value)
    finally:
        await store.aclose()
        proxy.stop()
    check = _store(local_tidb.url, table)
    try:
        assert [d.id for d in check.get_by_ids(["k"])] == ["k"]
    finally:
        check.drop_table()
        check.close()


def test_a_sql_error_is_not_renamed(local_tidb: LocalTiDB) -> None:
    # Only "no usable connection" is renamed: TiDB's own refusals keep their driver error.
    engine = TiDBEngine(local_tidb.url)
    try:
        with pytest.raises(sa.exc.ProgrammingError) as info:
            engine.run(_read_missing_table())
        assert not isinstance(info.value, TiDBConnectionError)
    finally:
        engine.close()


def _read_missing_table() -> Op[Rows]:
    rows = yield from read("SELECT * FROM no_such_table_anywhere")
    return rows
