"""TiDBRecordManager on a real TiDB: the RecordManager contract, one statement per call, the
server's clock, bad input, and ``index()`` giving the same results as InMemoryRecordManager."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.indexing import InMemoryRecordManager, aindex, index

from langchain_tidb_bedrock import InvalidInputError, TiDBEngine, TiDBRecordManager, TiDBVectorStore


@pytest.fixture
def engine(tidb_url: str) -> Iterator[TiDBEngine]:
    with TiDBEngine(tidb_url) as e:
        yield e


@pytest.fixture
def manager(engine: TiDBEngine, table_name: str) -> TiDBRecordManager:
    return TiDBRecordManager("tests/ns", engine=engine, table_name=table_name)


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every statement sent to TiDB during the test (sync and async drivers)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def _data(seen: list[str], table: str) -> list[str]:
    """The verbs of the statements on the records table or the clock (not session setup)."""
    return [s.split()[0].upper() for s in seen if table in s or "UNIX_TIMESTAMP" in s]


def test_contract(manager: TiDBRecordManager, tidb_engine: sa.Engine) -> None:
    # Reads on a table not created yet find nothing; the first update creates it.
    assert manager.exists(["a"]) == [False]
    assert manager.list_keys() == []
    manager.delete_keys(["a"])

    start = manager.get_time()
    manager.update(["a", "b", "A", "a "], group_ids=["g1", None, "g2", "g1"], time_at_least=start)
    found = manager.exists(["a", "A", "a ", "a  ", "b", "c"])
    assert found == [True, True, True, False, True, False]
    assert set(manager.list_keys()) == {"a", "b", "A", "a "}
    assert set(manager.list_keys(group_ids=["g1"])) == {"a", "a "}
    assert set(manager.list_keys(group_ids=[None])) == {"b"}  # type: ignore[list-item]
    assert manager.list_keys(before=start) == []
    assert len(manager.list_keys(after=start, limit=2)) == 2

    middle = manager.get_time()
    manager.update(["b"], group_ids=["g3"])
    assert set(manager.list_keys(before=middle)) == {"a", "A", "a "}
    assert manager.list_keys(after=middle) == ["b"]
    assert manager.list_keys(group_ids=["g3"]) == ["b"]  # the group was replaced

    manager.delete_keys(["a", "missing"])
    assert set(manager.list_keys()) == {"b", "A", "a "}
    # Binary keys: exact case and trailing spaces, stored as UTF-8.
    with tidb_engine.connect() as conn:
        keys = conn.execute(sa.text(f"SELECT `key` FROM `{manager.table_name}`")).scalars()
        assert sorted(keys) == [b"A", b"a ", b"b"]


def test_server_clock_is_used_and_never_goes_back(
    manager: TiDBRecordManager, tidb_engine: sa.Engine
) -> None:
    with tidb_engine.connect() as conn:
        before = float(conn.execute(sa.text("SELECT UNIX_TIMESTAMP(NOW(6))")).scalar_one())
    times = [manager.get_time() for _ in range(5)]
    assert before <= times[0]
    assert times == sorted(times)
    manager.update(["k"])
    with tidb_engine.connect() as conn:
        stamped = conn.execute(sa.text(f"SELECT updated_at FROM `{manager.table_name}`")).scalar()
    assert stamped is not None
    assert times[-1] <= stamped


def test_rows_are_stamped_no_earlier_than_time_at_least(manager: TiDBRecordManager) -> None:
    # A TiDB node whose clock runs behind the one that answered get_time(): index() passes
    # time_at_least=start, and its cleanup (before=start) must not see what it just wrote.
    ahead = manager.get_time() + 5.0
    manager._saw(ahead)  # as if another node, 5 s ahead, had answered get_time()
    assert manager.get_time() == ahead
    manager.update(["fresh"], time_at_least=ahead)
    assert manager.list_keys(before=ahead) == []
    assert manager.list_keys(after=ahead - 0.000001) == ["fresh"]


def test_time_at_least_ahead_of_the_server_is_refused(manager: TiDBRecordManager) -> None:
    future = manager.get_time() + 3600
    with pytest.raises(InvalidInputError, match="ahead of the TiDB server's clock"):
        manager.update(["k"], time_at_least=future)
    assert manager.list_keys() == []


def test_one_statement_per_call(manager: TiDBRecordManager, statements: list[str]) -> None:
    manager.create_schema()
    keys = [f"key-{i}" for i in range(100)]
    start = manager.get_time()
    statements.clear()
    manager.update(keys, group_ids=["g"] * 100, time_at_least=start)
    assert _data(statements, manager.table_name) == ["INSERT"]
    statements.clear()
    assert manager.exists(keys) == [True] * 100
    assert _data(statements, manager.table_name) == ["SELECT"]
    statements.clear()
    assert len(manager.list_keys(group_ids=["g"], before=manager.get_time(), limit=1000)) == 100
    assert _data(statements, manager.table_name) == ["SELECT", "SELECT"]  # get_time, then list_keys
    statements.clear()
    manager.delete_keys(keys)
    assert _data(statements, manager.table_name) == ["DELETE"]
    # 2,500 keys: three statements in one transaction.
    statements.clear()
    manager.update([f"k{i}" for i in range(2500)])
    assert _data(statements, manager.table_name) == ["INSERT"] * 3
    assert len(manager.list_keys()) == 2500


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.update(["ok", 7]), "key at position 1 is a int"),
        (lambda m: m.update("abc"), "takes a list of keys"),
        (lambda m: m.update(["ok", "x" * 1025]), "key at position 1 is 1,025 bytes"),
        (lambda m: m.update(["a", "b"], group_ids=["g"]), "2 keys but 1 group_ids"),
        (lambda m: m.update(["a", "b"], group_ids=["g", 3]), "group id at position 1"),
        (lambda m: m.update(["a", "\ud800"]), "key at position 1 is not valid Unicode"),
        (lambda m: m.update(["a"], time_at_least="soon"), "time_at_least must be"),
        (lambda m: m.exists([None]), "key at position 0 is a NoneType"),
        (lambda m: m.list_keys(limit=-1), "limit must be"),
        (lambda m: m.list_keys(group_ids="g1"), "group_ids must be a list"),
        (lambda m: m.delete_keys([b"k"]), "key at position 0 is a bytes"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(
    manager: TiDBRecordManager, call: Any, message: str
) -> None:
    manager.update(["kept"])
    with pytest.raises(InvalidInputError, match=message):
        call(manager)
    assert manager.list_keys() == ["kept"]


@pytest.mark.parametrize("namespace", ["", "   ", None, 3, "n" * 256])
def test_bad_namespace(engine: TiDBEngine, namespace: Any) -> None:
    with pytest.raises(InvalidInputError, match="namespace"):
        TiDBRecordManager(namespace, engine=engine)


def test_bad_table_name(engine: TiDBEngine) -> None:
    with pytest.raises(InvalidInputError, match="table name"):
        TiDBRecordManager("ns", engine=engine, table_name="bad name; DROP TABLE x")


def test_namespaces_share_a_table_apart(engine: TiDBEngine, table_name: str) -> None:
    one = TiDBRecordManager("one", engine=engine, table_name=table_name)
    two = TiDBRecordManager("two", engine=engine, table_name=table_name)
    one.update(["k", "only-one"])
    two.update(["k"])
    two.delete_keys(["k"])
    assert set(one.list_keys()) == {"k", "only-one"}
    assert two.exists(["k", "only-one"]) == [False, False]


async def test_async_twins(manager: TiDBRecordManager) -> None:
    await manager.acreate_schema()
    start = await manager.aget_time()
    await manager.aupdate(["a", "b"], group_ids=["g", None], time_at_least=start)
    assert await manager.aexists(["a", "b", "c"]) == [True, True, False]
    assert await manager.alist_keys(group_ids=["g"]) == ["a"]
    assert await manager.alist_keys(before=start) == []
    await manager.adelete_keys(["a"])
    assert await manager.alist_keys() == ["b"]
    with pytest.raises(InvalidInputError, match="position 0"):
        await manager.aupdate([1])  # type: ignore[list-item]
    assert await manager.aget_time() >= start


# ---------------------------------------------------------------------- index() vs InMemory


def _docs(rng: random.Random, edition: int) -> list[Document]:
    """A random corpus over 6 sources: pages appear, change and disappear between editions."""
    docs = []
    for source in range(6):
        for page in range(rng.randint(0, 4)):
            text = f"source {source} page {page} v{rng.randint(0, 2) if edition else 0}"
            docs.append(Document(page_content=text, metadata={"source": f"s{source}"}))
    rng.shuffle(docs)
    return docs


def _stores(engine: TiDBEngine) -> tuple[TiDBVectorStore, TiDBVectorStore]:
    emb = DeterministicFakeEmbedding(size=8)
    names = [f"t_{uuid.uuid4().hex[:16]}" for _ in range(2)]
    ours, ref = (TiDBVectorStore(emb, engine=engine, table_name=n) for n in names)
    return ours, ref


@pytest.fixture
def two_stores(engine: TiDBEngine) -> Iterator[tuple[TiDBVectorStore, TiDBVectorStore]]:
    pair = _stores(engine)
    yield pair
    for store in pair:
        store.drop_table()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_matches_in_memory_record_manager(
    seed: int,
    manager: TiDBRecordManager,
    two_stores: tuple[TiDBVectorStore, TiDBVectorStore],
) -> None:
    rng = random.Random(seed)
    ours, ref = two_stores
    reference = InMemoryRecordManager("tests/ns")
    cleanups = [None, "incremental", "full", "scoped_full"]
    for step in range(8):
        docs = _docs(rng, step)
        kwargs: dict[str, Any] = {
            "cleanup": rng.choice(cleanups),
            "source_id_key": "source",
            "batch_size": rng.randint(1, 6),
            "cleanup_batch_size": rng.randint(1, 5),
            "key_encoder": "sha256",
            "force_update": rng.random() < 0.2,
        }
        got = index(docs, manager, ours, **kwargs)
        want = index(docs, reference, ref, **kwargs)
        assert got == want, (step, kwargs)
        assert set(manager.list_keys()) == set(reference.list_keys())
        assert sorted(d.id or "" for d in ours.get_by_ids(manager.list_keys())) == sorted(
            manager.list_keys()
        )
        assert ours.count() == ref.count()


@pytest.fixture
async def async_manager(tidb_url: str, table_name: str) -> AsyncIterator[TiDBRecordManager]:
    manager = TiDBRecordManager("tests/async", connection_string=tidb_url, table_name=table_name)
    yield manager
    await manager.aclose()


async def test_aindex_matches_in_memory_record_manager(
    async_manager: TiDBRecordManager, two_stores: tuple[TiDBVectorStore, TiDBVectorStore]
) -> None:
    rng = random.Random(7)
    ours, ref = two_stores
    reference = InMemoryRecordManager("tests/async")
    for step, cleanup in enumerate(["incremental", None, "full", "scoped_full", "incremental"]):
        docs = _docs(rng, step)
        kwargs: dict[str, Any] = {
            "cleanup": cleanup,
            "source_id_key": "source",
            "batch_size": 3,
            "cleanup_batch_size": 2,
            "key_encoder": "sha256",
        }
        got = await aindex(docs, async_manager, ours, **kwargs)
        want = await aindex(docs, reference, ref, **kwargs)
        assert got == want, (step, kwargs)
        assert set(await async_manager.alist_keys()) == set(await reference.alist_keys())
        assert ours.count() == ref.count()


def test_index_round_trips_per_batch(
    engine: TiDBEngine,
    manager: TiDBRecordManager,
    statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """index() costs a fixed number of statements per batch, records and store together."""
    from langchain_tidb_bedrock.db import bulk
    from langchain_tidb_bedrock.db import engine as engines

    loads: list[str] = []
    real = bulk.load_rows

    def spy(conn: Any, table: str, rows: Any, columns: Any = bulk.STORE_COLUMNS) -> int:
        loads.append(table)
        return real(conn, table, rows, columns)

    monkeypatch.setattr(engines, "load_rows", spy)
    store = TiDBVectorStore(
        DeterministicFakeEmbedding(size=8), engine=engine, table_name=f"t_{uuid.uuid4().hex[:16]}"
    )
    docs = [
        Document(page_content=f"doc {i}", metadata={"source": f"s{i // 10}"}) for i in range(500)
    ]
    kwargs: dict[str, Any] = {
        "cleanup": "incremental",
        "source_id_key": "source",
        "batch_size": 100,
        "key_encoder": "sha256",
    }
    try:
        index(docs[:1], manager, store, **kwargs)  # creates both tables, describes the store's
        statements.clear()
        loads.clear()
        assert index(docs, manager, store, **kwargs)["num_added"] == 499
        # The clock once; per batch of 100: exists, update, list_keys, and one bulk load.
        # (The first batch holds the document already indexed: one refresh update more.)
        per_batch = ["SELECT", "INSERT", "SELECT"]
        first = ["SELECT", "INSERT", "INSERT", "SELECT"]
        assert [s.split()[0].upper() for s in statements] == ["SELECT", *first, *per_batch * 4]
        assert loads == [store.table_name] * 5
        statements.clear()
        loads.clear()
        assert index(docs, manager, store, **kwargs)["num_skipped"] == 500
        # Unchanged: exists, the refresh update, update, list_keys per batch; nothing stored.
        assert [s.split()[0].upper() for s in statements] == ["SELECT", *first * 5]
        assert loads == []
    finally:
        store.drop_table()
