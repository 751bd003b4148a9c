"""TiDBSaver and TiDBStore over verified TLS, on the sync (PyMySQL) and async (aiomysql) paths.

A local tidb-server serves TLS with a throwaway CA; each path checks that its own connection is
encrypted (``Ssl_cipher``), and a certificate the client cannot verify is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata

from langchain_tidb_bedrock import TiDBEngine
from langchain_tidb_bedrock.db.runner import read
from langchain_tidb_bedrock.langgraph import TiDBSaver, TiDBStore
from langchain_tidb_bedrock.local import LocalTiDB


@pytest.fixture(scope="module")
def tls_tidb() -> Iterator[LocalTiDB]:
    with LocalTiDB(tls=True) as server:
        yield server


@pytest.fixture
def tls_engine(tls_tidb: LocalTiDB) -> Iterator[TiDBEngine]:
    with TiDBEngine(tls_tidb.url, tls=True, ca_path=str(tls_tidb.ca_path)) as engine:
        yield engine


def _cipher() -> Any:
    rows = yield from read("SHOW STATUS LIKE 'Ssl_cipher'")
    return rows[0][1]


def _config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


def test_saver_and_store_over_tls_sync(tls_engine: TiDBEngine) -> None:
    prefix = f"tls_{uuid.uuid4().hex[:8]}_"
    saver = TiDBSaver(engine=tls_engine, table_prefix=prefix)
    cp = generate_checkpoint(channel_values={"m": ["hi"]}, channel_versions={"m": 1})
    saver.put(_config("t"), cp, generate_metadata(), {"m": 1})
    tup = saver.get_tuple(_config("t"))
    assert tup is not None
    assert tup.checkpoint["channel_values"] == {"m": ["hi"]}
    store = TiDBStore(engine=tls_engine, table_prefix=prefix)
    store.put(("u",), "k", {"v": 1})
    item = store.get(("u",), "k")
    assert item is not None
    assert item.value == {"v": 1}
    assert tls_engine.run(_cipher())  # this path's connections are encrypted


async def test_saver_and_store_over_tls_async(tls_engine: TiDBEngine) -> None:
    prefix = f"tls_{uuid.uuid4().hex[:8]}_"
    saver = TiDBSaver(engine=tls_engine, table_prefix=prefix)
    cp = generate_checkpoint(channel_values={"m": ["hi"]}, channel_versions={"m": 1})
    await saver.aput(_config("t"), cp, generate_metadata(), {"m": 1})
    tup = await saver.aget_tuple(_config("t"))
    assert tup is not None
    assert tup.checkpoint["channel_values"] == {"m": ["hi"]}
    store = TiDBStore(engine=tls_engine, table_prefix=prefix)
    await store.aput(("u",), "k", {"v": 2})
    item = await store.aget(("u",), "k")
    assert item is not None
    assert item.value == {"v": 2}
    assert await tls_engine.arun(_cipher())


def test_an_unverifiable_certificate_is_refused(tls_tidb: LocalTiDB) -> None:
    # TLS on, but verified against the system bundle: the throwaway CA is not in it.
    saver = TiDBSaver(connection_string=tls_tidb.url, tls=True)
    with pytest.raises(sa.exc.OperationalError) as caught:
        saver.get_tuple(_config("t"))
    saver.close()
    assert "certificate verify failed" in str(caught.value).lower()
