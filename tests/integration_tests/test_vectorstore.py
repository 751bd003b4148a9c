"""TiDBVectorStore behaviour beyond the standard suite, on a real TiDB."""

from __future__ import annotations

import math
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from langchain_tidb_bedrock import DistanceStrategy, TiDBVectorStore, TiFlashUnavailableError


class TableEmbeddings(Embeddings):
    """Vectors looked up by text (deterministic random for unknown texts); counts calls."""

    def __init__(self, vectors: dict[str, list[float]] | None = None, size: int = 4) -> None:
        self.vectors = vectors or {}
        self.size = size
        self.calls = 0
        self.texts_embedded = 0
        self._fake = DeterministicFakeEmbedding(size=size)

    def _one(self, text: str) -> list[float]:
        if text in self.vectors:
            return list(self.vectors[text])
        return [float(x) for x in self._fake.embed_query(text)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        self.texts_embedded += len(texts)
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return self._one(text)


StoreFactory = Callable[..., TiDBVectorStore]


@pytest.fixture
def make_store(tidb_url: str) -> Iterator[StoreFactory]:
    stores: list[TiDBVectorStore] = []

    def factory(embedding: Embeddings | None = None, **kwargs: Any) -> TiDBVectorStore:
        kwargs.setdefault("table_name", f"vs_{uuid.uuid4().hex[:12]}")
        store = TiDBVectorStore(
            embedding if embedding is not None else TableEmbeddings(),
            connection_string=tidb_url,
            **kwargs,
        )
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.drop_table()
        store.close()


def _rows(store: TiDBVectorStore) -> int:
    return store.count()


# ---------------------------------------------------------------- construction


def test_construction_touches_neither_model_nor_database() -> None:
    emb = TableEmbeddings()
    # An unreachable port: construction must not connect.
    store = TiDBVectorStore(emb, connection_string="mysql+pymysql://root@127.0.0.1:1/test")
    assert emb.calls == 0
    assert "langchain_vector" in repr(store)


def test_password_never_in_repr_or_errors() -> None:
    store = TiDBVectorStore(
        TableEmbeddings(), connection_string="mysql+pymysql://u:s3cr3t-pw@127.0.0.1:1/test"
    )
    assert "s3cr3t-pw" not in repr(store)
    with pytest.raises(sa.exc.OperationalError) as info:
        store.similarity_search("x")
    assert "s3cr3t-pw" not in str(info.value)


@pytest.mark.parametrize("name", ["a;DROP TABLE x", "t`x", "1abc", "", "a" * 65, "x y", "t'--"])
def test_invalid_table_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid table name"):
        TiDBVectorStore(
            TableEmbeddings(), connection_string="mysql+pymysql://root@h/db", table_name=name
        )


def test_no_connection_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TIDB_HOST", "TIDB_URL", "TIDB_PORT", "TIDB_USER", "TIDB_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    # Nothing set: the local tidb-server, started on first use (see test_readme), not here.
    store = TiDBVectorStore(TableEmbeddings())
    assert "local tidb-server" in repr(store.tidb_engine)
    monkeypatch.setenv("TIDB_USER", "app")  # a partial set is an error, never a fallback
    with pytest.raises(ValueError, match="TIDB_HOST"):
        TiDBVectorStore(TableEmbeddings())


def test_context_manager_closes_engine(tidb_url: str) -> None:
    with TiDBVectorStore(TableEmbeddings(), connection_string=tidb_url) as store:
        assert store.count() == 0
    assert store.engine.pool.checkedout() == 0


# ---------------------------------------------------------------- writes


def test_upsert_replaces_text_metadata_and_vector(make_store: StoreFactory) -> None:
    emb = TableEmbeddings({"old": [1, 0, 0, 0], "new": [0, 1, 0, 0]})
    store = make_store(emb)
    store.add_texts(["old"], [{"v": 1}], ids=["a"])
    store.add_texts(["new"], [{"v": 2}], ids=["a"])
    assert _rows(store) == 1
    (doc,) = store.get_by_ids(["a"])
    assert doc == Document(id="a", page_content="new", metadata={"v": 2})
    ((hit, distance),) = store.similarity_search_with_score_by_vector([0, 1, 0, 0], k=1)
    assert hit.id == "a"
    assert distance == pytest.approx(0.0, abs=1e-6)


def test_generator_input_and_batches(make_store: StoreFactory) -> None:
    store = make_store(batch_size=7)
    texts = (f"text {i}" for i in range(50))
    metas = ({"i": i} for i in range(50))
    ids = store.add_texts(texts, metas)
    assert len(ids) == 50
    assert len(set(ids)) == 50
    assert _rows(store) == 50
    docs = store.get_by_ids(ids[::10])
    assert [d.metadata["i"] for d in docs] == [0, 10, 20, 30, 40]


def test_inputs_are_not_mutated_and_metadata_round_trips(make_store: StoreFactory) -> None:
    store = make_store()
    meta = {
        "id": 7,
        "int": 3,
        "float": 2.5,
        "neg": -1e-3,
        "big": 2**53,
        "str": 'O\'Reilly "quoted" ; DROP TABLE x; -- \\ % _',
        "unicode": "数据库 ✓",
        "bool": True,
        "none": None,
        "list": [1, "a", None],
        "nested": {"a": {"b": [1, 2]}},
    }
    docs = [Document(page_content="p", metadata=meta)]
    snapshot = [d.model_copy(deep=True) for d in docs]
    (doc_id,) = store.add_documents(docs)
    assert docs == snapshot
    assert docs[0].id is None
    (back,) = store.get_by_ids([doc_id])
    assert back.metadata == meta
    assert type(back.metadata["int"]) is int
    assert type(back.metadata["float"]) is float
    assert back.metadata["id"] == 7


def test_none_ids_get_generated(make_store: StoreFactory) -> None:
    store = make_store()
    ids = store.add_texts(["a", "b"], ids=["given", None])  # type: ignore[list-item]
    assert ids[0] == "given"
    assert uuid.UUID(ids[1])


def test_add_embeddings_uses_no_model(make_store: StoreFactory) -> None:
    emb = TableEmbeddings(size=3)
    store = make_store(emb)
    ids = store.add_embeddings(["x", "y"], [[1.0, 0, 0], [0, 1.0, 0]], [{"k": 1}, {"k": 2}])
    assert emb.calls == 0
    hits = store.similarity_search_by_vector([0.1, 1, 0], k=2)
    assert [h.id for h in hits] == [ids[1], ids[0]]


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("ids length", {"texts": ["a", "b"], "ids": ["1"]}, "2 texts but 1 ids"),
    ("metadatas length", {"texts": ["a", "b"], "metadatas": [{}]}, "2 texts but 1 metadatas"),
    ("duplicate ids", {"texts": ["a", "b"], "ids": ["1", "1"]}, "duplicate id '1'"),
    ("non-JSON metadata", {"texts": ["a"], "metadatas": [{"d": object()}]}, "not JSON"),
    ("NaN metadata", {"texts": ["a"], "metadatas": [{"d": math.nan}]}, "not JSON"),
    ("non-dict metadata", {"texts": ["a"], "metadatas": ["x"]}, "must be a dict"),
    ("empty id", {"texts": ["a"], "ids": [""]}, "non-empty string"),
    ("long id", {"texts": ["a"], "ids": ["x" * 300]}, "allows 255"),
    ("non-str text", {"texts": ["a", 3]}, "must be a string"),
]


@pytest.mark.parametrize(("label", "kwargs", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_before_any_write(
    make_store: StoreFactory, label: str, kwargs: dict[str, Any], message: str
) -> None:
    store = make_store()
    store.add_texts(["seed"], ids=["seed"])
    texts = kwargs.pop("texts")
    with pytest.raises(ValueError, match=message):
        store.add_texts(texts, **kwargs)
    assert _rows(store) == 1


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        ([[1.0, 0.0, 0.0, 0.0], [1.0, 2.0]], "mismatch at position 1: expected 4 numbers, got 2"),
        ([[1.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], "mismatch at position 1"),
        ([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], "dimension mismatch at position 0"),
        ([[1.0, 0.0, 0.0, 0.0], "1,2,3,4"], "position 1 must be a list of numbers"),
        ([[1.0, 0.0, 0.0, 0.0], [math.nan, 0.0, 0.0, 0.0]], "position 1 contains NaN"),
        ([[1.0, 0.0, 0.0, 0.0], [math.inf, 0.0, 0.0, 0.0]], "position 1 contains NaN or inf"),
        ([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], "position 1 is all zeros"),
    ],
)
def test_bad_vectors_are_refused_before_any_write(
    make_store: StoreFactory, vectors: list[list[float]], message: str
) -> None:
    store = make_store()
    store.add_embeddings(["seed"], [[0.5, 0.5, 0.5, 0.5]], ids=["seed"])
    with pytest.raises(ValueError, match=message):
        store.add_embeddings(["a", "b"], vectors)
    assert _rows(store) == 1


def test_wrong_model_dimension_is_refused_before_write(make_store: StoreFactory) -> None:
    store = make_store(TableEmbeddings(size=4))
    store.add_texts(["seed"])
    other = TiDBVectorStore(
        TableEmbeddings(size=5), engine=store.engine, table_name=store.table_name
    )
    with pytest.raises(ValueError, match="stores 4-dimensional vectors, got 5"):
        other.add_texts(["a", "b"])
    assert _rows(store) == 1


# ---------------------------------------------------------------- deletes


def test_delete_without_arguments_refuses(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_texts(["a", "b"])
    with pytest.raises(ValueError, match="refusing to delete every row"):
        store.delete()
    with pytest.raises(ValueError, match="refusing"):
        store.delete(ids=None)
    assert _rows(store) == 2
    store.clear()
    assert _rows(store) == 0


def test_delete_by_filter_and_ids(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_texts(
        ["a", "b", "c", "d"],
        [{"g": "x"}, {"g": "y"}, {"g": "x"}, {"g": "z"}],
        ids=["1", "2", "3", "4"],
    )
    store.delete(filter={"g": "x"})
    assert sorted(d.id for d in store.get_by_ids(["1", "2", "3", "4"])) == ["2", "4"]  # type: ignore[type-var]
    store.delete(["2", "missing"])
    assert [d.id for d in store.get_by_ids(["1", "2", "3", "4"])] == ["4"]
    with pytest.raises(ValueError, match="unknown operator"):
        store.delete(filter={"g": {"$regex": "x"}})
    for match_all in ({"$and": [{}]}, {"$or": [{}]}, {"$not": {"$and": [{}]}}):
        with pytest.raises(ValueError, match="empty filter"):
            store.delete(filter=match_all)
    assert _rows(store) == 1


async def test_async_delete_filter_and_clear(make_store: StoreFactory) -> None:
    store = make_store()
    await store.aadd_texts(["a", "b", "c"], [{"n": 1}, {"n": 2}, {"n": 3}])
    await store.adelete(filter={"n": {"$gte": 2}})
    assert [d.page_content for d in await store.asimilarity_search("a", k=5)] == ["a"]
    with pytest.raises(ValueError, match="refusing"):
        await store.adelete()
    await store.aclear()
    assert await store.asimilarity_search("a") == []
    await store.aclose()


# ---------------------------------------------------------------- search


def test_get_by_ids_keeps_input_order(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_texts(["a", "b", "c"], ids=["1", "2", "3"])
    assert [d.id for d in store.get_by_ids(["3", "x", "1", "3", "2"])] == ["3", "1", "2"]


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_relevance_scores_per_metric(make_store: StoreFactory, metric: str) -> None:
    vectors = {
        "same": [1.0, 0.0, 0.0, 0.0],
        "near": [0.8, 0.6, 0.0, 0.0],
        "orthogonal": [0.0, 1.0, 0.0, 0.0],
        "opposite": [-1.0, 0.0, 0.0, 0.0],
    }
    store = make_store(
        TableEmbeddings({**vectors, "q": [1.0, 0.0, 0.0, 0.0]}), distance_strategy=metric
    )
    store.add_texts(list(vectors), ids=list(vectors))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "opposite" scores below 0, as in PGVector
        scored = store.similarity_search_with_relevance_scores("q", k=4)
    assert [d.id for d, _ in scored] == ["same", "near", "orthogonal", "opposite"]
    scores = [s for _, s in scored]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    # The scale of langchain-core's functions (and so of PGVector, Chroma, pytidb): unit
    # vectors, so cosine relevance is the dot product, and L2 is 1 - d / sqrt(2).
    q = np.array([1.0, 0, 0, 0])
    dot = {k: float(np.dot(v, q)) for k, v in vectors.items()}
    if metric == "cosine":
        expected = [dot[k] for k in vectors]
    elif metric == "inner_product":  # core's max-inner-product function of d = -<a, b>
        expected = [1.0 + dot[k] if dot[k] < 0 else dot[k] for k in vectors]
    else:
        expected = [
            1 - float(np.linalg.norm(np.array(v) - q)) / np.sqrt(2) for v in vectors.values()
        ]
    assert scores == pytest.approx(expected, abs=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threshold = store.as_retriever(
            search_type="similarity_score_threshold",
            search_kwargs={"score_threshold": 0.7, "k": 4},
        ).invoke("q")
    assert [d.id for d in threshold] == [
        k for k, e in zip(vectors, expected, strict=True) if e >= 0.7
    ]


def test_relevance_score_fn_override(make_store: StoreFactory) -> None:
    store = make_store(
        TableEmbeddings({"a": [1.0, 0, 0, 0], "q": [1.0, 0, 0, 0]}),
        relevance_score_fn=lambda d: 42.0 - d,
    )
    store.add_texts(["a"], ids=["a"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [(_, score)] = store.similarity_search_with_relevance_scores("q", k=1)
    assert score == pytest.approx(42.0, abs=1e-6)


def test_zero_query_vector_is_refused_for_cosine(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_texts(["a"])
    with pytest.raises(ValueError, match="all zeros"):
        store.similarity_search_by_vector([0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="dimension mismatch"):
        store.similarity_search_by_vector([1.0, 0.0])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        store.similarity_search("a", k=0)


def test_mmr_prefers_diverse_results(make_store: StoreFactory) -> None:
    vectors = {
        "q": [1.0, 0.0, 0.0, 0.0],
        "dup1": [0.99, 0.1, 0.0, 0.0],
        "dup2": [0.99, 0.1, 0.001, 0.0],
        "dup3": [0.98, 0.12, 0.0, 0.0],
        "other": [0.7, 0.0, 0.7, 0.0],
    }
    store = make_store(TableEmbeddings(vectors))
    store.add_texts([t for t in vectors if t != "q"], ids=[t for t in vectors if t != "q"])
    plain = [d.id for d in store.similarity_search("q", k=2)]
    assert plain[0].startswith("dup")
    assert plain[1].startswith("dup")
    diverse = [
        d.id for d in store.max_marginal_relevance_search("q", k=2, fetch_k=4, lambda_mult=0.3)
    ]
    assert diverse[0].startswith("dup")
    assert diverse[1] == "other"
    retriever = store.as_retriever(
        search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.3}
    )
    assert [d.id for d in retriever.invoke("q")] == diverse


async def test_async_mmr_and_scores(make_store: StoreFactory) -> None:
    vectors = {
        "q": [1.0, 0, 0, 0],
        "a": [1.0, 0.01, 0, 0],
        "b": [1.0, 0.02, 0, 0],
        "c": [0.6, 0, 0.8, 0],
    }
    store = make_store(TableEmbeddings(vectors))
    await store.aadd_texts(["a", "b", "c"], ids=["a", "b", "c"])
    docs = await store.amax_marginal_relevance_search("q", k=2, fetch_k=3, lambda_mult=0.2)
    assert [d.id for d in docs] == ["a", "c"]
    scored = await store.asimilarity_search_with_relevance_scores("q", k=3)
    assert [d.id for d, _ in scored] == ["a", "b", "c"]
    await store.aclose()


def test_filtered_search_strategies_return_k_matches(make_store: StoreFactory) -> None:
    # 1 row in 50 matches; a post-filter over the first k*10 candidates alone would come up short.
    store = make_store(TableEmbeddings(size=8))
    n = 400
    store.add_texts([f"doc {i}" for i in range(n)], [{"bucket": i % 50} for i in range(n)])
    for strategy in ("pre", "post", "auto"):
        hits = store.similarity_search("doc 3", k=5, filter={"bucket": 7}, filter_strategy=strategy)
        assert len(hits) == 5, strategy
        assert all(h.metadata["bucket"] == 7 for h in hits)
    pre = store.similarity_search_with_score(
        "doc 3", k=8, filter={"bucket": 7}, filter_strategy="pre"
    )
    post = store.similarity_search_with_score(
        "doc 3", k=8, filter={"bucket": 7}, filter_strategy="post"
    )
    assert [d.id for d, _ in pre] == [d.id for d, _ in post]
    with pytest.raises(ValueError, match="filter_strategy"):
        store.similarity_search("x", filter={"bucket": 1}, filter_strategy="sideways")  # type: ignore[arg-type]


def test_knn_sql_has_the_index_compatible_shape(make_store: StoreFactory) -> None:
    for metric, fn in (("cosine", "VEC_COSINE_DISTANCE"), ("l2", "VEC_L2_DISTANCE")):
        store = make_store(distance_strategy=metric)
        sql = " ".join(store.knn_sql(k=7).split())
        assert f"{fn}({store.table_name}.embedding, %(qv)s) AS distance" in sql
        assert sql.endswith("ORDER BY distance ASC LIMIT %(param_1)s")
        assert "WHERE" not in sql
    # The post-filter keeps that shape in its inner query and filters outside it.
    q = store._table.queries
    inner_and_outer = str(
        q.knn_postfilter("[1]", 4, 40, {"a": 1}).compile(dialect=store.engine.dialect)
    )
    inner = inner_and_outer[
        inner_and_outer.index("(SELECT") : inner_and_outer.index(") AS candidates")
    ]
    assert "WHERE" not in inner
    assert "ORDER BY distance ASC" in inner
    assert "LIMIT" in inner
    assert "WHERE" in inner_and_outer.split(") AS candidates")[1]


def test_index_operations_without_tiflash_say_why(
    make_store: StoreFactory, tidb_has_tiflash: bool
) -> None:
    if tidb_has_tiflash:
        pytest.skip("this server has TiFlash")
    store = make_store()
    store.add_texts(["a"])
    for call in (store.create_vector_index, store.vector_index_status, lambda: store.explain("a")):
        with pytest.raises(TiFlashUnavailableError, match="no TiFlash store"):
            call()


def test_explicit_vector_index_on_server_without_tiflash_falls_back(
    make_store: StoreFactory, tidb_has_tiflash: bool, caplog: pytest.LogCaptureFixture
) -> None:
    if tidb_has_tiflash:
        pytest.skip("this server has TiFlash")
    store = make_store(vector_index=True)
    with caplog.at_level("WARNING"):
        store.add_texts(["a", "b"])
    assert "exact kNN" in caplog.text
    assert [d.page_content for d in store.similarity_search("a", k=1)] == ["a"]


def test_exact_search_notice_is_logged_once_per_table(
    make_store: StoreFactory, tidb_has_tiflash: bool, caplog: pytest.LogCaptureFixture
) -> None:
    if tidb_has_tiflash:
        pytest.skip("this server has TiFlash")
    first = make_store()
    with caplog.at_level("WARNING"):
        first.add_texts(["a"])
        again = make_store(table_name=first.table_name)  # a second object, same table
        again.similarity_search("a", k=1)
        first.similarity_search("a", k=1)
    assert caplog.text.count("exact kNN") == 1


@pytest.mark.tiflash
def test_vector_index_is_created_and_used(make_store: StoreFactory, tidb_engine: sa.Engine) -> None:
    from helpers.tiflash import wait_for_tiflash_replica

    store = make_store(TableEmbeddings(size=8))
    store.add_texts([f"doc {i}" for i in range(20)])
    status = store.vector_index_status()
    assert status
    assert status[0]["INDEX_KIND"] == "HNSW"
    wait_for_tiflash_replica(tidb_engine, store.table_name)  # replicas become available async
    assert store.explain("doc 1").uses_vector_index


@pytest.mark.tiflash
def test_ann_with_string_primary_key(make_store: StoreFactory, tidb_engine: sa.Engine) -> None:
    # pingcap/tidb#57627: ANN over a clustered non-int primary key once returned nothing.
    from helpers.tiflash import wait_for_tiflash_replica

    emb = TableEmbeddings(size=8)
    store = make_store(emb)
    texts = [f"doc {i}" for i in range(20)]
    store.add_texts(texts, ids=[f"id-{i}" for i in range(20)])
    wait_for_tiflash_replica(tidb_engine, store.table_name)  # until then plans avoid TiFlash
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, sql: str, params: Any, *args: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT") and "distance" in sql:
            sent.append((sql, params))

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        hits = store.similarity_search("doc 3", k=5)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    # The search that ran is the one that reads the index...
    [(sql, params)] = sent
    with tidb_engine.connect() as conn:
        plan = " ".join(
            str(v) for row in conn.exec_driver_sql("EXPLAIN " + sql, params) for v in row
        )
    assert "annIndex:COSINE(" in plan, plan
    # ...and it returns the 5 nearest by cosine distance, computed here.
    vectors = np.asarray(emb.embed_documents(texts), dtype=np.float32)
    query = np.asarray(emb.embed_query("doc 3"), dtype=np.float32)
    cosine = 1 - vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    assert [d.id for d in hits] == [f"id-{i}" for i in np.argsort(cosine)[:5]]


# ---------------------------------------------------------------- legacy adoption


class _PlainFloats(TableEmbeddings):
    """langchain-community writes vectors with str(list): numpy 2 floats would break it."""


def test_opens_a_langchain_community_table(tidb_url: str, table_name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.vectorstores import TiDBVectorStore as LegacyStore

    emb = _PlainFloats(size=8)
    legacy = LegacyStore.from_texts(
        ["alpha", "beta"],
        emb,
        metadatas=[{"n": 1}, {"n": 2}],
        table_name=table_name,
        connection_string=tidb_url,
        distance_strategy="l2",
    )
    store = TiDBVectorStore.from_existing_table(emb, table_name, connection_string=tidb_url)
    assert store.distance_strategy is DistanceStrategy.L2  # read from the legacy comment
    hits = store.similarity_search_with_score("alpha", k=2)
    assert [d.page_content for d, _ in hits] == ["alpha", "beta"]
    assert all(d.id for d, _ in hits)
    assert hits[0][1] == pytest.approx(0.0, abs=1e-6)
    (new_id,) = store.add_texts(["gamma"], [{"n": 3}])
    assert legacy.similarity_search("gamma", k=1)[0].page_content == "gamma"
    with pytest.raises(ValueError, match="allows 36"):
        store.add_texts(["delta"], ids=["x" * 40])
    assert store.get_by_ids([new_id])[0].metadata == {"n": 3}
    legacy.drop_vectorstore()


def test_from_existing_table_requires_a_table(tidb_url: str) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        TiDBVectorStore.from_existing_table(
            TableEmbeddings(), "nope_" + uuid.uuid4().hex[:8], connection_string=tidb_url
        )


def test_from_existing_table_rejects_foreign_tables(
    tidb_engine: sa.Engine, tidb_url: str, table_name: str
) -> None:
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, x TEXT)"))
    with pytest.raises(ValueError, match="missing column"):
        TiDBVectorStore.from_existing_table(
            TableEmbeddings(), table_name, connection_string=tidb_url
        )


# ---------------------------------------------------------------- injection


def test_injection_through_filters_and_values_changes_nothing(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_texts(["a", "b"], [{"k": "v"}, {"k": "w"}], ids=["1", "2"])
    evil = "v' OR '1'='1"
    assert store.similarity_search("a", filter={"k": evil}) == []
    assert store.similarity_search("a", filter={"k": {"$in": [evil, "x"]}}) == []
    with pytest.raises(ValueError, match="invalid"):
        store.similarity_search("a", filter={"k') OR 1=1 --": "v"})
    store.delete(filter={"k": "v'; DELETE FROM t; --"})
    store.delete(ids=["1' OR '1'='1"])
    assert _rows(store) == 2


# ---------------------------------------------------------------- indexing API


def test_indexing_api_skips_unchanged_documents(make_store: StoreFactory) -> None:
    from langchain_core.indexing import InMemoryRecordManager, index

    emb = TableEmbeddings()
    store = make_store(emb)
    manager = InMemoryRecordManager(namespace=f"tidb/{store.table_name}")
    manager.create_schema()
    docs = [Document(page_content=f"chunk {i}", metadata={"source": "a.md"}) for i in range(5)]
    first = index(
        docs, manager, store, cleanup="incremental", source_id_key="source", key_encoder="sha256"
    )
    assert first["num_added"] == 5
    embedded = emb.texts_embedded
    second = index(
        docs, manager, store, cleanup="incremental", source_id_key="source", key_encoder="sha256"
    )
    assert second == {"num_added": 0, "num_updated": 0, "num_skipped": 5, "num_deleted": 0}
    assert emb.texts_embedded == embedded
    changed = [*docs[:4], Document(page_content="chunk new", metadata={"source": "a.md"})]
    third = index(
        changed, manager, store, cleanup="incremental", source_id_key="source", key_encoder="sha256"
    )
    assert third["num_added"] == 1
    assert third["num_deleted"] == 1
    assert _rows(store) == 5


# ---------------------------------------------------------------- connection pool


def test_idle_connection_killed_by_the_server_is_replaced(
    make_store: StoreFactory, tidb_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_tidb_bedrock.db import connection

    store = make_store()
    store.add_texts(["a"], ids=["1"])
    with store._engines.sync_read.connect() as conn:  # the read pool
        conn_id = conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
    # What TiDB Cloud does to a connection left idle: close it server-side.
    with tidb_engine.connect() as admin:
        admin.execute(sa.text(f"KILL {int(conn_id)}"))  # type: ignore[arg-type]
    monkeypatch.setattr(connection, "IDLE_PING_AFTER", 0.0)
    assert [d.id for d in store.similarity_search("a", k=1)] == ["1"]
    with store._engines.sync_read.connect() as conn:  # the read pool
        assert conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar() != conn_id


def test_a_read_on_a_connection_cut_mid_use_is_retried_once(
    make_store: StoreFactory, tidb_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_tidb_bedrock.db import connection

    monkeypatch.setattr(connection, "IDLE_PING_AFTER", 3600.0)  # no ping saves it
    store = make_store()
    store.add_texts(["a"], ids=["1"])
    with store._engines.sync_read.connect() as conn:  # the read pool
        conn_id = conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar()
    with tidb_engine.connect() as admin:
        admin.execute(sa.text(f"KILL {int(conn_id)}"))  # type: ignore[arg-type]
    assert [d.id for d in store.get_by_ids(["1"])] == ["1"]
    assert store.count() == 1


async def test_an_async_read_on_a_connection_cut_mid_use_is_retried_once(
    make_store: StoreFactory, tidb_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_tidb_bedrock.db import connection

    monkeypatch.setattr(connection, "IDLE_PING_AFTER", 3600.0)  # no ping saves it
    store = make_store()
    await store.aadd_texts(["a"], ids=["1"])
    read_engine, _ = await store._engines._engines_for_loop()
    async with read_engine.connect() as conn:  # this loop's read pool
        conn_id = (await conn.execute(sa.text("SELECT CONNECTION_ID()"))).scalar()
    with tidb_engine.connect() as admin:
        admin.execute(sa.text(f"KILL {int(conn_id)}"))  # type: ignore[arg-type]
    assert [d.id for d in await store.aget_by_ids(["1"])] == ["1"]
    assert [d.id for d in await store.asimilarity_search("a", k=1)] == ["1"]
    await store.aclose()


def test_busy_connections_are_not_pinged(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store()
    store.add_texts(["a"], ids=["1"])
    pings: list[int] = []
    with store._engines.sync_read.connect() as conn:  # the read pool
        raw = conn.connection.dbapi_connection
        real_ping = raw.ping  # type: ignore[union-attr]
        monkeypatch.setattr(raw, "ping", lambda *a: pings.append(1) or real_ping(*a))
    for _ in range(5):
        store.similarity_search("a", k=1)
    assert pings == []


# ---------------------------------------------------------------- get by filter, metadata updates


def test_get_by_filter_and_update_metadata(make_store: StoreFactory) -> None:
    emb = TableEmbeddings()
    store = make_store(emb)
    store.add_texts(
        ["a", "b", "c"],
        [{"s": "x", "n": 1}, {"s": "y", "n": 2}, {"s": "x", "n": 3}],
        ids=["1", "2", "3"],
    )
    assert [d.id for d in store.get(filter={"s": "x"})] == ["1", "3"]
    assert [d.id for d in store.get(limit=2)] == ["1", "2"]
    assert store.get(filter={"s": "nope"}) == []
    calls = emb.calls
    assert store.update_metadata({"1": {"s": "z"}, "missing": {"s": "q"}}) == 1
    assert emb.calls == calls  # no re-embedding
    assert store.get_by_ids(["1"])[0].metadata == {"s": "z"}
    hit = store.similarity_search_with_score("a", k=1)[0]
    assert hit[0].id == "1"
    assert hit[1] == pytest.approx(0.0, abs=1e-6)  # the vector is untouched
    with pytest.raises(ValueError, match="not JSON"):
        store.update_metadata({"2": {"bad": math.nan}})
    with pytest.raises(ValueError, match="unknown operator"):
        store.get(filter={"s": {"$nope": 1}})


async def test_async_get(make_store: StoreFactory) -> None:
    store = make_store()
    await store.aadd_texts(["a", "b"], [{"k": 1}, {"k": 2}], ids=["1", "2"])
    assert [d.id for d in await store.aget(filter={"k": {"$gt": 1}})] == ["2"]
    assert await store.aupdate_metadata({"2": {"k": 5}}) == 1
    assert (await store.aget_by_ids(["2"]))[0].metadata == {"k": 5}
    await store.aclose()


def test_create_table_ahead_of_time(make_store: StoreFactory) -> None:
    store = make_store(embedding_dimension=4)
    store.create_table()
    store.create_table()  # idempotent
    assert store.count() == 0
    with pytest.raises(ValueError, match="stores 4-dimensional vectors, got 5"):
        store.create_table(5)
    bare = make_store()
    with pytest.raises(ValueError, match="needs a dimension"):
        bare.create_table()


# ---------------------------------------------------------------- rows without a distance


def test_rows_with_null_distance_neither_take_slots_nor_shift_mmr(
    make_store: StoreFactory, tidb_engine: sa.Engine
) -> None:
    vectors = {
        "q": [1.0, 0, 0, 0],
        "a": [1.0, 0.1, 0, 0],
        "b": [0.9, 0.4, 0, 0],
        "c": [0.0, 1.0, 0, 0],
        "d": [0.5, 0, 0.8, 0],
    }
    store = make_store(TableEmbeddings(vectors))
    store.add_texts(list("abcd"), [{"g": 1}] * 4, ids=list("abcd"))
    # Zero vectors written by another tool: cosine distance is NULL, which sorts first.
    with tidb_engine.begin() as conn:
        for i in range(3):
            conn.execute(
                sa.text(f"INSERT INTO `{store.table_name}` VALUES (:i, '[0,0,0,0]', 'z', :m)"),
                {"i": f"zero{i}", "m": '{"g": 1}'},
            )
    assert [d.id for d in store.similarity_search("q", k=3)] == ["a", "b", "d"]
    assert [
        d.id for d in store.similarity_search("q", k=3, filter={"g": 1}, filter_strategy="pre")
    ] == ["a", "b", "d"]
    assert [
        d.id for d in store.similarity_search("q", k=3, filter={"g": 1}, filter_strategy="post")
    ] == ["a", "b", "d"]
    mmr = store.max_marginal_relevance_search("q", k=2, fetch_k=4, lambda_mult=0.5)
    assert mmr[0].id == "a"
    assert all(d.page_content != "z" for d in mmr)


def test_ids_are_compared_exactly(make_store: StoreFactory) -> None:
    # utf8mb4_bin pads trailing spaces: 'dup' and 'dup ' would be one row and a document lost.
    store = make_store()
    ids = ["dup", "dup ", "Dup"]
    assert store.add_texts(["a", "b", "c"], ids=ids) == ids
    assert store.count() == 3
    assert [(d.id, d.page_content) for d in store.get_by_ids(ids)] == list(
        zip(ids, ["a", "b", "c"], strict=True)
    )


def test_sqlalchemy_table_queries_the_store_with_tidb_vector_types(
    make_store: StoreFactory,
) -> None:
    store = make_store(
        TableEmbeddings({"a": [1.0, 0, 0, 0], "b": [0, 1.0, 0, 0], "q": [0.9, 0.1, 0, 0]})
    )
    store.add_texts(["a", "b"], [{"k": 1}, {"k": 2}], ids=["a", "b"])
    t = store.sqlalchemy_table()
    stmt = sa.select(t.c.id, t.c.embedding, t.c.meta).order_by(
        t.c.embedding.cosine_distance([0.9, 0.1, 0, 0])
    )
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    assert [r.id for r in rows] == ["a", "b"]
    assert list(rows[0].embedding) == [1.0, 0, 0, 0]
    assert rows[1].meta == {"k": 2}
