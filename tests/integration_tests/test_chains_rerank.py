"""create_rag_chain(..., rerank=...) against a real local TiDB and LocalBedrock over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever

from langchain_tidb_bedrock.chains.rag import DEFAULT_RERANK_FETCH_K, create_rag_chain
from langchain_tidb_bedrock.chat_models.llama import create_llama3_chat
from langchain_tidb_bedrock.document_compressors import BedrockReranker
from langchain_tidb_bedrock.document_compressors._requests import foundation_model_arn
from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings
from langchain_tidb_bedrock.local import _rerank as standin
from langchain_tidb_bedrock.local.bedrock import LocalBedrock, RecordedRequest
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

COHERE = "cohere.rerank-v3-5:0"
AMAZON = "amazon.rerank-v1:0"
QUESTION = "Does TiDB support vector search?"
FACTS = [
    "TiDB is an open-source distributed SQL database that supports HTAP workloads.",
    "TiDB is MySQL compatible and scales horizontally with strong consistency.",
    "TiDB Vector Search stores embeddings in VECTOR columns and ranks them with "
    "VEC_COSINE_DISTANCE.",
    "Vector search finds the nearest neighbours of a query embedding.",
    "TiDB supports vector search with HNSW indexes on TiFlash.",
    "Amazon Bedrock offers foundation models such as Meta Llama 3 and Amazon Titan.",
    "Paris is the capital of France and home of the Eiffel Tower.",
    "A search engine indexes web pages.",
    "TiDB Serverless has a free tier.",
    "HNSW is a graph index for approximate nearest neighbour search.",
]


@pytest.fixture(scope="module")
def store(tidb_url: str, local_bedrock: LocalBedrock) -> Iterator[TiDBVectorStore]:
    embeddings = BedrockTitanEmbeddings(dimensions=256, endpoint_url=local_bedrock.endpoint_url)
    vs = TiDBVectorStore(
        embeddings, connection_string=tidb_url, table_name=f"rerank_{uuid.uuid4().hex[:12]}"
    )
    vs.add_texts(FACTS, [{"source": f"fact{n}.md", "chunk": 0} for n in range(len(FACTS))])
    yield vs
    vs.drop_table()
    vs.close()
    embeddings.close()


# Module-scoped: building the clients costs more than a test; LocalBedrock is reset per test
# by the `bedrock` fixture the tests take.
@pytest.fixture(scope="module")
def llm(local_bedrock: LocalBedrock) -> Any:
    return create_llama3_chat(endpoint_url=local_bedrock.endpoint_url)


@pytest.fixture(scope="module")
def reranker(local_bedrock: LocalBedrock) -> Iterator[BedrockReranker]:
    made = BedrockReranker(
        model_id=COHERE, endpoint_url=local_bedrock.endpoint_url, region_name="us-west-2"
    )
    yield made
    made.close()


def _reranks(bedrock: LocalBedrock) -> list[RecordedRequest]:
    return [r for r in bedrock.requests if r.op == "Rerank"]


def _sources(request: RecordedRequest) -> list[str]:
    return [s["inlineDocumentSource"]["textDocument"]["text"] for s in request.body["sources"]]


def _query(request: RecordedRequest) -> str:
    return str(request.body["queries"][0]["textQuery"]["text"])


def _expected(texts: Sequence[str], question: str, k: int) -> list[tuple[str, float]]:
    return [(texts[i], score) for i, score in standin.rank(question, texts, k)]


def _context(result: dict[str, Any]) -> list[tuple[str, float]]:
    return [(d.page_content, d.metadata["relevance_score"]) for d in result["context"]]


def test_rerank_fetches_more_reranks_once_and_keeps_k(
    store: TiDBVectorStore, llm: Any, reranker: BedrockReranker, bedrock: LocalBedrock
) -> None:
    chain = create_rag_chain(store, llm, k=3, rerank=reranker, rerank_fetch_k=6)
    result = chain.invoke(QUESTION)
    (request,) = _reranks(bedrock)  # exactly one rerank request per question
    fetched = _sources(request)
    assert fetched == [d.page_content for d in store.similarity_search(QUESTION, k=6)]
    assert _query(request) == QUESTION
    config = request.body["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    assert config["numberOfResults"] == 3
    assert config["modelConfiguration"]["modelArn"] == foundation_model_arn(COHERE, "us-west-2")
    # The answer gets the reranker's k best of the fetched, best first, with their scores.
    assert _context(result) == _expected(fetched, QUESTION, 3)
    assert result["context"][0].metadata["source"].startswith("fact")
    # The answer prompt numbers the reranked passages.
    prompt = str(next(r.body for r in bedrock.requests if r.op.startswith("Converse")))
    assert f"[1] {result['context'][0].page_content}" in prompt


def test_rerank_adds_exactly_one_bedrock_call_per_question(
    store: TiDBVectorStore, llm: Any, reranker: BedrockReranker, bedrock: LocalBedrock
) -> None:
    questions = ["What is TiDB?", QUESTION, "What is HNSW?"]
    plain = create_rag_chain(store, llm, k=2)
    for question in questions:
        plain.invoke(question)
    without = len(bedrock.requests)
    bedrock.reset()
    reranked = create_rag_chain(store, llm, k=2, rerank=reranker)
    for question in questions:
        reranked.invoke(question)
    assert len(bedrock.requests) == without + len(questions)
    assert [_query(r) for r in _reranks(bedrock)] == questions
    assert all(len(_sources(r)) == len(FACTS) for r in _reranks(bedrock))  # 20 asked, 10 stored
    assert DEFAULT_RERANK_FETCH_K == 20


def test_rerank_is_configurable_per_call(
    store: TiDBVectorStore, llm: Any, reranker: BedrockReranker, bedrock: LocalBedrock
) -> None:
    chain = create_rag_chain(store, llm, k=2, rerank=reranker)
    off = chain.invoke(QUESTION, config={"configurable": {"rerank": False}})
    assert not _reranks(bedrock)
    assert [d.page_content for d in off["context"]] == [
        d.page_content for d in store.similarity_search(QUESTION, k=2)
    ]
    assert all("relevance_score" not in d.metadata for d in off["context"])

    one = chain.invoke(QUESTION, config={"configurable": {"k": 1, "rerank_fetch_k": 4}})
    (request,) = _reranks(bedrock)
    assert len(_sources(request)) == 4
    assert _context(one) == _expected(_sources(request), QUESTION, 1)

    bedrock.reset()
    other = chain.invoke(QUESTION, config={"configurable": {"rerank": AMAZON}})
    (request,) = _reranks(bedrock)
    config = request.body["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    assert config["modelConfiguration"]["modelArn"] == foundation_model_arn(AMAZON, "us-west-2")
    assert len(other["context"]) == 2
    # The chain itself is unchanged: the default reranker is used again.
    bedrock.reset()
    chain.invoke(QUESTION)
    (request,) = _reranks(bedrock)
    assert COHERE in request.model_id

    with pytest.raises(ValueError, match="rerank_fetch_k"):
        chain.invoke(QUESTION, config={"configurable": {"rerank_fetch_k": 0}})


def test_fetch_is_never_below_k(
    store: TiDBVectorStore, llm: Any, reranker: BedrockReranker, bedrock: LocalBedrock
) -> None:
    chain = create_rag_chain(store, llm, k=5, rerank=reranker, rerank_fetch_k=2)
    assert len(chain.invoke(QUESTION)["context"]) == 5
    (request,) = _reranks(bedrock)
    assert len(_sources(request)) == 5


def test_mmr_fetches_for_the_reranker(
    store: TiDBVectorStore, llm: Any, reranker: BedrockReranker, bedrock: LocalBedrock
) -> None:
    chain = create_rag_chain(store, llm, k=2, search_type="mmr", rerank=reranker, rerank_fetch_k=8)
    assert len(chain.invoke(QUESTION)["context"]) == 2
    (request,) = _reranks(bedrock)
    assert len(_sources(request)) == 8


async def test_rerank_async_and_stream(
    store: TiDBVectorStore, llm: Any, reranker: BedrockReranker, bedrock: LocalBedrock
) -> None:
    chain = create_rag_chain(store, llm, k=2, rerank=reranker, rerank_fetch_k=6)
    result = await chain.ainvoke(QUESTION)
    (request,) = _reranks(bedrock)
    assert _context(result) == _expected(_sources(request), QUESTION, 2)
    bedrock.reset()
    first = None
    async for chunk in chain.astream(QUESTION):
        first = first or chunk
    assert first is not None
    assert _context(first) == _context(result)  # the first chunk carries the reranked context
    assert len(_reranks(bedrock)) == 1


def test_follow_up_is_reranked_by_its_standalone_question(
    store: TiDBVectorStore, llm: Any, reranker: BedrockReranker, bedrock: LocalBedrock
) -> None:
    chain = create_rag_chain(store, llm, k=2, rerank=reranker)
    history = [("human", "What is TiDB?"), ("ai", "A distributed SQL database.")]
    result = chain.invoke({"question": "Does it support vector search?", "chat_history": history})
    (request,) = _reranks(bedrock)
    assert _query(request) == result["standalone_question"]
    assert "tidb" in result["standalone_question"].lower()


class _Reverse(BaseDocumentCompressor):
    """Any compressor works: this one reverses and keeps everything."""

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        return list(reversed(documents))


def test_any_document_compressor_is_cut_to_k(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm, k=2, rerank=_Reverse(), rerank_fetch_k=5)
    fetched = [d.page_content for d in store.similarity_search(QUESTION, k=5)]
    result = chain.invoke(QUESTION)
    assert [d.page_content for d in result["context"]] == fetched[::-1][:2]


class _Fixed(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content=text) for text in FACTS]


def test_a_plain_retriever_is_reranked_to_k(
    llm: Any, reranker: BedrockReranker, bedrock: LocalBedrock
) -> None:
    result = create_rag_chain(_Fixed(), llm, k=3, rerank=reranker).invoke(QUESTION)
    assert _context(result) == _expected(FACTS, QUESTION, 3)
    (request,) = _reranks(bedrock)
    assert len(_sources(request)) == len(FACTS)


def test_rerank_argument_errors(store: TiDBVectorStore, llm: Any) -> None:
    with pytest.raises(TypeError, match="BaseDocumentCompressor"):
        create_rag_chain(store, llm, rerank=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rerank_fetch_k"):
        create_rag_chain(store, llm, rerank=_Reverse(), rerank_fetch_k=0)
