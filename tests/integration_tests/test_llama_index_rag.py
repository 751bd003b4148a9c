"""LlamaIndex end to end on LocalTiDB + LocalBedrock: Titan embedding, Llama 3, query engine."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.response.schema import AsyncStreamingResponse, StreamingResponse
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from langchain_tidb_bedrock.chains.prompts import RAG_PROMPT
from langchain_tidb_bedrock.chat_models.llama import DEFAULT_LLM_MODEL_ID, create_llama3_chat
from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings
from langchain_tidb_bedrock.errors import BedrockConfigError
from langchain_tidb_bedrock.llama_index import (
    BedrockTitanEmbedding,
    TiDBVectorStore,
    create_llama3_llm,
    create_query_engine,
    default_qa_prompt,
)
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

# LlamaIndex's own langchain bridge announces langchain-community's sunset when it loads.
pytestmark = pytest.mark.filterwarnings("ignore:`langchain-community`:DeprecationWarning")

FACTS = {
    "tidb": "TiDB is a distributed SQL database. TiDB is MySQL compatible.",
    "vector": "TiDB Vector Search stores embeddings in VECTOR columns and uses an HNSW index.",
    "bedrock": "Amazon Bedrock serves Llama 3 and Titan through one API.",
    "paris": "The Eiffel Tower is in Paris.",
}


def _embed(bedrock: LocalBedrock, **kw: Any) -> BedrockTitanEmbedding:
    return BedrockTitanEmbedding(dimensions=256, endpoint_url=bedrock.endpoint_url, **kw)


# --------------------------------------------------------------------------- embeddings


async def test_titan_embedding_runs_the_concurrent_client(bedrock: LocalBedrock) -> None:
    bedrock.latency = 0.02  # requests overlap only if they are sent concurrently
    embed = _embed(bedrock)
    texts = [f"text number {n}" for n in range(40)] + ["text number 3"]  # one repeat
    vectors = embed.get_text_embedding_batch(texts)
    assert len(vectors) == 41
    assert all(len(v) == 256 for v in vectors)
    assert vectors[3] == vectors[40]
    # One client call for the batch: 40 distinct texts, 40 requests, several in flight.
    assert len([r for r in bedrock.requests if r.op == "InvokeModel"]) == 40
    assert bedrock.max_in_flight > 1
    assert embed.usage["embedded"] == 40
    # The same vectors as the LangChain client, sync and async, query or document.
    same = BedrockTitanEmbeddings(dimensions=256, endpoint_url=bedrock.endpoint_url)
    assert vectors[:5] == same.embed_documents(texts[:5])
    assert await embed.aget_text_embedding_batch(texts[:5]) == vectors[:5]
    assert embed.get_query_embedding(texts[2]) == vectors[2]
    assert await embed.aget_query_embedding(texts[2]) == vectors[2]
    assert embed.get_text_embedding(texts[1]) == vectors[1]
    embed.close()
    same.close()


def test_titan_embedding_retries_throttles_and_validates(bedrock: LocalBedrock) -> None:
    bedrock.throttle_every = 3  # every third request answers 429
    embed = _embed(bedrock, max_retries=8)
    vectors = embed.get_text_embedding_batch([f"t{n}" for n in range(12)])
    assert len(vectors) == 12
    assert embed.usage["throttles"] > 0
    assert embed.usage["embedded"] == 12
    with pytest.raises(ValueError, match="dimensions must be one of"):
        BedrockTitanEmbedding(dimensions=300, endpoint_url=bedrock.endpoint_url)
    shared = BedrockTitanEmbedding(client=embed.client)
    assert shared.client is embed.client
    assert (shared.model_name, shared.dimensions) == ("amazon.titan-embed-text-v2:0", 256)
    with pytest.raises(ValueError, match="cannot be combined with client"):
        BedrockTitanEmbedding(client=embed.client, dimensions=512)
    embed.close()


# --------------------------------------------------------------------------- llm


def test_llama3_llm_has_create_llama3_chat_defaults(
    bedrock: LocalBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = create_llama3_llm(endpoint_url=bedrock.endpoint_url)
    assert (llm.model, llm.temperature, llm.max_tokens) == (DEFAULT_LLM_MODEL_ID, 0.0, 512)
    question = [ChatMessage(role="user", content="[1] TiDB is a database.\n\nQuestion: TiDB?")]
    answer = llm.chat(question).message.content
    assert answer is not None
    assert answer.startswith("(LocalBedrock stand-in) TiDB is a database.")
    ours = bedrock.requests[-1]
    create_llama3_chat(endpoint_url=bedrock.endpoint_url).invoke("[1] TiDB is a database.")
    theirs = bedrock.requests[-1]
    assert (
        (ours.op, ours.model_id)
        == (theirs.op, theirs.model_id)
        == (
            "Converse",
            DEFAULT_LLM_MODEL_ID,
        )
    )
    assert ours.body["inferenceConfig"] == theirs.body["inferenceConfig"]
    monkeypatch.setenv("BEDROCK_LLM_MODEL_ID", "meta.llama3-8b-instruct-v1:0")
    assert create_llama3_llm(endpoint_url=bedrock.endpoint_url).model == (
        "meta.llama3-8b-instruct-v1:0"
    )
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(BedrockConfigError, match="region"):
        create_llama3_llm()


# --------------------------------------------------------------------------- index + engine


@pytest.fixture
def index(tidb_url: str, table_name: str, bedrock: LocalBedrock) -> Any:
    store = TiDBVectorStore(table_name, connection_string=tidb_url)
    docs = [
        Document(text=text, doc_id=f"doc-{key}", metadata={"source": f"{key}.md"})
        for key, text in FACTS.items()
    ]
    index = VectorStoreIndex.from_documents(
        docs,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=_embed(bedrock),
    )
    yield index
    store.close()


def test_vector_store_index_end_to_end(index: Any) -> None:
    store: TiDBVectorStore = index.vector_store
    assert store.count() == len(FACTS)
    retriever = index.as_retriever(similarity_top_k=2)
    hits = retriever.retrieve("Which index does TiDB vector search use?")
    assert hits[0].node.ref_doc_id == "doc-vector"
    assert hits[0].node.metadata["source"] == "vector.md"
    assert hits[0].score == pytest.approx(max(h.score for h in hits))
    index.delete_ref_doc("doc-vector")
    assert store.count() == len(FACTS) - 1
    hits = retriever.retrieve("Which index does TiDB vector search use?")
    assert "doc-vector" not in {h.node.ref_doc_id for h in hits}
    filtered = index.as_retriever(
        similarity_top_k=3,
        filters=MetadataFilters(filters=[MetadataFilter(key="source", value="paris.md")]),
    )
    assert [h.node.ref_doc_id for h in filtered.retrieve("TiDB")] == ["doc-paris"]
    mmr = index.as_retriever(
        similarity_top_k=2,
        vector_store_query_mode="mmr",
        vector_store_kwargs={"mmr_threshold": 0.2},
    )
    assert len(mmr.retrieve("TiDB")) == 2


async def test_async_retrieve_query_and_delete(index: Any, bedrock: LocalBedrock) -> None:
    hits = await index.as_retriever(similarity_top_k=1).aretrieve("What is TiDB?")
    assert hits[0].node.ref_doc_id == "doc-tidb"
    engine = create_query_engine(
        index, llm=create_llama3_llm(endpoint_url=bedrock.endpoint_url), similarity_top_k=2
    )
    response = await engine.aquery("What is TiDB?")
    assert str(response).startswith("(LocalBedrock stand-in) TiDB is a distributed SQL database.")
    assert response.source_nodes[0].node.ref_doc_id == "doc-tidb"
    await index.adelete_ref_doc("doc-tidb")
    hits = await index.as_retriever(similarity_top_k=4).aretrieve("What is TiDB?")
    assert "doc-tidb" not in {h.node.ref_doc_id for h in hits}


def test_query_engine_answers_with_citations_and_sources(index: Any, bedrock: LocalBedrock) -> None:
    engine = create_query_engine(
        index.vector_store,
        llm=create_llama3_llm(endpoint_url=bedrock.endpoint_url),
        embed_model=index._embed_model,
        similarity_top_k=2,
    )
    response = engine.query("Which index does TiDB vector search use?")
    answer = str(response)
    assert answer.startswith("(LocalBedrock stand-in)")
    assert "HNSW index" in answer
    assert "[1]" in answer
    assert len(response.source_nodes) == 2
    assert response.source_nodes[0].node.metadata["source"] == "vector.md"
    assert response.metadata is not None
    assert response.metadata["sources"][0] == "[1] vector.md"
    # The prompt is the LangChain chain's: its system text, numbered passages with sources.
    body = bedrock.requests[-1].body
    assert body["system"][0]["text"] == RAG_PROMPT.messages[0].prompt.template
    user = body["messages"][0]["content"][0]["text"]
    assert "[1] TiDB Vector Search stores embeddings" in user
    assert "(source: vector.md)" in user
    assert user.endswith("Question: Which index does TiDB vector search use?\n\nAnswer:")


async def test_query_engine_streams_sync_and_async(index: Any, bedrock: LocalBedrock) -> None:
    llm = create_llama3_llm(endpoint_url=bedrock.endpoint_url)
    plain = str(create_query_engine(index, llm=llm, similarity_top_k=2).query("What is TiDB?"))
    streaming = create_query_engine(index, llm=llm, similarity_top_k=2, streaming=True)
    response = streaming.query("What is TiDB?")
    assert isinstance(response, StreamingResponse)
    pieces = list(response.response_gen)
    assert len(pieces) > 1
    assert "".join(pieces) == plain
    assert len(response.source_nodes) == 2
    assert [r.op for r in bedrock.requests][-1] == "ConverseStream"
    aresponse = await streaming.aquery("What is TiDB?")
    assert isinstance(aresponse, AsyncStreamingResponse)
    apieces = [piece async for piece in aresponse.async_response_gen()]
    assert len(apieces) > 1
    assert "".join(apieces) == plain
    assert aresponse.metadata is not None
    assert aresponse.metadata["sources"][0] == "[1] tidb.md"


def test_default_prompt_is_the_langchain_chain_prompt() -> None:
    ours = default_qa_prompt().format_messages(context_str="[1] a", query_str="q?")
    theirs = RAG_PROMPT.format_messages(context="[1] a", question="q?")
    assert [m.content for m in ours] == [m.content for m in theirs]
    assert [m.role.value for m in ours] == ["system", "user"]


def test_importing_the_package_does_not_import_llama_index() -> None:
    code = (
        "import sys, langchain_tidb_bedrock as m\n"
        "[getattr(m, name) for name in m.__all__]\n"
        "assert not [k for k in sys.modules if k.startswith('llama_index')], 'imported'\n"
        "import langchain_tidb_bedrock.llama_index as li\n"
        "assert 'llama_index.llms.bedrock_converse' not in sys.modules\n"
        "li.TiDBVectorStore, li.BedrockTitanEmbedding\n"
        "assert 'llama_index.llms.bedrock_converse' not in sys.modules\n"
    )
    proc = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
