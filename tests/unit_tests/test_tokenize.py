"""The keyword leg without a server: analyzer, BM25 arithmetic, fusion, and the SQL it sends."""

from __future__ import annotations

import math
from collections import Counter

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from sqlalchemy.dialects import mysql

from langchain_tidb_bedrock.db.bulk import LoadRows
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.vectorstores import hybrid
from langchain_tidb_bedrock.vectorstores import tokenize as analyzer
from langchain_tidb_bedrock.vectorstores.schema import table_object
from langchain_tidb_bedrock.vectorstores.tokenize import (
    MAX_TERM_CHARS,
    chunk_terms,
    chunks,
    term_counts,
    tokenize,
)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("ER_LOCK_DEADLOCK happened", ["er_lock_deadlock", "er", "lock", "deadlock", "happened"]),
        ("BedrockReranker", ["bedrockreranker", "bedrock", "reranker"]),
        ("Upgrade to v8.5.4.", ["upgrade", "v8.5.4", "v8", "5", "4"]),
        ("amazon.rerank-v1:0", ["amazon.rerank-v1:0", "amazon", "rerank", "v1", "0"]),
        ("The indexes and queries of classes", ["index", "query", "class"]),
        ("status analysis does", ["status", "analysi", "does"]),
        ("\uff46\uff55\uff4c\uff4c \uff21\uff22\uff23", ["full", "abc"]),  # fullwidth: NFKC
        ("error 1205: Lock wait timeout", ["error", "1205", "lock", "wait", "timeout"]),
        ("", []),
    ],
)
def test_english_and_identifiers(text: str, terms: list[str]) -> None:
    assert tokenize(text) == terms


def test_cjk_runs_become_overlapping_bigrams() -> None:
    assert tokenize("分布式数据库") == ["分布", "布式", "式数", "数据", "据库"]
    assert tokenize("TiDB 是一个") == ["tidb", "ti", "db", "是一", "一个"]
    assert tokenize("日本語のテキスト")[:3] == ["日本", "本語", "語の"]
    assert tokenize("한국어") == ["한국", "국어"]
    assert tokenize("库") == ["库"]  # a lone character stands alone
    # A query's terms are found in a document that holds the words, whatever surrounds them.
    doc = set(tokenize("TiDB 是一个开源的分布式 SQL 数据库"))
    assert set(tokenize("分布式数据库")) - doc == {"式数"}


def test_term_counts_and_cap() -> None:
    counts, length = term_counts("lock lock deadlock the")
    assert counts == {"lock": 2, "deadlock": 1}
    assert length == 3
    long = "x" * 200
    assert tokenize(long) == ["x" * MAX_TERM_CHARS]


def test_bm25_matches_the_formula() -> None:
    bm = hybrid.BM25()
    assert math.isclose(bm.idf(10, 1), math.log(1 + 9.5 / 1.5))
    assert bm.idf(10, 10) > 0  # Lucene's IDF is never negative
    assert math.isclose(bm.term_score(1, 10, 10.0), 1.0)
    assert bm.term_score(3, 10, 10.0) > bm.term_score(1, 10, 10.0)
    assert bm.term_score(1, 5, 10.0) > bm.term_score(1, 20, 10.0)


def _docs(*ids: str) -> list[tuple[Document, float]]:
    return [(Document(id=i, page_content=i), float(n)) for n, i in enumerate(ids, start=1)]


def test_reciprocal_rank_fusion() -> None:
    fused = hybrid.reciprocal_rank_fusion(_docs("a", "b", "c"), _docs("c", "d"), 3)
    assert [d.id for d, _ in fused] == ["c", "a", "b"] or [d.id for d, _ in fused] == [
        "c",
        "a",
        "d",
    ]
    scores = dict((d.id, s) for d, s in fused)
    assert math.isclose(scores["c"], 1 / 63 + 1 / 61)
    assert math.isclose(scores["a"], 1 / 61)
    # Equal contributions tie; ties go by id.
    tie = hybrid.reciprocal_rank_fusion(_docs("z"), _docs("y"), 2)
    assert [d.id for d, _ in tie] == ["y", "z"]
    keyword_only = hybrid.reciprocal_rank_fusion(
        _docs("a", "b"), _docs("x", "y"), 2, vector_weight=0.0
    )
    assert [d.id for d, _ in keyword_only] == ["x", "y"]


def test_weighted_sum_inverts_distances_and_normalises() -> None:
    vector = [
        (Document(id="near", page_content=""), 0.1),
        (Document(id="far", page_content=""), 0.9),
    ]
    keyword = [
        (Document(id="far", page_content=""), 12.0),
        (Document(id="kw", page_content=""), 2.0),
    ]
    fused = dict((d.id, s) for d, s in hybrid.weighted_sum_ranking(vector, keyword, 3))
    # Distances min-max (far is the farthest: 0); BM25 over the best (kw keeps 2/12).
    assert fused == {"near": 0.5, "far": 0.5, "kw": 0.5 * 2 / 12}
    assert hybrid.weighted_sum_ranking([], [], 3) == []
    fused = dict(
        (d.id, s) for d, s in hybrid.weighted_sum_ranking(vector, keyword, 3, keyword_weight=1.0)
    )
    assert fused["far"] == 1.0


def test_fusion_by_name_or_callable() -> None:
    assert hybrid.resolve_fusion("rrf") is hybrid.reciprocal_rank_fusion
    assert hybrid.resolve_fusion("weighted") is hybrid.weighted_sum_ranking
    assert hybrid.resolve_fusion(len) is len  # type: ignore[arg-type,comparison-overlap]
    with pytest.raises(InvalidInputError, match="fusion must be"):
        hybrid.resolve_fusion("borda")


def _sql(stmt: object) -> str:
    compiled = stmt.compile(  # type: ignore[attr-defined]
        dialect=mysql.dialect(), compile_kwargs={"literal_binds": False}
    )
    return " ".join(str(compiled).split())


def test_the_fts_match_word_statements() -> None:
    main = table_object("docs")
    vector = (
        sa.select(
            main.c.id,
            main.c.document,
            main.c.meta,
            sa.func.VEC_COSINE_DISTANCE(main.c.embedding, sa.bindparam("qv")).label("distance"),
        )
        .order_by(sa.literal_column("distance"))
        .limit(20)
    )
    condition = main.c.meta.is_not(None)
    leg = _sql(hybrid.fts_leg(main, 20, condition))
    # The match in ORDER BY is the one in WHERE, with a LIMIT (TiDB Cloud's rules).
    assert leg == (
        "SELECT docs.id, docs.document, docs.meta, NULL AS distance, "
        "FTS_MATCH_WORD(%s, docs.document) AS score FROM docs "
        "WHERE FTS_MATCH_WORD(%s, docs.document) AND docs.meta IS NOT NULL "
        "ORDER BY FTS_MATCH_WORD(%s, docs.document) DESC LIMIT %s"
    )
    both = _sql(hybrid.fts_hybrid_sql(main, vector, 20, None))
    assert both.startswith(
        "SELECT vec.id, vec.document, vec.meta, vec.distance, NULL AS score FROM ("
    )
    assert "UNION ALL SELECT fts.id, fts.document, fts.meta, fts.distance, fts.score FROM (" in both
    assert both.count("FTS_MATCH_WORD(%s, docs.document)") == 3
    assert hybrid.fts_probe_sql("docs") == (
        "SELECT 1 FROM `docs` WHERE FTS_MATCH_WORD(%s, `document`) LIMIT 1"
    )
    assert hybrid.fts_index_ddl("docs") == (
        "ALTER TABLE `docs` ADD FULLTEXT INDEX `ftx_docs` (`document`) WITH PARSER "
        "MULTILINGUAL ADD_COLUMNAR_REPLICA_ON_DEMAND"
    )


def test_missing_function_is_recognised() -> None:
    class OrigError(Exception):
        pass

    err = sa.exc.OperationalError(
        "stmt", {}, OrigError(1305, "FUNCTION test.fts_match_word does not exist")
    )
    assert hybrid.is_missing_function(err)
    other = sa.exc.OperationalError("stmt", {}, OrigError(1105, "needs a fulltext index"))
    assert not hybrid.is_missing_function(other)


def test_write_steps_pack_postings_by_bucket() -> None:
    kt = hybrid.KeywordTables(table_object("docs"), buckets=8)
    steps = kt.write_steps(["a", "b"], ["lock lock wait", "wait"])
    retire, docs, segs, postings = steps
    assert "UPDATE docs_kwseg" in _sql(retire)  # an upserted id leaves its old segment's counts
    assert isinstance(docs, tuple)
    assert docs[0].startswith("REPLACE INTO `docs_kwdocs`")
    seg = docs[1][0][0]
    assert docs[1] == [(seg, 0, "a", 3), (seg, 1, "b", 1)]
    assert isinstance(segs, tuple)
    assert segs[1] == [(seg, 2, 2, 4)]
    assert isinstance(postings, tuple)
    entries = {}
    for bucket, row_seg, payload in postings[1]:
        assert row_seg == seg
        flat = orjson.loads(payload)
        for i in range(0, len(flat), 4):
            key, slot, tf, dl = flat[i : i + 4]
            entries[(bucket, key, slot)] = (tf, dl)
    lock, wait = kt.term_key("lock"), kt.term_key("wait")
    assert entries == {(*lock, 0): (2, 3), (*wait, 0): (1, 3), (*wait, 1): (1, 1)}
    assert kt.write_steps([], []) == []
    assert all(0 <= kt.term_key(t)[0] < 8 and kt.term_key(t)[1] < 2**40 for t in ("x", "y"))


def test_side_tables_named_within_identifier_limits() -> None:
    with pytest.raises(InvalidInputError, match="at most 57"):
        hybrid.KeywordTables(table_object("t" * 60))
    kt = hybrid.KeywordTables(table_object("t" * 57))
    assert max(len(n) for n in kt.names) == 64
    assert hybrid.KeywordTables.parse_comment(kt.comment) == hybrid.BUCKETS
    assert hybrid.KeywordTables.parse_comment("someone else's table") is None


def test_bulk_write_steps_load_the_same_rows() -> None:
    kt = hybrid.KeywordTables(table_object("docs"), buckets=8)
    texts = ["lock lock wait", "wait"]
    packed = kt.pack(texts)
    plain = kt.write_steps(["a", "b"], texts, packed)
    bulk = kt.write_steps(["a", "b"], texts, packed, bulk=True)
    assert [type(s) for s in bulk[1:]] == [LoadRows, tuple, LoadRows]
    docs, postings = bulk[1], bulk[3]
    assert isinstance(docs, LoadRows)
    assert isinstance(postings, LoadRows)
    assert (docs.table, docs.columns) == ("docs_kwdocs", ("seg", "slot", "id", "dl"))
    assert (postings.table, postings.columns) == ("docs_kw", ("bucket", "seg", "postings"))
    seg = docs.rows[0][0]
    assert docs.rows == [(seg, 0, "a", 3), (seg, 1, "b", 1)]
    # The fallback is the plain path's statement: the same rows either way (segment aside).
    assert isinstance(plain[1], tuple)
    assert isinstance(plain[3], tuple)
    assert docs.as_insert()[0] == plain[1][0]
    assert postings.as_insert()[0] == plain[3][0]
    assert [r[::2] for r in postings.rows] == [r[::2] for r in plain[3][1]]


_AWKWARD = "aZ09_.-/: \t\n\u00a0\u3000\uff21\u6570\u636e\u5e93\u30c6\uac00\u00e9(),'\""


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=_AWKWARD)))
def test_chunks_give_the_terms_of_tokenize(text: str) -> None:
    assert [t for c in chunks(text) for t in chunk_terms(c)] == tokenize(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_the_ascii_pattern_finds_the_same_tokens(text: str) -> None:
    assert analyzer._ASCII_TOKEN.findall(text) == analyzer._TOKEN.findall(text)


def _pack_by_tokenize(kt: hybrid.KeywordTables, texts: list[str]) -> hybrid.Packed:
    """The textbook analysis: count each text's terms (what pack's chunk cache must equal)."""
    buckets: dict[int, list[int]] = {}
    lengths = []
    for slot, text in enumerate(texts):
        terms = tokenize(text)
        lengths.append(len(terms))
        for term, tf in Counter(terms).items():
            bucket, key = kt.term_key(term)
            buckets.setdefault(bucket, []).extend((key, slot, tf, len(terms)))
    payload = [(b, orjson.dumps(p).decode()) for b, p in sorted(buckets.items())]
    return hybrid.Packed(lengths, payload)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.text(), st.text(alphabet=_AWKWARD)), max_size=6))
def test_pack_counts_terms_like_tokenize(texts: list[str]) -> None:
    kt = hybrid.KeywordTables(table_object("docs"), buckets=16)
    words = ["ER_LOCK_DEADLOCK lock", "lock, lock; wait. v8.5.4", "数据库 数据"]
    assert kt.pack(words + texts) == _pack_by_tokenize(kt, words + texts)
    assert kt.pack(words + texts) == _pack_by_tokenize(kt, words + texts)  # cached chunks
