"""Bulk writes through LOAD DATA LOCAL ... REPLACE, and the fallback to INSERT."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.db import bulk
from langchain_tidb_bedrock.db import engine as engines
from langchain_tidb_bedrock.db import runner as write_ops
from langchain_tidb_bedrock.errors import WriteError
from langchain_tidb_bedrock.vectorstores import writes as write_pipeline

AWKWARD = [
    "tab\there",
    "new\nline and \r\n windows",
    "back\\slash \\t not a tab \\N not null",
    "quote ' \" ; DROP TABLE x; --",
    "数据库 ✓ emoji 😀",
    "",
    "NUL \x00 byte",
]


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = bulk.load_rows

    def counting(conn: Any, table: str, rows: Any, columns: Any = bulk.STORE_COLUMNS) -> int:
        calls.append(len(rows))
        return real(conn, table, rows, columns)

    monkeypatch.setattr(engines, "load_rows", counting)
    return calls


@pytest.fixture
def store(tidb_url: str) -> Iterator[TiDBVectorStore]:
    s = TiDBVectorStore(
        DeterministicFakeEmbedding(size=8),
        connection_string=tidb_url,
        table_name=f"bulk_{uuid.uuid4().hex[:10]}",
        batch_size=3,
    )
    yield s
    s.drop_table()
    s.close()


def test_load_data_round_trips_awkward_text_and_metadata(
    store: TiDBVectorStore, loads: list[int]
) -> None:
    ids = [f"id\t{i}\\{i}\n" for i in range(len(AWKWARD))]
    metas = [{"text": t, "path": "C:\\dir\\file", "n": i} for i, t in enumerate(AWKWARD)]
    store.add_texts(AWKWARD, metas, ids=ids)
    assert loads == [3, 3, 1]  # batch_size=3, every batch through LOAD DATA
    back = store.get_by_ids(ids)
    assert [d.id for d in back] == ids
    assert [d.page_content for d in back] == AWKWARD
    assert [d.metadata for d in back] == metas


def test_load_data_replaces_existing_rows(store: TiDBVectorStore, loads: list[int]) -> None:
    store.add_texts(["one", "two"], [{"v": 1}, {"v": 2}], ids=["a", "b"])
    store.add_texts(["uno"], [{"v": 10}], ids=["a"])
    assert len(loads) == 2
    assert store.count() == 2
    assert store.get_by_ids(["a"])[0].page_content == "uno"
    assert store.get_by_ids(["a"])[0].metadata == {"v": 10}
    assert store.similarity_search("uno", k=1)[0].id == "a"


def test_engine_without_the_capability_uses_insert(tidb_url: str, loads: list[int]) -> None:
    engine = sa.create_engine(tidb_url)  # a user's engine: no LOCAL INFILE negotiated
    s = TiDBVectorStore(
        DeterministicFakeEmbedding(size=8),
        engine=engine,
        table_name=f"bulk_{uuid.uuid4().hex[:10]}",
    )
    try:
        s.add_texts(["a", "b"], ids=["1", "2"])
        assert loads == []
        assert s.count() == 2
    finally:
        s.drop_table()
        engine.dispose()


def test_a_passing_load_fault_retries_the_batch_and_keeps_the_fast_path(
    store: TiDBVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = bulk.load_rows

    def flaky(conn: Any, table: str, rows: Any, columns: Any = bulk.STORE_COLUMNS) -> int:
        calls.append(len(rows))
        if len(calls) == 1:
            raise sa.exc.OperationalError("LOAD DATA", {}, Exception(2013, "Lost connection"))
        return real(conn, table, rows, columns)

    monkeypatch.setattr(engines, "load_rows", flaky)
    store.add_texts(["a", "b", "c", "d", "e"], ids=list("abcde"))
    assert calls == [3, 2]  # the failed batch went through INSERT, the next one LOAD DATA
    assert store.count() == 5


def test_refused_load_data_falls_back_to_insert_once(
    store: TiDBVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def refuse(conn: Any, table: str, rows: Any, columns: Any = bulk.STORE_COLUMNS) -> int:
        calls.append(len(rows))
        raise sa.exc.OperationalError("LOAD DATA", {}, Exception(1148, "not allowed"))

    monkeypatch.setattr(engines, "load_rows", refuse)
    store.add_texts(["a", "b", "c", "d", "e"], ids=list("abcde"))
    assert calls == [3]  # tried once, then INSERT for every batch
    assert store.count() == 5


def test_a_real_error_is_raised_not_swallowed(store: TiDBVectorStore) -> None:
    store.add_texts(["seed"], ids=["seed"])
    # A NOT NULL column without a default: TiDB refuses the LOAD and the INSERT retry alike;
    # TiDB's own error reaches the caller, with nothing written, and no document content.
    with store.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE `{store.table_name}` ADD COLUMN x INT NOT NULL"))
    with pytest.raises(WriteError, match="doesn't have a default value") as caught:
        store.add_texts(["secret text a", "b"], ids=["id-1", "id-2"])
    assert caught.value.committed == 0
    assert "documents 0-1" in str(caught.value)
    assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)
    for text in (str(caught.value), str(caught.value.__cause__)):
        assert "secret text" not in text
        assert "id-1" not in text
    assert store.count() == 1


_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "0": "\x00"}


def _read_tsv(text: str) -> list[tuple[str, ...]]:
    """Split and unescape like LOAD DATA does (FIELDS ESCAPED BY '\\')."""
    rows = []
    for line in text.split("\n")[:-1]:
        fields, cur, i = [], [], 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                cur.append(_UNESCAPE[line[i + 1]])
                i += 2
                continue
            if ch == "\t":
                fields.append("".join(cur))
                cur = []
            else:
                cur.append(ch)
            i += 1
        fields.append("".join(cur))
        rows.append(tuple(fields))
    return rows


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(), st.text(), st.text()), min_size=1, max_size=5))
def test_tsv_escaping_is_reversible(rows: list[tuple[str, str, str]]) -> None:
    full = [(a, "[1,2]", b, c) for a, b, c in rows]
    assert _read_tsv(bulk._tsv(full)) == full


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(), st.integers(-(2**63), 2**63 - 1), st.text()), min_size=1, max_size=5
    )
)
def test_tsv_of_any_columns_is_reversible(rows: list[tuple[str, int, str]]) -> None:
    assert _read_tsv(bulk._tsv_any(rows)) == [(a, str(n), b) for a, n, b in rows]


def test_any_table_loads_its_named_columns(tidb_url: str) -> None:
    table = f"bulk_any_{uuid.uuid4().hex[:10]}"
    engine = engines.TiDBEngine(tidb_url)
    insert = f"REPLACE INTO `{table}` (`k`, `n`, `v`, `maybe`) VALUES (%s, %s, %s, %s)"
    rows: list[tuple[Any, ...]] = [
        (f"k{i}", i - 2, AWKWARD[i], None if i % 2 else "x") for i in range(7)
    ]
    step = bulk.LoadRows(table, rows, insert, ("k", "n", "v", "maybe"))
    try:
        engine.run(
            write_ops.write(
                sa.text(
                    f"CREATE TABLE `{table}` (`k` VARCHAR(8) PRIMARY KEY, `n` BIGINT NOT NULL, "
                    "`v` TEXT NOT NULL, `maybe` TEXT NULL)"
                )
            )
        )
        assert engine.run(write_ops.write(step)) == 7
        # REPLACE: loading a key again rewrites its row.
        engine.run(
            write_ops.write(bulk.LoadRows(table, [("k0", 99, "again", None)], insert, step.columns))
        )
        with engine.sync.connect() as conn:
            got = conn.exec_driver_sql(f"SELECT k, n, v, maybe FROM `{table}` ORDER BY k").all()
        assert [tuple(r) for r in got] == [("k0", 99, "again", None), *rows[1:]]
    finally:
        with engine.sync.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{table}`")
        engine.close()


def test_large_documents_are_split_into_transactions_and_oversized_refused(
    store: TiDBVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    real = bulk.load_rows

    def counting(conn: Any, table: str, rows: Any, columns: Any = bulk.STORE_COLUMNS) -> int:
        writes.append(len(rows))
        return real(conn, table, rows, columns)

    monkeypatch.setattr(engines, "load_rows", counting)
    monkeypatch.setattr(write_pipeline, "_TXN_BYTES", 250_000)  # ~2 of the 100 KB docs per txn
    docs = [f"{i} " + "x" * 100_000 for i in range(5)]
    store.add_texts(docs, ids=[str(i) for i in range(5)], batch_size=5)
    assert writes == [2, 2, 1]
    assert [d.page_content for d in store.get_by_ids(["0", "4"])] == [docs[0], docs[4]]
    huge = "y" * (6 * 2**20)
    with pytest.raises(ValueError, match=r"position 1 is 6\.0 MiB"):
        store.add_texts(["small", huge], ids=["a", "b"])
    assert store.count() == 5


def test_server_cannot_pull_another_file_during_load(
    store: TiDBVectorStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rogue server answers our LOAD DATA with a request for some other file: the guard
    # refuses, and the secret's bytes never reach the socket.
    from pymysql import connections as pm

    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = s3cr3t")
    sent: list[bytes] = []
    real_write = pm.Connection.write_packet

    def spy(self: Any, payload: bytes) -> None:
        sent.append(bytes(payload))
        real_write(self, payload)

    class RogueLoadPacket(pm.LoadLocalPacketWrapper):
        @property
        def filename(self) -> bytes:  # type: ignore[override]
            return str(secret).encode()

        @filename.setter
        def filename(self, value: Any) -> None:
            pass

    monkeypatch.setattr(pm.Connection, "write_packet", spy)
    monkeypatch.setattr(pm, "LoadLocalPacketWrapper", RogueLoadPacket)
    with pytest.raises(PermissionError, match="refused the server's request for local file"):
        store.add_texts(["a", "b"], ids=["1", "2"], batch_size=2)
    assert not any(b"s3cr3t" in p for p in sent)
    assert store.count() == 0  # nothing was written to that server either


def test_guard_leaves_other_pymysql_connections_alone(tidb_url: str, tmp_path: Any) -> None:
    import pymysql

    u = sa.engine.make_url(tidb_url)
    conn = pymysql.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        database=u.database,
        local_infile=True,
        autocommit=True,
    )
    data = tmp_path / "rows.tsv"
    data.write_text("1\tx\n2\ty\n")
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE t_guard_other (id INT PRIMARY KEY, v TEXT)")
        cur.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE t_guard_other")
        cur.execute("SELECT COUNT(*) FROM t_guard_other")
        assert cur.fetchone() == (2,)
    finally:
        conn.cursor().execute("DROP TABLE IF EXISTS t_guard_other")
        conn.close()
