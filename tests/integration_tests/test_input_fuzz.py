"""Fuzzed writes and filters on a real TiDB: a clear error and nothing written, or an exact trip.

Lists are checked whole before anything is written, so a bad value anywhere in the input leaves
the table untouched, and the error names the problem and its position in the caller's list.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from filter_reference import matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_tidb_bedrock import FilterError, TiDBVectorStore

DIM = 3

_AWKWARD_TEXT = [
    "plain",
    "",
    "   ",
    "tab\tnew\nline",
    "数据 😀",
    "lone \ud800 surrogate",
    "x" * 300,
]
_AWKWARD_IDS = [None, "", "a", "a ", "é", "bad \udfff", "z" * 200]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**64 - 1, 2**64, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(["\ud800", "ok"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), children, max_size=3),
    ),
    max_leaves=8,
)
_METADATA = st.one_of(
    st.dictionaries(st.text(max_size=4), _JSON, max_size=3),
    st.sampled_from([None, [], "meta", {1: "int key"}, {"1": 1, 1: 2}]),
)
_VECTORS = st.one_of(
    st.lists(st.floats(-2, 2, allow_nan=False, width=32), min_size=DIM, max_size=DIM),
    st.sampled_from([[0.0] * DIM, [math.nan, 1, 1], [1.0, math.inf, 0], [1.0, 2.0], "1,2,3"]),
)


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        node = {"n": node}
    return node


@pytest.fixture(scope="module")
def store(tidb_url: str) -> Iterator[TiDBVectorStore]:
    s = TiDBVectorStore(
        None,
        connection_string=tidb_url,
        table_name=f"fuzz_{uuid.uuid4().hex[:10]}",
        embedding_dimension=DIM,
    )
    s.create_table()
    yield s
    s.drop_table()
    s.close()


def _same(a: Any, b: Any) -> bool:
    # Equal values; TiDB may print an integral double as an integer (1.0 -> 1), which Python
    # compares equal, so == is the exactness we can promise (see encode_metadata).
    return bool(a == b)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    docs=st.lists(
        st.tuples(
            st.sampled_from(_AWKWARD_TEXT) | st.text(max_size=8),
            _METADATA,
            st.sampled_from(_AWKWARD_IDS),
            _VECTORS,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_writes_are_all_or_nothing_with_exact_round_trips(
    store: TiDBVectorStore, docs: list[tuple[Any, Any, Any, Any]]
) -> None:
    store.clear()
    texts = [d[0] for d in docs]
    metas = [d[1] for d in docs]
    ids = [d[2] for d in docs]
    vectors = [d[3] for d in docs]
    try:
        written = store.add_embeddings(texts, vectors, metas, ids=ids)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert "position" in message or "ids" in message or "lengths" in message, message
        assert store.count() == 0, f"{message!r} but rows were written"
        return
    assert store.count() == len(docs)
    got = {d.id: d for d in store.get_by_ids(written)}
    for n, doc_id in enumerate(written):
        assert got[doc_id].page_content == texts[n]
        assert _same(got[doc_id].metadata, metas[n] or {})


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({1: "a"}, "non-string key 1"),
        ({"n": {"deep": {2: 1}}}, "key 'n.deep'"),
        ({"big": 2**64}, "outside the 64-bit range"),
        ({"s": "\ud800"}, "not valid UTF-8"),
        (_nested(100), "nested deeper than TiDB's 100 levels"),
        (_nested(5000), "nested deeper than TiDB's 100 levels"),  # no RecursionError
    ],
)
def test_metadata_refusals_name_the_late_position_and_write_nothing(
    store: TiDBVectorStore, meta: dict[Any, Any], needle: str
) -> None:
    store.clear()
    metas: list[dict[Any, Any]] = [{"ok": 1}] * 700 + [meta]  # past the first batch of 500
    with pytest.raises(ValueError, match="position 700") as info:
        store.add_embeddings(["t"] * 701, [[1.0, 0, 0]] * 701, metas)
    assert needle in str(info.value)
    assert store.count() == 0


def test_deepest_allowed_metadata_round_trips(store: TiDBVectorStore) -> None:
    store.clear()
    meta = _nested(98)  # the document object, 98 nested objects and the leaf's: 100 levels
    [doc_id] = store.add_embeddings(["t"], [[1.0, 0, 0]], [meta])
    assert store.get_by_ids([doc_id])[0].metadata == meta


def test_texts_to_embed_are_checked_whole_before_embedding(tidb_url: str) -> None:
    class Counting:
        calls = 0
        rejects_blank_texts = True  # as BedrockTitanEmbeddings says

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            Counting.calls += 1
            return [[1.0, 0, 0] for _ in texts]

        def embed_query(self, text: str) -> list[float]:
            return [1.0, 0, 0]

    s = TiDBVectorStore(
        Counting(),  # type: ignore[arg-type]
        connection_string=tidb_url,
        table_name=f"fuzz_{uuid.uuid4().hex[:10]}",
        batch_size=2,
    )
    try:
        for texts, needle in [
            (["a", "b", "c", "  "], "position 3 is empty or whitespace only"),
            (["a", "b", "c", "x\ud800"], "position 3 is not valid UTF-8"),
        ]:
            with pytest.raises(ValueError, match=needle):
                s.add_texts(texts)
        with pytest.raises(ValueError, match="id at position 2 is not valid UTF-8"):
            s.add_texts(["a", "b", "c"], ids=["1", "2", "\udc80"])
        assert Counting.calls == 0  # nothing embedded, nothing written
        assert s.count() == 0
    finally:
        s.drop_table()
        s.close()


_JUNK_FILTERS: list[Any] = [[], (), 0, False, "", "a = 1", [{"a": 1}], {"a": {"$zz": 1}}]


@pytest.mark.parametrize("junk", _JUNK_FILTERS, ids=repr)
def test_junk_filters_are_refused_everywhere(store: TiDBVectorStore, junk: Any) -> None:
    store.clear()
    store.add_embeddings(["a"], [[1.0, 0, 0]], [{"a": 1}], ids=["1"])
    with pytest.raises(FilterError):
        store.similarity_search_by_vector([1.0, 0, 0], k=1, filter=junk)
    with pytest.raises(FilterError):
        store.get(filter=junk)
    with pytest.raises(FilterError):
        store.delete(filter=junk)
    assert store.count() == 1


def test_list_metadata_is_filterable_on_tidb(store: TiDBVectorStore) -> None:
    store.clear()
    metas = [{"tags": ["x", "y"]}, {"tags": ["y"]}, {"tags": "x"}, {"tags": [1, "x "]}]
    ids = store.add_embeddings(["a", "b", "c", "d"], [[1.0, 0, 0]] * 4, metas)
    for flt in (
        {"tags": {"$contains": "x"}},
        {"tags": {"$contains": 1.0}},
        {"$not": [{"tags": {"$contains": "y"}}, {"tags": "x"}]},
    ):
        got = {d.id for d in store.get(filter=flt)}
        expected = {i for i, m in zip(ids, metas, strict=True) if matches(flt, m)}
        assert got == expected, flt
    assert {d.id for d in store.get(filter={"tags": {"$contains": "x"}})} == {ids[0]}


def test_delete_with_ids_and_filter_keeps_ids_outside_the_filter(store: TiDBVectorStore) -> None:
    store.clear()
    store.add_embeddings(
        ["a", "b", "c"],
        [[1.0, 0, 0]] * 3,
        [{"tenant": "t1"}, {"tenant": "t2"}, {"tenant": "t1"}],
        ids=["1", "2", "3"],
    )
    store.delete(ids=["1", "2"], filter={"tenant": "t1"})  # the tenant filter as a guard
    assert sorted(d.id for d in store.get()) == ["2", "3"]  # type: ignore[type-var]


def test_store_sees_a_table_created_after_it_looked(tidb_url: str, tidb_engine: sa.Engine) -> None:
    name = f"fuzz_{uuid.uuid4().hex[:10]}"
    early = TiDBVectorStore(None, connection_string=tidb_url, table_name=name)
    other = TiDBVectorStore(None, connection_string=tidb_url, table_name=name)
    try:
        assert early.count() == 0  # looked before the table existed
        assert early.similarity_search_by_vector([1.0, 0, 0], k=1) == []
        other.add_embeddings(["a", "b"], [[1.0, 0, 0], [0, 1.0, 0]], ids=["1", "2"])
        assert early.count() == 2
        assert [d.id for d in early.similarity_search_by_vector([1.0, 0, 0], k=1)] == ["1"]
        assert [d.id for d in early.get_by_ids(["2"])] == ["2"]
        early.delete(["1"])
        assert other.count() == 1
    finally:
        other.drop_table()
        early.close()
        other.close()


def test_blank_texts_in_a_generator_are_refused_before_their_batch(tidb_url: str) -> None:
    class Strict:
        rejects_blank_texts = True

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[1.0, 0, 0] for _ in texts]

        def embed_query(self, text: str) -> list[float]:
            return [1.0, 0, 0]

    s = TiDBVectorStore(
        Strict(),  # type: ignore[arg-type]
        connection_string=tidb_url,
        table_name=f"fuzz_{uuid.uuid4().hex[:10]}",
        batch_size=2,
    )
    try:
        with pytest.raises(ValueError, match="position 3 is empty"):
            s.add_texts(t for t in ["a", "b", "c", ""])
        assert s.count() == 2  # generators are checked batch by batch: the first batch is in
    finally:
        s.drop_table()
        s.close()
