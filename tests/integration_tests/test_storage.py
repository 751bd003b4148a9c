"""TiDBByteStore and TiDBDocStore on a real TiDB: langchain-tests' BaseStore suites, values far
over 64 KB up to TiDB's row limit, literal prefixes, bad input, random ops against InMemoryStore,
and ParentDocumentRetriever end to end."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.stores import InMemoryStore
from langchain_tests.integration_tests import BaseStoreAsyncTests, BaseStoreSyncTests

from langchain_tidb_bedrock import (
    BedrockTitanEmbeddings,
    InvalidInputError,
    TiDBByteStore,
    TiDBDocStore,
    TiDBEngine,
    TiDBVectorStore,
)
from langchain_tidb_bedrock.local.bedrock import LocalBedrock
from langchain_tidb_bedrock.storage import _table

MiB = 1024 * 1024


@pytest.fixture
def engine(tidb_url: str) -> Iterator[TiDBEngine]:
    with TiDBEngine(tidb_url) as e:
        yield e


@pytest.fixture
def byte_store(engine: TiDBEngine, table_name: str) -> TiDBByteStore:
    return TiDBByteStore(engine=engine, table_name=table_name)


@pytest.fixture
def doc_store(engine: TiDBEngine, table_name: str) -> TiDBDocStore:
    return TiDBDocStore(engine=engine, table_name=table_name)


@pytest.fixture(scope="module")
def suite_table(tidb_engine: sa.Engine) -> Iterator[str]:
    """One table for the conformance suites: each test gets a fresh namespace in it (no DDL)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS `{name}`"))


def _namespace() -> str:
    return f"suite-{uuid.uuid4().hex}"


def _rows(tidb_engine: sa.Engine, table: str) -> int:
    with tidb_engine.connect() as conn:
        try:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM `{table}`")).scalar_one())
        except sa.exc.ProgrammingError:  # never created
            return 0


# ---------------------------------------------------------------------- langchain-tests suites


class TestByteStoreSync(BaseStoreSyncTests[bytes]):
    @pytest.fixture
    def kv_store(self, engine: TiDBEngine, suite_table: str) -> TiDBByteStore:
        return TiDBByteStore(engine=engine, table_name=suite_table, namespace=_namespace())

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"\x00bar\xff", b"buzz" * 1000


class TestByteStoreAsync(BaseStoreAsyncTests[bytes]):
    @pytest.fixture
    async def kv_store(self, tidb_url: str, suite_table: str) -> AsyncIterator[TiDBByteStore]:
        store = TiDBByteStore(
            connection_string=tidb_url, table_name=suite_table, namespace=_namespace()
        )
        yield store
        await store.aclose()

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"\x00bar\xff", b"buzz" * 1000


_DOCS = (
    Document("foo", metadata={"n": 1, "tags": ["a", "b"]}, id="1"),
    Document("bar", metadata={"nested": {"x": None, "y": 2.5}}),
    Document("buzz " * 20000, metadata={"source": "big.md"}, id="big"),
)


class TestDocStoreSync(BaseStoreSyncTests[Document]):
    @pytest.fixture
    def kv_store(self, engine: TiDBEngine, suite_table: str) -> TiDBDocStore:
        return TiDBDocStore(engine=engine, table_name=suite_table, namespace=_namespace())

    @pytest.fixture
    def three_values(self) -> tuple[Document, Document, Document]:
        return _DOCS


class TestDocStoreAsync(BaseStoreAsyncTests[Document]):
    @pytest.fixture
    async def kv_store(self, tidb_url: str, suite_table: str) -> AsyncIterator[TiDBDocStore]:
        store = TiDBDocStore(
            connection_string=tidb_url, table_name=suite_table, namespace=_namespace()
        )
        yield store
        await store.aclose()

    @pytest.fixture
    def three_values(self) -> tuple[Document, Document, Document]:
        return _DOCS


# ---------------------------------------------------------------------- sizes


def test_values_up_to_the_row_limit(engine: TiDBEngine, table_name: str) -> None:
    # The longest key and namespace with the largest value: still one row TiDB accepts.
    store = TiDBByteStore(engine=engine, table_name=table_name, namespace="n" * 255)
    key = "k" * 1024
    big = os.urandom(store.max_value_bytes)
    store.mset([(key, big), ("small", b"x")])
    assert store.mget([key, "small"]) == [big, b"x"]
    medium = os.urandom(200_000)  # three times what a 64 KB BLOB holds
    store.mset([(key, medium)])
    assert store.mget([key]) == [medium]


def test_value_over_the_limit_names_its_position(
    byte_store: TiDBByteStore, table_name: str, tidb_engine: sa.Engine
) -> None:
    byte_store.mset([("kept", b"old")])
    too_big = b"x" * (byte_store.max_value_bytes + 1)
    with pytest.raises(InvalidInputError, match=r"value at position 2 is 6,287,361 bytes"):
        byte_store.mset([("kept", b"new"), ("a", b"1"), ("b", too_big)])
    assert byte_store.mget(["kept", "a", "b"]) == [b"old", None, None]
    assert _rows(tidb_engine, table_name) == 1


def test_server_refusal_over_its_row_limit_writes_nothing(
    engine: TiDBEngine, table_name: str, tidb_engine: sa.Engine
) -> None:
    # Configured above what the server allows: TiDB refuses, the transaction rolls back.
    store = TiDBByteStore(engine=engine, table_name=table_name, max_value_bytes=8 * MiB)
    with pytest.raises(InvalidInputError, match="TiDB refused a value as too large"):
        store.mset([("a", b"small"), ("b", b"x" * (7 * MiB))])
    assert store.mget(["a", "b"]) == [None, None]
    assert _rows(tidb_engine, table_name) == 0


async def test_async_big_values(tidb_url: str, table_name: str) -> None:
    async with TiDBDocStore(connection_string=tidb_url, table_name=table_name) as store:
        parent = Document("word " * 40_000, metadata={"source": "long.md"}, id="p")  # 200 KB
        await store.amset([("p", parent)])
        assert await store.amget(["p", "q"]) == [parent, None]
        with pytest.raises(InvalidInputError, match="position 0"):
            await store.amset([("q", Document("x" * (7 * MiB)))])
        assert [k async for k in store.ayield_keys()] == ["p"]


# ---------------------------------------------------------------------- keys and prefixes


def test_prefix_is_literal_and_keys_exact(byte_store: TiDBByteStore) -> None:
    keys = ["a_b", "axb", "a%b", "a%", "a!b", "a!!", "A_b", "a", "a ", "é_1", "é1"]
    byte_store.mset([(k, k.encode()) for k in keys])
    assert list(byte_store.yield_keys(prefix="a_")) == ["a_b"]
    assert list(byte_store.yield_keys(prefix="a%")) == ["a%", "a%b"]
    assert list(byte_store.yield_keys(prefix="a!")) == ["a!!", "a!b"]
    assert list(byte_store.yield_keys(prefix="é_")) == ["é_1"]
    assert list(byte_store.yield_keys(prefix="A")) == ["A_b"]
    assert set(byte_store.yield_keys(prefix="")) == set(keys)
    assert byte_store.mget(["a", "a ", "a  "]) == [b"a", b"a ", None]


def test_yield_keys_pages(byte_store: TiDBByteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_table, "PAGE", 3)
    keys = [f"p{i:02d}" for i in range(10)] + ["q1", "q2", "q3"]
    byte_store.mset([(k, b"v") for k in keys])
    assert list(byte_store.yield_keys()) == sorted(keys)
    assert list(byte_store.yield_keys(prefix="q")) == ["q1", "q2", "q3"]  # exactly one page


async def test_ayield_keys_pages(
    byte_store: TiDBByteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_table, "PAGE", 2)
    keys = [f"k{i}" for i in range(7)]
    await byte_store.amset([(k, b"v") for k in keys])
    assert [k async for k in byte_store.ayield_keys()] == keys
    assert [k async for k in byte_store.ayield_keys(prefix="k6")] == ["k6"]


def test_namespaces_share_a_table_apart(engine: TiDBEngine, table_name: str) -> None:
    one = TiDBByteStore(engine=engine, table_name=table_name, namespace="one")
    two = TiDBByteStore(engine=engine, table_name=table_name, namespace="two")
    one.mset([("k", b"1")])
    two.mset([("k", b"2")])
    two.mdelete(["k"])
    assert one.mget(["k"]) == [b"1"]
    assert list(two.yield_keys()) == []


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.mset([("a", b"1"), (2, b"2")]), "key at position 1 is a int"),
        (lambda s: s.mset([("a", b"1"), ("b", "text")]), "value at position 1 is a str, not bytes"),
        (lambda s: s.mset([("a", b"1"), ("b",)]), "item at position 1 is not a"),
        (lambda s: s.mset({"a": b"1"}), "takes a list of"),
        (lambda s: s.mset([("a", b"1"), ("k" * 1025, b"2")]), "position 1 is 1,025 bytes"),
        (lambda s: s.mset([("\udcff", b"1")]), "not valid Unicode"),
        (lambda s: s.mget(["a", None]), "key at position 1 is a NoneType"),
        (lambda s: s.mget("ab"), "takes a list of keys"),
        (lambda s: s.mdelete([1]), "key at position 0"),
        (lambda s: list(s.yield_keys(prefix=3)), "prefix is a int"),
    ],
)
def test_bad_input_writes_nothing(
    byte_store: TiDBByteStore, call: Any, message: str, table_name: str, tidb_engine: sa.Engine
) -> None:
    byte_store.mset([("kept", b"v")])
    with pytest.raises(InvalidInputError, match=message):
        call(byte_store)
    assert list(byte_store.yield_keys()) == ["kept"]
    assert byte_store.mget(["kept", "a"]) == [b"v", None]


def test_doc_store_bad_values(doc_store: TiDBDocStore) -> None:
    with pytest.raises(InvalidInputError, match="position 1 is a str, not a Document"):
        doc_store.mset([("a", Document("x")), ("b", "text")])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="metadata of the Document at position 0"):
        doc_store.mset([("a", Document("x", metadata={"when": object()}))])
    assert list(doc_store.yield_keys()) == []


@pytest.mark.parametrize("namespace", ["", "  ", None, "n" * 256])
def test_bad_namespace(engine: TiDBEngine, namespace: Any) -> None:
    with pytest.raises(InvalidInputError, match="namespace"):
        TiDBByteStore(engine=engine, namespace=namespace)


@pytest.mark.parametrize("limit", [0, -1, 121 * MiB, 1.5, True])
def test_bad_max_value_bytes(engine: TiDBEngine, limit: Any) -> None:
    with pytest.raises(InvalidInputError, match="max_value_bytes"):
        TiDBDocStore(engine=engine, max_value_bytes=limit)


# ---------------------------------------------------------------------- differential


def _random_ops(rng: random.Random, n: int) -> list[tuple[str, Any]]:
    alphabet = ["a", "b", "ab", "a_", "a%", "A", "b ", "é", "a!"]
    ops: list[tuple[str, Any]] = []
    for _ in range(n):
        kind = rng.choice(["set", "set", "get", "delete", "keys"])
        keys = [
            rng.choice(alphabet) + rng.choice(["", "1", "_2"]) for _ in range(rng.randint(0, 5))
        ]
        if kind == "set":
            ops.append(("set", [(k, rng.randbytes(rng.randint(0, 300))) for k in keys]))
        elif kind == "keys":
            ops.append(("keys", rng.choice([None, "", "a", "a_", "a%", "é", "b "])))
        else:
            ops.append((kind, keys))
    return ops


@pytest.mark.parametrize("seed", [1, 2])
def test_random_ops_match_in_memory_store(byte_store: TiDBByteStore, seed: int) -> None:
    rng = random.Random(seed)
    reference: InMemoryStore = InMemoryStore()
    for step, (kind, arg) in enumerate(_random_ops(rng, 60)):
        if kind == "set":
            byte_store.mset(arg)
            reference.mset(arg)
        elif kind == "delete":
            byte_store.mdelete(arg)
            reference.mdelete(arg)
        elif kind == "get":
            assert byte_store.mget(arg) == reference.mget(arg), step
        else:
            got = list(byte_store.yield_keys(prefix=arg))
            assert got == sorted(reference.yield_keys(prefix=arg)), step
    assert sorted(byte_store.yield_keys()) == sorted(reference.yield_keys())


async def test_random_ops_match_in_memory_store_async(tidb_url: str, table_name: str) -> None:
    rng = random.Random(5)
    reference: InMemoryStore = InMemoryStore()
    async with TiDBDocStore(connection_string=tidb_url, table_name=table_name) as store:
        for step, (kind, arg) in enumerate(_random_ops(rng, 40)):
            if kind == "set":
                docs = [(k, Document(v.hex(), metadata={"k": k})) for k, v in arg]
                await store.amset(docs)
                await reference.amset(docs)
            elif kind == "delete":
                await store.amdelete(arg)
                await reference.amdelete(arg)
            elif kind == "get":
                assert await store.amget(arg) == await reference.amget(arg), step
            else:
                got = [k async for k in store.ayield_keys(prefix=arg)]
                assert got == sorted([k async for k in reference.ayield_keys(prefix=arg)]), step


# ---------------------------------------------------------------------- ParentDocumentRetriever


@pytest.fixture
def chunks_table(engine: TiDBEngine) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    TiDBVectorStore(None, engine=engine, table_name=name).drop_table()


def test_parent_document_retriever_with_a_parent_over_64kb(
    engine: TiDBEngine, doc_store: TiDBDocStore, chunks_table: str, bedrock: LocalBedrock
) -> None:
    from langchain_classic.retrievers import ParentDocumentRetriever
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    filler = "Routine maintenance notes about nothing in particular. " * 1800  # ~100 KB
    needle = "The TiDB vector index is built by TiFlash replicas in the background."
    parents = [
        Document(filler[:50_000] + needle + " " + filler[50_000:], metadata={"source": "big"}),
        Document("Bedrock serves Llama 3 through the Converse API.", metadata={"source": "s"}),
    ]
    assert len(parents[0].page_content.encode()) > 64 * 1024
    embeddings = BedrockTitanEmbeddings(dimensions=256, endpoint_url=bedrock.endpoint_url)
    retriever = ParentDocumentRetriever(
        vectorstore=TiDBVectorStore(embeddings, engine=engine, table_name=chunks_table),
        docstore=doc_store,
        child_splitter=RecursiveCharacterTextSplitter(chunk_size=4000, chunk_overlap=0),
        search_kwargs={"k": 1},
    )
    retriever.add_documents(parents)
    assert len(list(doc_store.yield_keys())) == 2
    (found,) = retriever.invoke("Which replicas build the TiDB vector index?")
    assert found.page_content == parents[0].page_content  # the whole parent, not a chunk
    assert found.metadata == {"source": "big"}
    (small,) = retriever.invoke("Which API serves Llama 3 on Bedrock?")
    assert small.page_content == parents[1].page_content
