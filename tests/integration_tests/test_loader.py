"""TiDBLoader against a real local TiDB: values, ids, bound parameters, streaming, async."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from langchain_core.documents import Document

from langchain_tidb_bedrock import TiDBEngine
from langchain_tidb_bedrock.document_loaders import TiDBLoader
from langchain_tidb_bedrock.errors import InvalidInputError

ROWS = 3000


@pytest.fixture
def engine(tidb_url: str) -> Iterator[TiDBEngine]:
    with TiDBEngine(tidb_url) as shared:
        yield shared


@pytest.fixture
def products(tidb_engine: sa.Engine, table_name: str) -> Iterator[str]:
    table_name += "_p"  # a test may use both tables
    with tidb_engine.begin() as conn:
        conn.execute(
            sa.text(
                f"""CREATE TABLE `{table_name}` (
                    id BIGINT PRIMARY KEY, name VARCHAR(64), body TEXT,
                    price DECIMAL(10, 2), exact DECIMAL(30, 10), day DATE,
                    seen DATETIME(6), opens TIME, raw VARBINARY(16), label VARBINARY(16),
                    attrs JSON, score DOUBLE, note VARCHAR(10))"""
            )
        )
        conn.execute(
            sa.text(
                f"INSERT INTO `{table_name}` VALUES "
                "(1, 'lamp', 'A warm lamp.', 19.99, 12345678901234567890.0123456789, "
                "'2026-11-30', '2026-11-30 08:15:00.250000', '09:30:00', X'00FF10', 'blue', "
                """'{"w": 3}', 0.5, NULL), """
                "(2, 'desk', 'An oak desk.', 250.00, 1.5, NULL, NULL, '-01:02:03', NULL, "
                "NULL, NULL, NULL, 'x')"
            )
        )
    yield table_name
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE `{table_name}`"))


@pytest.fixture
def numbers(tidb_engine: sa.Engine, table_name: str) -> str:
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE `{table_name}` (n INT PRIMARY KEY, t VARCHAR(40))"))
        conn.execute(
            sa.text(f"INSERT INTO `{table_name}` VALUES (:n, :t)"),
            [{"n": i, "t": f"row {i}"} for i in range(ROWS)],
        )
    return table_name


def test_metadata_is_json_safe_and_exact(engine: TiDBEngine, products: str) -> None:
    loader = TiDBLoader(
        f"SELECT * FROM `{products}` ORDER BY id",
        engine=engine,
        page_content_columns=["name", "body"],
        metadata_columns=["price", "exact", "day", "seen", "opens", "raw", "label", "attrs"],
        id_column="id",
    )
    lamp, desk = loader.load()
    assert lamp.id == "1"
    assert desk.id == "2"
    assert lamp.page_content == "name: lamp\nbody: A warm lamp."
    assert lamp.metadata == {
        "price": 19.99,
        "exact": "12345678901234567890.0123456789",  # no float holds it: kept as text
        "day": "2026-11-30",
        "seen": "2026-11-30T08:15:00.250000",
        "opens": "09:30:00",
        "raw": "AP8Q",  # not UTF-8: base64
        "label": "blue",
        "attrs": '{"w": 3}',
    }
    assert desk.metadata["price"] == 250  # a whole DECIMAL is an int
    assert desk.metadata["exact"] == 1.5
    assert desk.metadata["opens"] == "-01:02:03"
    assert desk.metadata["day"] is None
    for doc in (lamp, desk):
        assert json.loads(json.dumps(doc.metadata)) == doc.metadata
    assert Decimal(lamp.metadata["exact"]) == Decimal("12345678901234567890.0123456789")


def test_default_content_is_every_column(engine: TiDBEngine, products: str) -> None:
    (doc,) = TiDBLoader(
        f"SELECT id, name, note FROM `{products}` WHERE id = 1", engine=engine
    ).load()
    assert doc.page_content == "id: 1\nname: lamp\nnote: "
    assert doc.metadata == {}
    assert doc.id is None


def test_params_are_bound_never_spliced(engine: TiDBEngine, products: str) -> None:
    query = f"SELECT id, name FROM `{products}` WHERE name = :name ORDER BY id"
    found = TiDBLoader(query, params={"name": "desk"}, engine=engine, id_column="id").load()
    assert [d.id for d in found] == ["2"]
    for attack in ("x' OR '1'='1", "x'; DROP TABLE `" + products + "`; --", "lamp\\' OR 1=1 #"):
        assert TiDBLoader(query, params={"name": attack}, engine=engine).load() == []
    # The value ':name' and quotes inside a value are data, not syntax.
    loader = TiDBLoader(
        f"SELECT :v AS v FROM `{products}` WHERE id = :id",
        params={"v": "a ':b' \"c\"", "id": 1},
        engine=engine,
    )
    assert loader.load()[0].page_content == "v: a ':b' \"c\""
    assert len(TiDBLoader(f"SELECT id FROM `{products}`", engine=engine).load()) == 2


def test_a_missing_column_fails_before_any_document(engine: TiDBEngine, products: str) -> None:
    loader = TiDBLoader(
        f"SELECT id, name FROM `{products}`", engine=engine, metadata_columns=["nope"]
    )
    with pytest.raises(InvalidInputError, match=r"no column 'nope'.*\['id', 'name'\]"):
        next(loader.lazy_load())
    with pytest.raises(InvalidInputError, match="no column 'key'"):
        TiDBLoader(f"SELECT id FROM `{products}`", engine=engine, id_column="key").load()
    assert engine.sync_read.pool.checkedout() == 0


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"query": "  "}, "blank"),
        ({"query": 42}, "SQL text"),
        ({"query": "SELECT 1", "params": [1]}, "mapping"),
        ({"query": "SELECT 1", "page_content_columns": "body"}, r"write \['body'\]"),
        ({"query": "SELECT 1", "metadata_columns": ["a", ""]}, r"metadata_columns\[1\]"),
        ({"query": "SELECT 1", "id_column": 3}, "id_column"),
        ({"query": "SELECT 1", "fetch_size": 0}, "fetch_size"),
    ],
)
def test_bad_arguments(engine: TiDBEngine, kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        TiDBLoader(**kwargs, engine=engine)


def test_a_sqlalchemy_statement_works_too(engine: TiDBEngine, products: str) -> None:
    table = sa.table(products, sa.column("id"), sa.column("name"))
    stmt = sa.select(table.c.id, table.c.name).where(table.c.id == 2)
    (doc,) = TiDBLoader(stmt, engine=engine, id_column="id").load()
    assert (doc.id, doc.page_content) == ("2", "id: 2\nname: desk")


# ---------------------------------------------------------------------- streaming


@pytest.fixture
def cursors(engine: TiDBEngine) -> Iterator[list[Any]]:
    """The DBAPI cursor of every statement on the engine's sync read pool."""
    seen: list[Any] = []

    def record(conn: Any, cursor: Any, *args: Any) -> None:
        seen.append(cursor)

    sa.event.listen(engine.sync_read, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine.sync_read, "before_cursor_execute", record)


def test_rows_stream_through_a_server_side_cursor(
    engine: TiDBEngine, numbers: str, cursors: list[Any]
) -> None:
    loader = TiDBLoader(
        f"SELECT n, t FROM `{numbers}` ORDER BY n",
        engine=engine,
        page_content_columns=["t"],
        id_column="n",
        fetch_size=100,
    )
    ahead = []
    for consumed, doc in enumerate(loader.lazy_load(), start=1):
        (cursor,) = cursors
        assert isinstance(cursor, pymysql.cursors.SSCursor)
        # Rows read off the wire so far, beyond those handed out: never more than one round.
        ahead.append(cursor.rownumber - consumed)
        assert doc.id == str(consumed - 1)
    assert consumed == ROWS
    assert max(ahead) == 99
    assert min(ahead) == 0
    assert engine.sync_read.pool.checkedout() == 0


def test_stopping_early_does_not_read_the_rest(
    engine: TiDBEngine, numbers: str, cursors: list[Any]
) -> None:
    connects: list[int] = []
    sa.event.listen(engine.sync_read, "connect", lambda *a: connects.append(1))
    loader = TiDBLoader(f"SELECT n FROM `{numbers}` ORDER BY n", engine=engine, fetch_size=50)
    docs = loader.lazy_load()
    for _ in range(10):
        next(docs)
    docs.close()
    assert cursors[0].rownumber <= 60  # the other rows were never read:
    assert engine.sync_read.pool.checkedout() == 0
    assert len(loader.load()) == ROWS  # the pool still works,
    assert len(connects) == 2  # on a new connection (the first was dropped, not drained)


async def test_async_load_streams_too(engine: TiDBEngine, numbers: str, products: str) -> None:
    read_engine = await engine.async_read_engine()
    seen: list[Any] = []

    def record(conn: Any, cursor: Any, *args: Any) -> None:
        seen.append(cursor)

    sa.event.listen(read_engine.sync_engine, "before_cursor_execute", record)
    try:
        loader = TiDBLoader(
            f"SELECT n, t FROM `{numbers}` ORDER BY n", engine=engine, id_column="n", fetch_size=100
        )
        ahead = []
        consumed = 0
        async for doc in loader.alazy_load():
            consumed += 1
            (cursor,) = seen
            assert cursor.server_side
            ahead.append(cursor._cursor._rownumber - consumed)
            assert doc.id == str(consumed - 1)
        assert consumed == ROWS
        assert max(ahead) == 99
    finally:
        sa.event.remove(read_engine.sync_engine, "before_cursor_execute", record)
    sync = TiDBLoader(
        f"SELECT * FROM `{products}` ORDER BY id",
        engine=engine,
        metadata_columns=["price", "exact", "seen", "raw"],
        id_column="id",
    )
    assert [d async for d in sync.alazy_load()] == sync.load()
    assert await sync.aload() == sync.load()
    await engine.aclose()


async def test_async_stopping_early(engine: TiDBEngine, numbers: str) -> None:
    loader = TiDBLoader(f"SELECT n FROM `{numbers}` ORDER BY n", engine=engine, fetch_size=10)
    docs = loader.alazy_load()
    await docs.__anext__()
    await docs.aclose()
    assert len([d async for d in loader.alazy_load()]) == ROWS
    await engine.aclose()


def test_private_engine_is_released_after_each_load(tidb_url: str, products: str) -> None:
    loader = TiDBLoader(f"SELECT id FROM `{products}`", connection_string=tidb_url)
    assert len(loader.load()) == 2
    assert loader.tidb_engine.sync_read.pool.checkedin() == 0  # disposed, nothing kept open
    assert [d.page_content for d in loader.load()] == ["id: 1", "id: 2"]


def test_documents_are_documents(engine: TiDBEngine, products: str) -> None:
    docs = TiDBLoader(f"SELECT name FROM `{products}` ORDER BY id", engine=engine).load()
    assert docs == [Document(page_content="name: lamp"), Document(page_content="name: desk")]
