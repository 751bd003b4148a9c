"""The RAG chain's stream carries no empty ``{"answer": ""}`` chunks (Converse's message start
and end events), on LocalBedrock's Converse stream, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_tidb_bedrock.chains.rag import create_rag_chain
from langchain_tidb_bedrock.chat_models.llama import create_llama3_chat
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

QUESTION = "What is the capital of France?"


class _Facts(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document("Paris is the capital of France.", metadata={"source": "facts"})]


def _chain(bedrock: LocalBedrock) -> Any:
    llm = create_llama3_chat(endpoint_url=bedrock.endpoint_url, region_name="us-east-1")
    return create_rag_chain(_Facts(), llm)


def test_stream_has_no_empty_answer_chunks(bedrock: LocalBedrock) -> None:
    chain = _chain(bedrock)
    chunks = list(chain.stream(QUESTION))
    answers = [c["answer"] for c in chunks if "answer" in c]
    assert len(answers) > 2  # streamed in pieces
    assert all(answers), chunks
    assert "context" in chunks[0]
    whole = chain.invoke(QUESTION)["answer"]
    assert "".join(answers) == whole
    assert whole.startswith("(LocalBedrock stand-in) Paris is the capital of France.")


def test_astream_has_no_empty_answer_chunks(bedrock: LocalBedrock) -> None:
    chain = _chain(bedrock)

    async def collect() -> list[dict[str, Any]]:
        return [c async for c in chain.astream(QUESTION)]

    chunks = asyncio.run(collect())
    answers = [c["answer"] for c in chunks if "answer" in c]
    assert len(answers) > 2
    assert all(answers), chunks
