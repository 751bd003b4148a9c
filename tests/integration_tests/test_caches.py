"""TiDBCache and TiDBSemanticCache on a real TiDB: langchain-tests' cache suites, Bedrock calls
saved around the Llama chat model (counted on LocalBedrock), the llm_string scope of the
semantic search, the similarity threshold, upserts, clearing, expiry and bad input."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from langchain_tidb_bedrock import (
    BedrockTitanEmbeddings,
    InvalidInputError,
    TiDBCache,
    TiDBEngine,
    TiDBSemanticCache,
    create_llama3_chat,
)
from langchain_tidb_bedrock.embeddings.titan import DEFAULT_EMBEDDING_MODEL_ID
from langchain_tidb_bedrock.local.bedrock import LocalBedrock


@pytest.fixture
def engine(tidb_url: str) -> Iterator[TiDBEngine]:
    with TiDBEngine(tidb_url) as e:
        yield e


@pytest.fixture(scope="module")
def suite_tables(tidb_engine: sa.Engine) -> Iterator[dict[str, str]]:
    """One table per cache class for the conformance suites, emptied by clear() after each test."""
    names = {kind: f"t_{uuid.uuid4().hex[:16]}" for kind in ("exact", "semantic")}
    yield names
    with tidb_engine.begin() as conn:
        for name in names.values():
            conn.execute(sa.text(f"DROP TABLE IF EXISTS `{name}`"))


class AngleEmbeddings(Embeddings):
    """2-D unit vectors at given angles (degrees): similarity(a, b) = cos(a - b). Counts calls."""

    def __init__(self, angles: dict[str, float]) -> None:
        self.angles = angles
        self.calls = 0

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        a = math.radians(self.angles[text])
        return [math.cos(a), math.sin(a)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


def _generation(text: str) -> list[Generation]:
    return [Generation(text=text)]


# ---------------------------------------------------------------------- langchain-tests suites


class TestTiDBCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, engine: TiDBEngine, suite_tables: dict[str, str]) -> Iterator[TiDBCache]:
        cache = TiDBCache(engine=engine, table_name=suite_tables["exact"])
        yield cache
        cache.clear()


class TestTiDBCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, tidb_url: str, suite_tables: dict[str, str]) -> AsyncIterator[TiDBCache]:
        cache = TiDBCache(connection_string=tidb_url, table_name=suite_tables["exact"])
        yield cache
        await cache.aclear()
        await cache.aclose()


class TestTiDBSemanticCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(
        self, engine: TiDBEngine, suite_tables: dict[str, str]
    ) -> Iterator[TiDBSemanticCache]:
        emb = DeterministicFakeEmbedding(size=64)
        cache = TiDBSemanticCache(emb, engine=engine, table_name=suite_tables["semantic"])
        yield cache
        cache.clear()


class TestTiDBSemanticCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(
        self, tidb_url: str, suite_tables: dict[str, str]
    ) -> AsyncIterator[TiDBSemanticCache]:
        emb = DeterministicFakeEmbedding(size=64)
        table = suite_tables["semantic"]
        cache = TiDBSemanticCache(emb, connection_string=tidb_url, table_name=table)
        yield cache
        await cache.aclear()
        await cache.aclose()


# ---------------------------------------------------------------------- around the Llama model


@pytest.fixture
def global_cache() -> Iterator[None]:
    yield
    set_llm_cache(None)


def _converse(bedrock: LocalBedrock) -> int:
    return sum(r.op in ("Converse", "ConverseStream") for r in bedrock.requests)


def _titan(bedrock: LocalBedrock) -> int:
    return sum(r.model_id == DEFAULT_EMBEDDING_MODEL_ID for r in bedrock.requests)


QUESTION = [
    SystemMessage("Answer from these passages:\n[1] TiDB stores vectors in VECTOR columns."),
    HumanMessage("Question: Where does TiDB store vectors?"),
]


def test_exact_cache_saves_bedrock_calls(
    bedrock: LocalBedrock, engine: TiDBEngine, table_name: str, global_cache: None
) -> None:
    set_llm_cache(TiDBCache(engine=engine, table_name=table_name))
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
    first = chat.invoke(QUESTION)
    assert _converse(bedrock) == 1
    again = chat.invoke(QUESTION)
    assert _converse(bedrock) == 1  # answered by TiDB
    assert again.content == first.content
    assert "VECTOR columns" in str(again.content)
    chat.invoke([*QUESTION[:1], HumanMessage("Question: What is TiDB?")])
    assert _converse(bedrock) == 2  # another prompt
    create_llama3_chat(endpoint_url=bedrock.endpoint_url, temperature=0.5).invoke(QUESTION)
    assert _converse(bedrock) == 3  # another llm_string (temperature)
    chat.invoke(QUESTION)
    assert _converse(bedrock) == 3


async def test_exact_cache_saves_bedrock_calls_async(
    bedrock: LocalBedrock, tidb_url: str, table_name: str, global_cache: None
) -> None:
    async with TiDBCache(connection_string=tidb_url, table_name=table_name) as cache:
        set_llm_cache(cache)
        chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
        first = await chat.ainvoke(QUESTION)
        again = await chat.ainvoke(QUESTION)
        assert _converse(bedrock) == 1
        assert again.content == first.content


def test_semantic_cache_saves_bedrock_calls(
    bedrock: LocalBedrock, engine: TiDBEngine, table_name: str, global_cache: None
) -> None:
    embeddings = BedrockTitanEmbeddings(dimensions=256, endpoint_url=bedrock.endpoint_url)
    set_llm_cache(TiDBSemanticCache(embeddings, engine=engine, table_name=table_name))
    chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
    first = chat.invoke("What is TiDB vector search?")
    assert (_converse(bedrock), _titan(bedrock)) == (1, 1)  # a miss: one embedding, reused
    chat.invoke("What is TiDB vector search?")
    assert (_converse(bedrock), _titan(bedrock)) == (1, 1)  # same prompt: by hash, no embedding
    near = chat.invoke("what is TiDB vector search")  # a different prompt, the same meaning
    assert (_converse(bedrock), _titan(bedrock)) == (1, 2)
    assert near.content == first.content
    chat.invoke("What is the capital of France?")
    assert (_converse(bedrock), _titan(bedrock)) == (2, 3)


async def test_semantic_cache_saves_bedrock_calls_async(
    bedrock: LocalBedrock, tidb_url: str, table_name: str, global_cache: None
) -> None:
    embeddings = BedrockTitanEmbeddings(dimensions=256, endpoint_url=bedrock.endpoint_url)
    async with TiDBSemanticCache(
        embeddings, connection_string=tidb_url, table_name=table_name
    ) as cache:
        set_llm_cache(cache)
        chat = create_llama3_chat(endpoint_url=bedrock.endpoint_url)
        await chat.ainvoke("What is TiDB vector search?")
        await chat.ainvoke("what is TiDB vector search")
        assert (_converse(bedrock), _titan(bedrock)) == (1, 2)


# ---------------------------------------------------------------------- semantic scope


def test_a_nearer_entry_of_another_llm_string_never_wins(
    engine: TiDBEngine, table_name: str
) -> None:
    angles = {"q": 0.0, "a-mid": 30.0, "a-far": 40.0}
    angles.update({f"b-{i}": 0.02 * i for i in range(50)})
    emb = AngleEmbeddings(angles)
    cache = TiDBSemanticCache(emb, engine=engine, table_name=table_name, score_threshold=0.8)
    for i in range(50):  # many entries of model B, all nearer to "q" than any of model A
        cache.update(f"b-{i}", "model-B", _generation(f"B{i}"))
    assert cache.lookup("q", "model-A") is None  # no entry of A at all
    cache.update("a-far", "model-A", _generation("A far"))
    assert cache.lookup("q", "model-A") is None  # similarity cos(40°) = 0.766 < 0.8
    cache.update("a-mid", "model-A", _generation("A mid"))
    assert cache.lookup("q", "model-A") == _generation("A mid")  # cos(30°) = 0.866
    assert cache.lookup("q", "model-B") == _generation("B0")
    assert cache.lookup("q", "model-C") is None


async def test_scope_async(tidb_url: str, table_name: str) -> None:
    emb = AngleEmbeddings({"q": 0.0, "b": 1.0, "a": 20.0})
    async with TiDBSemanticCache(
        emb, connection_string=tidb_url, table_name=table_name, score_threshold=0.9
    ) as cache:
        await cache.aupdate("b", "model-B", _generation("B"))
        await cache.aupdate("a", "model-A", _generation("A"))
        assert await cache.alookup("q", "model-A") == _generation("A")
        await cache.aclear(llm_string="model-A")
        assert await cache.alookup("q", "model-A") is None
        assert await cache.alookup("q", "model-B") == _generation("B")


@pytest.mark.parametrize(("threshold", "hit"), [(0.86, True), (0.87, False), (-1.0, True)])
def test_threshold_is_a_cosine_similarity(
    engine: TiDBEngine, table_name: str, threshold: float, hit: bool
) -> None:
    emb = AngleEmbeddings({"q": 0.0, "cached": 30.0})  # similarity cos(30°) = 0.8660
    cache = TiDBSemanticCache(emb, engine=engine, table_name=table_name, score_threshold=threshold)
    cache.update("cached", "m", _generation("answer"))
    assert (cache.lookup("q", "m") is not None) is hit


def test_nearest_search_is_one_statement_scoped_by_llm(engine: TiDBEngine, table_name: str) -> None:
    emb = AngleEmbeddings({"q": 0.0, "p": 10.0})
    cache = TiDBSemanticCache(emb, engine=engine, table_name=table_name)
    cache.update("p", "m", _generation("x"))
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        assert cache.lookup("q", "m") == _generation("x")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    exact, nearest = [s for s in seen if table_name in s]
    assert "prompt_hash = %(p)s" in exact
    assert "VEC_COSINE_DISTANCE" in nearest
    assert "llm_hash = %(l)s" in nearest.split("ORDER BY")[0]  # filtered before ranking
    assert "LIMIT 1" in nearest


def test_a_miss_embeds_once(engine: TiDBEngine, table_name: str) -> None:
    emb = AngleEmbeddings({"q": 0.0})
    cache = TiDBSemanticCache(emb, engine=engine, table_name=table_name)
    assert cache.lookup("q", "m") is None  # the table does not exist yet: no embedding
    assert emb.calls == 0
    cache.update("q", "m", _generation("a"))
    cache.clear()
    assert cache.lookup("q", "m") is None
    cache.update("q", "m", _generation("a"))  # reuses the lookup's vector
    assert emb.calls == 2
    assert cache.lookup("q", "m") == _generation("a")  # by hash
    assert emb.calls == 2


# ---------------------------------------------------------------------- both caches


@pytest.fixture(params=["exact", "semantic"])
def any_cache(request: pytest.FixtureRequest, engine: TiDBEngine, table_name: str) -> Any:
    if request.param == "exact":
        return TiDBCache(engine=engine, table_name=table_name, ttl=3600)
    emb = AngleEmbeddings({"p": 0.0, "p2": 90.0})
    return TiDBSemanticCache(emb, engine=engine, table_name=table_name, ttl=3600)


def _rows(tidb_engine: sa.Engine, table: str) -> int:
    with tidb_engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM `{table}`")).scalar_one())


def test_upsert_clear_by_llm_string(any_cache: Any, tidb_engine: sa.Engine) -> None:
    any_cache.update("p", "m1", _generation("old"))
    any_cache.update("p", "m1", _generation("new"))
    any_cache.update("p", "m2", _generation("other model"))
    any_cache.update("p2", "m1", _generation("other prompt"))
    assert _rows(tidb_engine, any_cache.table_name) == 3
    assert any_cache.lookup("p", "m1") == _generation("new")
    any_cache.clear(llm_string="m1")
    assert any_cache.lookup("p", "m1") is None
    assert any_cache.lookup("p2", "m1") is None
    assert any_cache.lookup("p", "m2") == _generation("other model")
    any_cache.clear()
    assert _rows(tidb_engine, any_cache.table_name) == 0


def test_ttl_expiry(any_cache: Any, tidb_engine: sa.Engine) -> None:
    any_cache.update("p", "m", _generation("a"))
    table = any_cache.table_name
    with tidb_engine.begin() as conn:
        left = conn.execute(
            sa.text(f"SELECT TIMESTAMPDIFF(SECOND, NOW(6), expires_at) FROM `{table}`")
        ).scalar_one()
        assert 3590 <= left <= 3600  # set on the server's clock
        ddl = conn.execute(sa.text(f"SHOW CREATE TABLE `{table}`")).one()[1]
        assert "TTL=`expires_at`" in ddl.replace(" ", "")  # TiDB deletes expired rows too
        conn.execute(sa.text(f"UPDATE `{table}` SET expires_at = NOW(6) - INTERVAL 1 SECOND"))
    assert any_cache.lookup("p", "m") is None  # skipped before TiDB's TTL job runs


def test_chat_generations_round_trip(any_cache: Any) -> None:
    message = AIMessage(
        "hello",
        response_metadata={"stopReason": "end_turn", "metrics": {"latencyMs": [12]}},
        usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
        id="run-1",
    )
    gens = [
        ChatGeneration(message=message, generation_info={"finish_reason": "stop"}),
        ChatGenerationChunk(message=AIMessageChunk("chunk")),
        GenerationChunk(text="t"),
        Generation(text="plain", generation_info={"n": 1}),
    ]
    any_cache.update("p", "m", gens)
    back = any_cache.lookup("p", "m")
    assert back == gens
    assert [type(g) for g in back] == [type(g) for g in gens]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.update(1, "m", _generation("x")), "prompt must be a string"),
        (lambda c: c.update("p", None, _generation("x")), "llm_string must be a string"),
        (lambda c: c.update("p", "m", ["text"]), "position 0 is a str, not a Generation"),
        (lambda c: c.update("p", "m", Generation(text="x")), "list of Generation"),
        (lambda c: c.update("p", "m", [Generation(text="x" * 6_300_000)]), "nothing was cached"),
        (
            lambda c: c.update("p", "m", [Generation(text="x", generation_info={"o": object()})]),
            "JSON",
        ),
        (lambda c: c.lookup("p", b"m"), "llm_string must be a string"),
        (lambda c: c.clear(llm_string=3), "llm_string must be a string"),
    ],
)
def test_bad_input_writes_nothing(any_cache: Any, call: Any, message: str) -> None:
    any_cache.update("p", "m", _generation("kept"))
    with pytest.raises(InvalidInputError, match=message):
        call(any_cache)
    assert any_cache.lookup("p", "m") == _generation("kept")


@pytest.mark.parametrize("threshold", [1.5, -2, "0.9", None, True])
def test_bad_threshold(engine: TiDBEngine, threshold: Any) -> None:
    with pytest.raises(InvalidInputError, match="cosine similarity"):
        TiDBSemanticCache(AngleEmbeddings({}), engine=engine, score_threshold=threshold)


@pytest.mark.parametrize("ttl", [0, -5, "1h", True])
def test_bad_ttl(engine: TiDBEngine, ttl: Any) -> None:
    with pytest.raises(InvalidInputError, match="ttl"):
        TiDBCache(engine=engine, ttl=ttl)
