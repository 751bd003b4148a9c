"""Hybrid search on the local tidb-server: the keyword (BM25) leg, fusion, filters, consistency.

The embedding model here is ``DeterministicFakeEmbedding``: a random vector per text, so the
vector leg knows nothing of the words; whatever hybrid finds by a word, the keyword leg found.
"""

from __future__ import annotations

import math
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.errors import KeywordIndexMissingError
from langchain_tidb_bedrock.vectorstores import hybrid
from langchain_tidb_bedrock.vectorstores.tokenize import tokenize

DIM = 16
WORDS = [
    *("database", "index", "query", "vector", "search", "table", "column", "transaction"),
    *("commit", "replica", "region", "cluster", "storage", "engine", "schema", "backup"),
    *("restore", "latency", "throughput", "partition"),
]


def _text(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture
def store(tidb_url: str) -> Iterator[TiDBVectorStore]:
    s = TiDBVectorStore(
        DeterministicFakeEmbedding(size=DIM),
        connection_string=tidb_url,
        table_name=f"hy_{uuid.uuid4().hex[:12]}",
        keyword_search=True,
    )
    yield s
    s.drop_table()
    s.close()


def _corpus(n: int = 60, seed: int = 1) -> tuple[list[str], list[dict[str, object]], list[str]]:
    rng = random.Random(seed)
    texts = [_text(rng) for _ in range(n)]
    texts[7] += " raised ER_LOCK_DEADLOCK while committing"
    texts[n - 18] += " see error ER_LOCK_DEADLOCK in the log"
    metas: list[dict[str, object]] = [{"tenant": "a" if i % 2 else "b", "i": i} for i in range(n)]
    return texts, metas, [f"d{i}" for i in range(n)]


# ------------------------------------------------------------------ a Python BM25 reference


def reference_bm25(docs: list[Document], query: str) -> dict[str, float]:
    """BM25 (k1=1.2, b=0.75, Lucene IDF) over ``docs`` with the store's analyzer."""
    bm25 = hybrid.BM25()
    counted = {str(d.id): Counter(tokenize(d.page_content)) for d in docs}
    lengths = {i: sum(c.values()) for i, c in counted.items()}
    n = len(docs)
    avgdl = sum(lengths.values()) / n if n else 0.0
    terms = list(dict.fromkeys(tokenize(query)))
    df = {t: sum(1 for c in counted.values() if t in c) for t in terms}
    scores: dict[str, float] = {}
    for doc_id, c in counted.items():
        hit = [t for t in terms if t in c]
        if hit:
            scores[doc_id] = sum(
                bm25.idf(n, df[t]) * bm25.term_score(c[t], lengths[doc_id], avgdl) for t in hit
            )
    return scores


def _assert_index_matches(store: TiDBVectorStore, queries: list[str]) -> None:
    docs = store.get()
    kt = store._table.keyword
    assert kt is not None
    for q in queries:
        got = dict(store._run(hybrid.op_keyword_scores(kt, q)))
        want = reference_bm25(docs, q)
        assert got.keys() == want.keys(), q
        for doc_id, score in want.items():
            assert math.isclose(got[doc_id], score, rel_tol=1e-9), (q, doc_id)


# ------------------------------------------------------------------ tests


def test_keyword_query_the_vector_leg_misses_is_found_by_hybrid(store: TiDBVectorStore) -> None:
    texts, metas, ids = _corpus()
    store.add_texts(texts, metas, ids=ids)
    both = {"d7", "d42"}
    vector = {d.id for d in store.similarity_search("ER_LOCK_DEADLOCK", k=4)}
    assert not both <= vector  # random vectors: the vector leg cannot know the word
    # Weighted (the default): both hits keep a keyword share of 0.5 x their BM25 over the best.
    scored = store.hybrid_search_with_score("ER_LOCK_DEADLOCK", k=4)
    assert scored[0][0].id in both
    assert both <= {d.id for d, _ in scored}
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    # RRF: only the two legs' first two ranks score >= 1/62, so both keyword hits are in 4.
    assert both <= {d.id for d in store.hybrid_search("ER_LOCK_DEADLOCK", k=4, fusion="rrf")}
    keyword_only = store.hybrid_search(
        "ER_LOCK_DEADLOCK",
        k=2,
        fusion=lambda vec, kw, k: hybrid.reciprocal_rank_fusion(vec, kw, k, vector_weight=0.0),
    )
    assert {d.id for d in keyword_only} == both
    retriever = store.as_retriever(search_type="hybrid", search_kwargs={"k": 4})
    assert both <= {d.id for d in retriever.invoke("ER_LOCK_DEADLOCK")}
    assert both <= {d.id for d in store.search("ER_LOCK_DEADLOCK", "hybrid", k=4)}


async def test_async_twins(store: TiDBVectorStore) -> None:
    texts, metas, ids = _corpus()
    await store.aadd_texts(texts, metas, ids=ids)
    both = {"d7", "d42"}
    assert both <= {d.id for d in await store.ahybrid_search("ER_LOCK_DEADLOCK", k=4)}
    scored = await store.ahybrid_search_with_score("ER_LOCK_DEADLOCK", k=2, filter={"i": 7})
    assert [d.id for d, _ in scored] == ["d7"]
    retriever = store.as_retriever(search_type="hybrid", search_kwargs={"k": 4})
    assert both <= {d.id for d in await retriever.ainvoke("ER_LOCK_DEADLOCK")}
    assert both <= {d.id for d in await store.asearch("ER_LOCK_DEADLOCK", "hybrid", k=4)}
    await store.adelete(["d7"])
    _, keyword = await store._arun(
        hybrid.op_hybrid_legs(store._search, "ER_LOCK_DEADLOCK", 5, None)
    )
    assert [d.id for d, _ in keyword] == ["d42"]
    await store.aclear()
    assert await store.ahybrid_search("ER_LOCK_DEADLOCK", k=2) == []


def test_filters_apply_to_both_legs(store: TiDBVectorStore) -> None:
    texts, metas, ids = _corpus()
    store.add_texts(texts, metas, ids=ids)
    for flt, expect in (({"tenant": "a"}, "d7"), ({"tenant": "b"}, "d42")):
        found = store.hybrid_search("ER_LOCK_DEADLOCK", k=10, filter=flt)
        assert len(found) == 10
        assert all(d.metadata["tenant"] == flt["tenant"] for d in found)
        assert found[0].id == expect
        vector, keyword = store._run(
            hybrid.op_hybrid_legs(store._search, "ER_LOCK_DEADLOCK", 10, flt)
        )
        assert [d.id for d, _ in keyword] == [expect]
        assert len(vector) == 10
        assert all(d.metadata["tenant"] == flt["tenant"] for d, _ in vector + keyword)


def test_filtered_keyword_leg_pages_past_nonmatching_candidates(store: TiDBVectorStore) -> None:
    # 150 documents hold the word; only the 3 with the lowest BM25 match the filter.
    texts = [f"needle {'needle ' * (i % 5)}{'hay ' * (i % 7)}" for i in range(150)]
    metas = [{"keep": i >= 147} for i in range(150)]
    store.add_texts(texts, metas, ids=[f"n{i}" for i in range(150)])
    _, keyword = store._run(hybrid.op_hybrid_legs(store._search, "needle", 5, {"keep": True}))
    assert sorted(d.id for d, _ in keyword) == ["n147", "n148", "n149"]


def test_index_matches_a_python_bm25_after_random_writes_and_deletes(
    store: TiDBVectorStore,
) -> None:
    rng = random.Random(7)
    queries = ["vector search", "commit replica", "ER_LOCK_DEADLOCK", "latency", "nothing"]
    live: set[str] = set()
    for step in range(14):
        op = rng.choice(["add", "add", "upsert", "delete", "delete_filter"])
        if op in ("add", "upsert") or not live:
            pool = sorted(live) if op == "upsert" and live else []
            ids = rng.sample(pool, min(len(pool), 5)) or [f"r{step}_{i}" for i in range(8)]
            texts = [_text(rng, rng.randint(0, 15)) for _ in ids]
            if step % 3 == 0:
                texts[0] += " ER_LOCK_DEADLOCK"
            store.add_texts(texts, [{"g": rng.randint(0, 3)} for _ in ids], ids=ids)
            live |= set(ids)
        elif op == "delete":
            gone = rng.sample(sorted(live), min(3, len(live)))
            store.delete([*gone, "missing"])
            live -= set(gone)
        else:
            store.delete(filter={"g": rng.randint(0, 3)})
            live = {d.id for d in store.get() if d.id}
        _assert_index_matches(store, queries)
    store.delete(sorted(live)[:2], filter={"g": {"$gte": 0}})  # ids that also match a filter
    _assert_index_matches(store, queries)
    with store.engine.connect() as conn:
        kt = store._table.keyword
        assert kt is not None
        counted = conn.execute(sa.select(sa.func.count()).select_from(kt.docs)).scalar()
        live_sum = conn.execute(sa.select(sa.func.sum(kt.segs.c.live))).scalar()
    assert counted == live_sum == store.count()
    store.clear()
    _assert_index_matches(store, queries)
    assert store.hybrid_search("vector", k=3) == []


def test_existing_table_is_backfilled_by_an_explicit_call(tidb_url: str) -> None:
    texts, metas, ids = _corpus(40)
    plain = TiDBVectorStore(
        DeterministicFakeEmbedding(size=DIM),
        connection_string=tidb_url,
        table_name=f"hy_{uuid.uuid4().hex[:12]}",
        batch_size=16,
    )
    try:
        plain.add_texts(texts, metas, ids=ids)
        with pytest.raises(KeywordIndexMissingError, match="create_keyword_index"):
            plain.hybrid_search("ER_LOCK_DEADLOCK")
        assert plain.create_keyword_index(batch_size=16) == 40
        assert {"d7", "d22"} <= {d.id for d in plain.hybrid_search("ER_LOCK_DEADLOCK", k=4)}
        _assert_index_matches(plain, ["ER_LOCK_DEADLOCK", "vector", "region cluster"])
        # Another store on the table finds the index and keeps it current.
        other = TiDBVectorStore(
            DeterministicFakeEmbedding(size=DIM),
            connection_string=tidb_url,
            table_name=plain.table_name,
        )
        other.add_texts(["ER_LOCK_DEADLOCK again"], ids=["late"])
        _, keyword = other._run(hybrid.op_hybrid_legs(other._search, "ER_LOCK_DEADLOCK", 5, None))
        assert {d.id for d, _ in keyword} == {"d7", "d22", "late"}
        assert plain.create_keyword_index(batch_size=7) == 41  # re-running is safe
        _assert_index_matches(other, ["ER_LOCK_DEADLOCK", "vector"])
        other.close()
    finally:
        plain.drop_table()
        plain.close()


async def test_async_backfill(tidb_url: str) -> None:
    plain = TiDBVectorStore(
        DeterministicFakeEmbedding(size=DIM),
        connection_string=tidb_url,
        table_name=f"hy_{uuid.uuid4().hex[:12]}",
    )
    try:
        await plain.aadd_texts(["alpha ER_LOCK_DEADLOCK", "beta gamma"], ids=["x", "y"])
        assert await plain.acreate_keyword_index() == 2
        assert [d.id for d in await plain.ahybrid_search("ER_LOCK_DEADLOCK", k=1)] == ["x"]
    finally:
        await plain.adrop_table()
        await plain.aclose()


def test_drop_table_drops_the_keyword_index(store: TiDBVectorStore) -> None:
    store.add_texts(["one two"], ids=["a"])
    kt = store._table.keyword
    assert kt is not None
    names = set(kt.names)
    store.drop_table()
    with store.engine.connect() as conn:
        left = conn.execute(
            sa.text(
                "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE :p"
            ),
            {"p": f"{store.table_name}%"},
        ).all()
    assert not {r[0] for r in left} & (names | {store.table_name})


def test_fts_match_word_is_not_detected_on_the_local_server(store: TiDBVectorStore) -> None:
    store.add_texts(["one two"], ids=["a"])
    assert store._run(hybrid.op_has_fulltext(store.table_name)) is False


def test_cjk_text_is_found_by_its_words(store: TiDBVectorStore) -> None:
    texts = [
        "TiDB 是一个开源的分布式 SQL 数据库，支持混合事务和分析处理。",  # noqa: RUF001
        "向量检索可以找到语义相近的文档。",
        "今天的天气很好，我们去公园散步。",  # noqa: RUF001
    ]
    store.add_texts(texts, ids=["db", "vec", "walk"])
    assert store.hybrid_search("分布式数据库", k=1)[0].id == "db"
    assert store.hybrid_search("向量检索", k=1)[0].id == "vec"
    _, keyword = store._run(hybrid.op_hybrid_legs(store._search, "公园", 3, None))
    assert [d.id for d, _ in keyword] == ["walk"]


@pytest.mark.parametrize("as_list", [True, False])
def test_batches_analysed_ahead_or_inline_index_the_same(
    tidb_url: str, as_list: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    pack = hybrid.KeywordTables.pack

    def spy(self: hybrid.KeywordTables, texts: list[str]) -> hybrid.Packed:
        threads.append(threading.current_thread().name)
        return pack(self, texts)

    monkeypatch.setattr(hybrid.KeywordTables, "pack", spy)
    rng = random.Random(11)
    texts = [_text(rng, rng.randint(1, 20)) for _ in range(45)]
    ids = [f"b{i}" for i in range(45)]
    s = TiDBVectorStore(
        DeterministicFakeEmbedding(size=DIM),
        connection_string=tidb_url,
        table_name=f"hy_{uuid.uuid4().hex[:12]}",
        keyword_search=True,
        batch_size=7,  # 7 batches: a list's are analysed one batch ahead, in a thread
    )
    try:
        s.add_texts(texts if as_list else iter(texts), ids=ids)
        s.add_texts(texts[:20] if as_list else iter(texts[:20]), ids=ids[:20])  # upserts
        ahead = [t for t in threads if t.startswith("ltb-keyword")]
        # A list: every batch is analysed in the thread (the first once the table exists).
        assert (len(ahead), len(threads)) == ((10, 10) if as_list else (0, 10))
        _assert_index_matches(s, ["vector search", "region", "latency throughput"])
        with s.engine.connect() as conn:
            kt = s._table.keyword
            assert kt is not None
            segs = conn.execute(sa.select(sa.func.count()).select_from(kt.segs)).scalar()
        assert segs == 7 + 3
    finally:
        s.drop_table()
        s.close()


def _side_counts(store: TiDBVectorStore) -> tuple[int, int, int]:
    kt = store._table.keyword
    assert kt is not None
    with store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
            for t in (kt.postings, kt.docs, kt.segs)
        )


def test_side_rows_are_bulk_loaded_in_the_rows_transaction(
    store: TiDBVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_tidb_bedrock.db import bulk
    from langchain_tidb_bedrock.db import engine as engines
    from langchain_tidb_bedrock.errors import LoadDataWarningError

    loaded: list[tuple[str, int]] = []
    real = bulk.load_rows
    fail_on: list[str] = []

    def spy(conn: object, table: str, rows: list[tuple[object, ...]], columns: object) -> int:
        loaded.append((table.removeprefix(store.table_name), len(rows)))
        if table.endswith(tuple(fail_on)):
            raise LoadDataWarningError("LOAD DATA into the postings reported warnings")
        return real(conn, table, rows, columns)  # type: ignore[arg-type]

    monkeypatch.setattr(engines, "load_rows", spy)
    texts, metas, ids = _corpus(20)
    store.add_texts(texts[:5], metas[:5], ids=ids[:5], batch_size=3)
    # Per batch: the rows, then the keyword index's documents and postings, all LOAD DATA.
    assert [t for t, _ in loaded] == ["", "_kwdocs", "_kw"] * 2
    assert [n for t, n in loaded if t != "_kw"] == [3, 3, 2, 2]
    before = _side_counts(store)
    # A load that fails mid-transaction (after the rows and kwdocs went in) leaves nothing.
    fail_on.append("_kw")
    with pytest.raises(LoadDataWarningError):
        store.add_texts(["vector vector", "region"], ids=["d0", "new"])
    assert store.count() == 5
    assert _side_counts(store) == before
    _assert_index_matches(store, ["vector", "region", "ER_LOCK_DEADLOCK"])


def test_refused_load_data_writes_the_index_with_insert(
    store: TiDBVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_tidb_bedrock.db import engine as engines

    calls: list[str] = []

    def refuse(conn: object, table: str, rows: object, columns: object) -> int:
        calls.append(table)
        raise sa.exc.OperationalError("LOAD DATA", {}, Exception(1148, "not allowed"))

    monkeypatch.setattr(engines, "load_rows", refuse)
    texts, metas, ids = _corpus(20)
    store.add_texts(texts, metas, ids=ids, batch_size=6)
    store.add_texts(texts[:4], metas[:4], ids=ids[:4])  # upserts, through INSERT too
    assert calls == [store.table_name]  # refused once, then INSERT for rows and index alike
    _assert_index_matches(store, ["vector search", "ER_LOCK_DEADLOCK", "commit"])
    assert _side_counts(store)[1:] == (20, 4 + 1)
