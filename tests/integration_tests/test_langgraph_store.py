"""TiDBStore on a real TiDB: PostgresStore's test cases ported, then what TiDB adds.

Ported (langgraph-checkpoint-postgres tests/test_store.py): batch order and each op kind, basic
ops, namespaces, search with filters and pagination, vector search (auto-embedding, updates,
filters, pagination, edge cases, field paths per store and per op, scores per distance, non-
ASCII), TTL. Added: LangGraph's filter operators against InMemoryStore, namespace prefixes that
LIKE would confuse, TiDB table TTL, Titan by default, async twins, and limits.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from helpers.statements import sent_by
from langchain_core.embeddings import Embeddings
from langgraph.store.base import GetOp, Item, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from langchain_tidb_bedrock import InvalidInputError, TiDBEngine
from langchain_tidb_bedrock.langgraph import TiDBStore

TTL_SECONDS = 2
TTL_MINUTES = TTL_SECONDS / 60


class CharacterEmbeddings(Embeddings):
    """Character frequencies through fixed random projections (as the Postgres tests use)."""

    def __init__(self, dims: int = 64, seed: int = 42) -> None:
        self.dims = dims
        rng = random.Random(seed)
        self._proj: defaultdict[str, list[float]] = defaultdict(
            lambda: [rng.gauss(0, 1 / math.sqrt(dims)) for _ in range(dims)]
        )

    def _one(self, text: str) -> list[float]:
        counts = Counter(text)
        total = sum(counts.values())
        out = [0.0] * self.dims
        if not total:
            return out
        for char, count in sorted(counts.items()):
            proj = self._proj[char]
            for i in range(self.dims):
                out[i] += count / total * proj[i]
        norm = math.sqrt(sum(x * x for x in out)) or 1.0
        return [x / norm for x in out]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


@pytest.fixture
def prefix(tidb_engine: sa.Engine) -> Iterator[str]:
    name = f"ls_{uuid.uuid4().hex[:10]}_"
    yield name
    with tidb_engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{name}store`, `{name}store_vectors`")


@pytest.fixture
def engine(tidb_url: str) -> Iterator[TiDBEngine]:
    with TiDBEngine(tidb_url) as shared:
        yield shared


@pytest.fixture
def store(engine: TiDBEngine, prefix: str) -> TiDBStore:
    ttl = {"default_ttl": TTL_MINUTES, "refresh_on_read": True, "sweep_interval_minutes": 1}
    return TiDBStore(engine=engine, table_prefix=prefix, ttl=ttl)  # type: ignore[arg-type]


def _vector_store(
    engine: TiDBEngine, prefix: str, distance: str = "cosine", fields: list[str] | None = None
) -> TiDBStore:
    emb = CharacterEmbeddings()
    index = {"dims": emb.dims, "embed": emb, "distance_type": distance, "fields": fields}
    return TiDBStore(engine=engine, table_prefix=prefix, index=index)  # type: ignore[arg-type]


@pytest.fixture(params=["cosine", "l2", "inner_product"])
def vector_store(request: pytest.FixtureRequest, engine: TiDBEngine, prefix: str) -> TiDBStore:
    return _vector_store(engine, prefix, request.param)


# ---------------------------------------------------------------------------------- ported


def test_batch_order(store: TiDBStore) -> None:
    store.put(("test", "foo"), "key1", {"data": "value1"})
    store.put(("test", "bar"), "key2", {"data": "value2"})
    results = store.batch(
        [
            GetOp(namespace=("test", "foo"), key="key1"),
            PutOp(namespace=("test", "bar"), key="key2", value={"data": "value2"}),
            SearchOp(namespace_prefix=("test",), filter={"data": "value1"}, limit=10, offset=0),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
            GetOp(namespace=("test",), key="key3"),
        ]
    )
    assert len(results) == 5
    assert isinstance(results[0], Item)
    assert results[0].value == {"data": "value1"}
    assert results[0].key == "key1"
    assert results[1] is None
    assert isinstance(results[2], list)
    assert len(results[2]) == 1
    assert results[3] == [("test", "bar"), ("test", "foo")]
    assert results[4] is None

    reordered = store.batch(
        [
            SearchOp(namespace_prefix=("test",), filter=None, limit=5, offset=0),
            GetOp(namespace=("test", "bar"), key="key2"),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=5, offset=0),
            PutOp(namespace=("test",), key="key3", value={"data": "value3"}),
            GetOp(namespace=("test", "foo"), key="key1"),
        ]
    )
    assert len(reordered[0]) == 2
    assert reordered[1].value == {"data": "value2"}
    assert len(reordered[2]) > 0
    assert reordered[3] is None
    assert reordered[4].value == {"data": "value1"}
    assert store.get(("test",), "key3").value == {"data": "value3"}  # type: ignore[union-attr]


def test_batch_get_put_ops(store: TiDBStore) -> None:
    results = store.batch(
        [
            PutOp(namespace=("test",), key="key1", value={"data": "value1"}),
            PutOp(namespace=("test",), key="key2", value={"data": "value2"}),
            PutOp(namespace=("test",), key="key3", value=None),
        ]
    )
    assert results == [None, None, None]
    got = store.batch(
        [GetOp(("test",), "key1"), GetOp(("test",), "key2"), GetOp(("test",), "key3")]
    )
    assert [g.key if g else None for g in got] == ["key1", "key2", None]  # type: ignore[union-attr]


def test_batch_search_ops(store: TiDBStore) -> None:
    for ns, key, value in [
        (("test", "foo"), "key1", {"data": "value1", "tag": "a"}),
        (("test", "bar"), "key2", {"data": "value2", "tag": "a"}),
        (("test", "baz"), "key3", {"data": "value3", "tag": "b"}),
    ]:
        store.put(ns, key, value)
    results = store.batch(
        [
            SearchOp(namespace_prefix=("test",), filter={"tag": "a"}, limit=10, offset=0),
            SearchOp(namespace_prefix=("test",), filter=None, limit=2, offset=0),
            SearchOp(namespace_prefix=("test", "foo"), filter=None, limit=10, offset=0),
        ]
    )
    assert len(results[0]) == 2
    assert all(item.value["tag"] == "a" for item in results[0])
    assert len(results[1]) == 2
    assert [i.namespace for i in results[2]] == [("test", "foo")]


def test_batch_list_namespaces_ops(store: TiDBStore) -> None:
    data = [
        (("test", "documents", "public"), "doc1"),
        (("test", "documents", "private"), "doc2"),
        (("test", "images", "public"), "img1"),
        (("prod", "documents", "public"), "doc3"),
    ]
    for ns, key in data:
        store.put(ns, key, {"content": key})
    results = store.batch(
        [
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
            ListNamespacesOp(match_conditions=None, max_depth=2, limit=10, offset=0),
            ListNamespacesOp(
                match_conditions=(MatchCondition("suffix", ("public",)),), limit=10, offset=0
            ),
        ]
    )
    assert len(results[0]) == len(data)
    assert results[1] == [("prod", "documents"), ("test", "documents"), ("test", "images")]
    assert sorted(results[2]) == sorted(ns for ns, _ in data if ns[-1] == "public")


def test_basic_store_ops(store: TiDBStore) -> None:
    namespace = ("test", "documents")
    store.put(namespace, "doc1", {"title": "Test Document", "content": "Hello, World!"})
    item = store.get(namespace, "doc1")
    assert item is not None
    assert item.namespace == namespace
    assert item.key == "doc1"
    assert item.value == {"title": "Test Document", "content": "Hello, World!"}
    time.sleep(0.01)
    store.put(namespace, "doc1", {"title": "Updated Document", "content": "Hello, Updated!"})
    updated = store.get(namespace, "doc1")
    assert updated is not None
    assert updated.value["title"] == "Updated Document"
    assert updated.updated_at > item.updated_at
    assert updated.created_at == item.created_at
    assert store.get(("test", "other_documents"), "doc1") is None
    store.delete(namespace, "doc1")
    assert store.get(namespace, "doc1") is None


def test_list_namespaces(store: TiDBStore) -> None:
    namespaces = [
        ("test", "documents", "public"),
        ("test", "documents", "private"),
        ("test", "images", "public"),
        ("test", "images", "private"),
        ("prod", "documents", "public"),
        ("prod", "documents", "private"),
    ]
    for ns in namespaces:
        store.put(ns, "dummy", {"content": "dummy"})
    assert len(store.list_namespaces()) == len(namespaces)
    test_ns = store.list_namespaces(prefix=("test",))
    assert len(test_ns) == 4
    assert all(ns[0] == "test" for ns in test_ns)
    public = store.list_namespaces(suffix=("public",))
    assert len(public) == 3
    assert store.list_namespaces(prefix=("test", "*", "public")) == [
        ("test", "documents", "public"),
        ("test", "images", "public"),
    ]
    assert all(len(ns) <= 2 for ns in store.list_namespaces(max_depth=2))
    assert len(store.list_namespaces(limit=3)) == 3
    assert store.list_namespaces(limit=2, offset=4) == sorted(namespaces)[4:6]


def test_search(store: TiDBStore) -> None:
    data = [
        (
            ("test", "docs"),
            "doc1",
            {"title": "First Doc", "author": "Alice", "tags": ["important"]},
        ),
        (("test", "docs"), "doc2", {"title": "Second Doc", "author": "Bob", "tags": ["draft"]}),
        (("test", "images"), "img1", {"title": "Image 1", "author": "Alice", "tags": ["final"]}),
    ]
    for ns, key, value in data:
        store.put(ns, key, value)
    assert len(store.search(("test",))) == 3
    docs = store.search(("test", "docs"))
    assert {i.key for i in docs} == {"doc1", "doc2"}
    alice = store.search(("test",), filter={"author": "Alice"})
    assert {i.key for i in alice} == {"doc1", "img1"}
    assert len(store.search(("test",), limit=2)) == 2
    assert len(store.search(("test",), offset=2)) == 1
    assert [i.key for i in store.search(("test",), filter={"tags": ["draft"]})] == ["doc2"]
    assert all(i.score is None for i in store.search(("test",), query="anything"))


def test_vector_insert_with_auto_embedding(vector_store: TiDBStore) -> None:
    docs = [
        ("doc1", {"text": "short text"}),
        ("doc2", {"text": "longer text document"}),
        ("doc3", {"text": "longest text document here"}),
        ("doc4", {"description": "text in description field"}),
        ("doc5", {"content": "text in content field"}),
        ("doc6", {"body": "text in body field"}),
    ]
    for key, value in docs:
        vector_store.put(("test",), key, value)
    results = vector_store.search(("test",), query="long text")
    keys = [r.key for r in results]
    assert "doc2" in keys
    assert "doc3" in keys
    assert all(r.score is not None for r in results)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_vector_update_with_embedding(vector_store: TiDBStore) -> None:
    vector_store.put(("test",), "doc1", {"text": "zany zebra Xerxes"})
    vector_store.put(("test",), "doc2", {"text": "something about dogs"})
    vector_store.put(("test",), "doc3", {"text": "text about birds"})
    initial = vector_store.search(("test",), query="Zany Xerxes")
    assert initial[0].key == "doc1"
    initial_score = initial[0].score
    assert initial_score is not None

    vector_store.put(("test",), "doc1", {"text": "new text about dogs"})
    after = vector_store.search(("test",), query="Zany Xerxes")
    after_score = next(r.score for r in after if r.key == "doc1")
    assert after_score is not None
    assert after_score < initial_score
    for r in vector_store.search(("test",), query="new text about dogs"):
        if r.key == "doc1":
            assert r.score is not None
            assert r.score > after_score

    vector_store.put(("test",), "doc4", {"text": "new text about dogs"}, index=False)
    top3 = vector_store.search(("test",), query="new text about dogs", limit=3)
    assert not any(r.key == "doc4" for r in top3)


@pytest.mark.parametrize("refresh_ttl", [True, False])
def test_vector_search_with_filters(engine: TiDBEngine, prefix: str, refresh_ttl: bool) -> None:
    store = _vector_store(engine, prefix)
    docs = [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
        ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]
    for key, value in docs:
        store.put(("test",), key, value)
    red_apple = store.search(
        ("test",), query="apple", filter={"color": "red"}, refresh_ttl=refresh_ttl
    )
    assert [r.key for r in red_apple] == ["doc1", "doc2"]
    red_car = store.search(("test",), query="car", filter={"color": "red"}, refresh_ttl=refresh_ttl)
    assert [r.key for r in red_car] == ["doc2", "doc1"]
    high = store.search(("test",), query="bbbbluuu", filter={"score": {"$gt": 3.2}})
    assert len(high) == 3
    assert high[0].key == "doc4"
    both = store.search(("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"})
    assert [r.key for r in both] == ["doc3"]


def test_vector_search_pagination(vector_store: TiDBStore) -> None:
    for i in range(5):
        vector_store.put(("test",), f"doc{i}", {"text": f"test document number {i}"})
    page1 = vector_store.search(("test",), query="test", limit=2)
    page2 = vector_store.search(("test",), query="test", limit=2, offset=2)
    everything = vector_store.search(("test",), query="test", limit=10)
    assert len(page1) == 2
    assert len(page2) == 2
    assert len(everything) == 5
    assert [r.key for r in everything[:4]] == [r.key for r in page1 + page2]


def test_vector_search_edge_cases(vector_store: TiDBStore) -> None:
    vector_store.put(("test",), "doc1", {"text": "test document"})
    for query in ["", None, "test " * 100, "test!@#$%^&*()"]:
        assert len(vector_store.search(("test",), query=query)) == 1


def test_embed_with_path(engine: TiDBEngine, prefix: str) -> None:
    store = _vector_store(engine, prefix, fields=["key0", "key1", "key3"])
    store.put(("test",), "doc1", {"key1": "xxx", "key2": "yyy", "key3": "zzz"})
    store.put(("test",), "doc2", {"key0": "uuu", "key1": "vvv", "key2": "www", "key3": "xxx"})
    results = store.search(("test",), query="xxx")
    assert len(results) == 2
    assert results[0].score == pytest.approx(results[1].score, abs=1e-3)
    top = results[0].score
    uuu = store.search(("test",), query="uuu")
    assert uuu[0].key == "doc2"
    assert uuu[0].score == pytest.approx(top, abs=1e-3)
    zzz = store.search(("test",), query="zzz")
    assert zzz[0].key == "doc1"
    www = store.search(("test",), query="www")  # key2 is not indexed
    assert all(r.score is not None and r.score < top for r in www)


def test_embed_with_path_operation_config(engine: TiDBEngine, prefix: str) -> None:
    store = _vector_store(engine, prefix, fields=["key17"])
    store.put(
        ("test",), "doc3", {"key0": "aaa", "key1": "bbb", "key2": "ccc"}, index=["key0", "key1"]
    )
    store.put(
        ("test",), "doc4", {"key0": "eee", "key1": "bbb", "key3": "ggg"}, index=["key1", "key3"]
    )
    aaa = store.search(("test",), query="aaa")
    assert aaa[0].key == "doc3"
    assert aaa[0].score > aaa[1].score  # type: ignore[operator]
    assert store.search(("test",), query="ggg")[0].key == "doc4"
    bbb = store.search(("test",), query="bbb")
    assert bbb[0].score == pytest.approx(bbb[1].score, abs=1e-3)
    store.put(("test",), "doc5", {"key0": "hhh"}, index=False)
    plain = store.search(("test",))
    assert len(plain) == 3
    assert all(r.score is None for r in plain)


@pytest.mark.parametrize("distance", ["cosine", "inner_product", "l2"])
@pytest.mark.parametrize("query", ["aaa", "abcd", "poisson"])
def test_scores(engine: TiDBEngine, prefix: str, distance: str, query: str) -> None:
    store = _vector_store(engine, prefix, distance, fields=["key0"])
    store.put(("test",), "doc", {"key0": "aaa"})
    emb = CharacterEmbeddings()
    a, b = emb.embed_query("aaa"), emb.embed_query(query)
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    expected = {
        "cosine": dot,  # both unit vectors
        "inner_product": dot,
        "l2": -math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True))),
    }[distance]
    results = store.search((), query=query)
    assert len(results) == 1
    assert results[0].score == pytest.approx(expected, abs=1e-3)


def test_non_ascii(engine: TiDBEngine, prefix: str) -> None:
    store = _vector_store(engine, prefix)
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है"]
    for i, text in enumerate(texts, 1):
        store.put(("user_123", "memories"), str(i), {"text": text})
    for i, text in enumerate(texts, 1):
        assert store.search(("user_123", "memories"), query=text)[0].key == str(i)


def test_store_ttl(store: TiDBStore) -> None:
    """PostgresStore's TTL case: reads with refresh keep an item alive; without, it expires."""
    ns = ("foo",)
    # Reads that must find the item come 0.4 TTL after the last refresh (0.6 TTL of slack
    # for a loaded machine); the last wait ends 0.2 s past the TTL since the last refresh.
    step = 0.4 * TTL_SECONDS
    store.put(ns, key="item1", value={"foo": "bar"}, ttl=TTL_MINUTES)
    time.sleep(step)
    assert store.get(ns, key="item1", refresh_ttl=True) is not None
    time.sleep(step)
    assert len(store.search(ns, refresh_ttl=True)) == 1
    time.sleep(step)
    assert store.get(ns, key="item1", refresh_ttl=False) is not None
    time.sleep(TTL_SECONDS - step + 0.2)  # past the TTL since the last refresh
    assert store.search(ns, refresh_ttl=False) == []
    assert store.get(ns, key="item1") is None
    assert store.list_namespaces() == []


# ---------------------------------------------------------------------------------- added


FILTER_DATA: list[tuple[str, dict[str, Any]]] = [
    ("a", {"n": 1, "s": "apple", "tags": ["x"], "nested": {"k": 1}, "flag": True}),
    ("b", {"n": 2.5, "s": "banana", "tags": ["x", "y"], "nested": {"k": 2}}),
    ("c", {"n": 10, "s": "cherry", "tags": [], "nested": {"k": 1, "j": "z"}, "flag": False}),
    ("d", {"s": "date", "n": 0, "none": None}),
    ("e", {"n": -3, "s": "Apple", "dot.key": "v"}),
]
FILTERS: list[dict[str, Any]] = [
    {"s": "apple"},
    {"n": 1},
    {"n": {"$gt": 2}},
    {"n": {"$gte": 2.5}},
    {"n": {"$lt": 2.5}},
    {"n": {"$lte": 1, "$gt": -5}},
    {"n": {"$ne": 1}},
    {"n": {"$eq": 10}},
    {"tags": ["x"]},
    {"tags": {"$ne": ["x"]}},
    {"nested": {"k": 1}},
    {"nested": {"k": 1, "j": "z"}},
    {"flag": True},
    {"missing": {"$ne": 3}},
    {"dot.key": "v"},
    {"s": "apple", "n": {"$lt": 5}},
]


@pytest.mark.parametrize("filter_", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_agree_with_in_memory_store(store: TiDBStore, filter_: dict[str, Any]) -> None:
    reference = InMemoryStore()
    for key, value in FILTER_DATA:
        store.put(("f",), key, value)
        reference.put(("f",), key, value)
    ours = sorted(i.key for i in store.search(("f",), filter=filter_))
    theirs = sorted(i.key for i in reference.search(("f",), filter=filter_))
    assert ours == theirs


def test_filters_beyond_in_memory_store(store: TiDBStore) -> None:
    """Where InMemoryStore raises or differs: string ranges, and null as PostgresStore has it."""
    for key, value in FILTER_DATA:
        store.put(("f",), key, value)
    assert sorted(i.key for i in store.search(("f",), filter={"s": {"$gt": "b"}})) == [
        "b",
        "c",
        "d",
    ]
    # Like PostgresStore (value->'none' = 'null'): a present null, not a missing key.
    assert [i.key for i in store.search(("f",), filter={"none": None})] == ["d"]


def test_namespace_prefix_is_by_whole_labels(store: TiDBStore) -> None:
    for ns in [("user_1",), ("userX1",), ("user_1", "notes"), ("user_10",), ("a%",), ("ab",)]:
        store.put(ns, "k", {"ns": list(ns)})
    assert sorted(i.namespace for i in store.search(("user_1",))) == [
        ("user_1",),
        ("user_1", "notes"),
    ]
    assert [i.namespace for i in store.search(("a%",))] == [("a%",)]
    assert store.list_namespaces(prefix=("user_1",)) == [("user_1",), ("user_1", "notes")]
    assert store.list_namespaces(suffix=("notes",)) == [("user_1", "notes")]


def test_default_ttl_and_the_tidb_table_ttl(
    store: TiDBStore, prefix: str, tidb_engine: sa.Engine
) -> None:
    store.put(("t",), "short", {"v": 1})  # default_ttl applies
    store.put(("t",), "forever", {"v": 2}, ttl=None)
    with tidb_engine.connect() as conn:
        ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE `{prefix}store`").one()[1]
        rows = dict(conn.exec_driver_sql(f"SELECT `key`, ttl_minutes FROM `{prefix}store`").all())
    assert "TTL=`expires_at` + INTERVAL 0 MINUTE" in ddl
    assert "TTL_JOB_INTERVAL='1m'" in ddl
    assert rows == {"short": pytest.approx(TTL_MINUTES), "forever": None}
    with tidb_engine.begin() as conn:
        # TiDB's own TTL job (every minute) could delete the row first and make the
        # sweep's count 0: this table's job is switched off, so only the sweep deletes.
        conn.exec_driver_sql(f"ALTER TABLE `{prefix}store` TTL_ENABLE='OFF'")
    time.sleep(TTL_SECONDS + 0.5)
    assert [i.key for i in store.search(("t",))] == ["forever"]  # filtered before the job runs
    assert store.sweep_ttl() == 1
    with tidb_engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{prefix}store`").scalar_one() == 1


def test_vectors_expire_with_their_item(
    engine: TiDBEngine, prefix: str, tidb_engine: sa.Engine
) -> None:
    emb = CharacterEmbeddings()
    store = TiDBStore(
        engine=engine,
        table_prefix=prefix,
        index={"dims": emb.dims, "embed": emb},
        ttl={"default_ttl": 10.0},
    )
    store.put(("v",), "k", {"text": "hello"})
    with tidb_engine.connect() as conn:
        pair = conn.exec_driver_sql(
            f"SELECT s.expires_at = v.expires_at FROM `{prefix}store` s "
            f"JOIN `{prefix}store_vectors` v USING (prefix, `key`)"
        ).scalar_one()
        ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE `{prefix}store_vectors`").one()[1]
    assert pair == 1
    assert "TTL=`expires_at`" in ddl
    store.get(("v",), "k")  # refresh_on_read (default) moves both
    with tidb_engine.connect() as conn:
        same = conn.exec_driver_sql(
            f"SELECT s.expires_at = v.expires_at FROM `{prefix}store` s "
            f"JOIN `{prefix}store_vectors` v USING (prefix, `key`)"
        ).scalar_one()
    assert same == 1


def test_search_is_one_statement(engine: TiDBEngine, prefix: str) -> None:
    """A search is one round trip: with a query (nearest vectors first), with a query and a
    filter (the grouped exact statement), and without a query; a regression to more fails."""
    store = _vector_store(engine, prefix)
    for i in range(30):
        store.put(("docs", f"g{i % 3}"), f"d{i}", {"text": f"document {i} on topic {i % 7}"})
    store.search(("docs",), query="warm up")  # the tables are checked once, on first use
    hits, sent = sent_by(engine, lambda: store.search(("docs",), query="topic 3", limit=5))
    assert len(hits) == 5
    assert len(sent) == 1, sent
    assert "GROUP BY" not in sent[0]  # ranks the vectors table alone, then joins the items
    page, sent = sent_by(
        engine, lambda: store.search(("docs",), query="topic 3", limit=2, offset=3)
    )
    assert [h.key for h in page] == [h.key for h in hits[3:5]]
    assert len(sent) == 1, sent
    filtered, sent = sent_by(
        engine, lambda: store.search(("docs", "g1"), query="topic 3", filter={"text": {"$ne": ""}})
    )
    assert filtered
    assert len(sent) == 1, sent
    recent, sent = sent_by(engine, lambda: store.search(("docs",), limit=3))
    assert len(recent) == 3
    assert len(sent) == 1, sent


def _exact(store: TiDBStore, labels: tuple[str, ...], query: str, limit: int) -> list[Any]:
    # A filter every item passes sends the search through the grouped exact statement.
    hits = store.search(labels, query=query, limit=limit, filter={"n": {"$gte": 0}})
    return [(h.namespace, h.key, round(h.score or 0, 6)) for h in hits]


def test_nearest_vectors_first_matches_the_grouped_statement(
    engine: TiDBEngine, prefix: str, tidb_engine: sa.Engine
) -> None:
    """Items with many vectors (a list field) and vectors whose item is gone: the pool widens
    until the page is full, and the page is the grouped exact statement's."""
    store = _vector_store(engine, prefix, fields=["tags[*]"])
    for i in range(24):
        tags = [f"{chr(97 + i) * 6} {j}" for j in range(6)]  # an item's vectors lie together
        store.put(("t", f"g{i % 2}"), f"k{i}", {"tags": tags, "n": i})
    with tidb_engine.begin() as conn:  # as TiDB's TTL job may leave them for a while
        conn.exec_driver_sql(f"DELETE FROM `{prefix}store` WHERE `key` IN ('k3', 'k8', 'k13')")
    rounds = []
    for labels in [("t",), ("t", "g1"), ()]:
        for query in ["dddddd", "eeeeee 2", "nnnnnn", "xxxx"]:
            hits, sent = sent_by(engine, partial(store.search, labels, query=query, limit=4))
            got = [(h.namespace, h.key, round(h.score or 0, 6)) for h in hits]
            assert got == _exact(store, labels, query, 4)
            assert len(got) == 4
            assert not {"k3", "k8", "k13"} & {h.key for h in hits}
            assert len(sent) <= 4, sent  # widened, never one statement per item
            rounds.append(len(sent))
    assert max(rounds) > 1, rounds  # the pool did widen


def test_index_defaults_to_titan(
    engine: TiDBEngine, prefix: str, bedrock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock.endpoint_url)
    store = TiDBStore(engine=engine, table_prefix=prefix, index={"dims": 256, "fields": ["text"]})
    from langchain_tidb_bedrock import BedrockTitanEmbeddings

    assert isinstance(store.embeddings, BedrockTitanEmbeddings)
    store.put(("docs",), "tidb", {"text": "TiDB is a distributed SQL database"})
    store.put(("docs",), "tea", {"text": "Green tea is brewed at 80 degrees"})
    hits = store.search(("docs",), query="what is a distributed SQL database?", limit=1)
    assert [h.key for h in hits] == ["tidb"]


def test_dims_mismatch_with_existing_table_is_refused(engine: TiDBEngine, prefix: str) -> None:
    _vector_store(engine, prefix).put(("x",), "k", {"text": "a"})
    other = TiDBStore(
        engine=engine, table_prefix=prefix, index={"dims": 8, "embed": CharacterEmbeddings(8)}
    )
    with pytest.raises(InvalidInputError, match="holds vector\\(64\\)"):
        other.get(("x",), "k")


def test_limits_and_bad_input(store: TiDBStore) -> None:
    with pytest.raises(InvalidInputError, match="key is 256 characters"):
        store.put(("a",), "k" * 256, {"v": 1})
    with pytest.raises(InvalidInputError, match="ttl"):
        store.batch([PutOp(("a",), "k", {"v": 1}, ttl=-1)])
    with pytest.raises(ValueError, match="periods"):
        store.batch([PutOp(("a.b",), "k", {"v": 1})])
    assert store.search(("a",)) == []


async def test_async_twins(engine: TiDBEngine, prefix: str) -> None:
    store = _vector_store(engine, prefix)
    await store.aput(("u", "ana"), "m1", {"text": "likes green tea"})
    await store.aput(("u", "ana"), "m2", {"text": "lives in Lisbon"})
    await store.aput(("u", "bo"), "m1", {"text": "likes coffee"})
    item = await store.aget(("u", "ana"), "m1")
    assert item is not None
    assert item.value == {"text": "likes green tea"}
    hits = await store.asearch(("u", "ana"), query="lives in Lisbon", limit=1)
    assert [h.key for h in hits] == ["m2"]
    assert await store.alist_namespaces(prefix=("u",)) == [("u", "ana"), ("u", "bo")]
    await store.adelete(("u", "ana"), "m1")
    assert await store.aget(("u", "ana"), "m1") is None


@pytest.mark.tiflash
def test_hnsw_index_serves_search_where_tiflash_is(
    engine: TiDBEngine, prefix: str, tidb_engine: sa.Engine
) -> None:
    """With TiFlash the vectors table gets an HNSW index and search reads candidates from it
    (an ``annIndex`` plan); results equal the exact path's."""
    from helpers.tiflash import wait_for_tiflash_replica

    store = _vector_store(engine, prefix)
    for i in range(40):
        store.put(("docs", f"g{i % 3}"), f"d{i}", {"text": f"document {i} about topic {i % 7}"})
    assert store._hnsw
    wait_for_tiflash_replica(tidb_engine, f"{prefix}store_vectors")
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        statements.append((statement, params))

    sa.event.listen(engine.sync_read, "before_cursor_execute", record)
    try:
        ann = store.search(("docs",), query="topic 3", limit=5, filter={"text": {"$ne": "x"}})
    finally:
        sa.event.remove(engine.sync_read, "before_cursor_execute", record)
    statement, params = statements[-1]
    with tidb_engine.connect() as conn:
        plan = "\n".join(str(r) for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
    assert "annIndex:COSINE(" in plan
    store._hnsw = False  # the exact path, for comparison
    exact = store.search(("docs",), query="topic 3", limit=5, filter={"text": {"$ne": "x"}})
    assert [(i.key, round(i.score or 0, 5)) for i in ann] == [
        (i.key, round(i.score or 0, 5)) for i in exact
    ]
