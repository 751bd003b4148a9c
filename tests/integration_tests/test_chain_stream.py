"""The RAG chain's answer stream under throttling, against LocalBedrock over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_tidb_bedrock.chains._stream import AnswerStreamError
from langchain_tidb_bedrock.chains.rag import create_rag_chain
from langchain_tidb_bedrock.chat_models.llama import create_llama3_chat
from langchain_tidb_bedrock.errors import TiDBBedrockError
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

MODEL = "us.meta.llama3-2-3b-instruct-v1:0"
QUESTION = "Does TiDB support vector search?"


class FixedRetriever(BaseRetriever):
    """Always the same passages: the chain's retrieval is not under test here."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [
            Document(page_content="TiDB supports vector search with HNSW indexes."),
            Document(page_content="Paris is the capital of France."),
        ]


@pytest.fixture
def server() -> Iterator[LocalBedrock]:
    with LocalBedrock() as bedrock:
        yield bedrock


def _chain(server: LocalBedrock) -> Any:
    llm = create_llama3_chat(
        MODEL, endpoint_url=server.endpoint_url, region_name="us-east-1", max_retries=0
    )
    return create_rag_chain(FixedRetriever(), llm)


def _answer(chunks: Iterator[dict[str, Any]]) -> str:
    return "".join(chunk.get("answer", "") for chunk in chunks)


def test_a_throttle_before_the_first_token_is_retried(server: LocalBedrock) -> None:
    server.stream_error_after(0, "throttlingException", "Too many tokens, please wait.")
    answer = _answer(_chain(server).stream(QUESTION))
    assert "vector search" in answer
    streams = [r for r in server.requests if r.op == "ConverseStream"]
    assert [r.status for r in streams] == [200, 200]  # the first one ended in the exception


async def test_async_stream_retries_before_the_first_token(server: LocalBedrock) -> None:
    server.stream_error_after(0, "throttlingException", "Too many tokens, please wait.")
    answer = "".join([c.get("answer", "") async for c in _chain(server).astream(QUESTION)])
    assert "vector search" in answer
    assert len([r for r in server.requests if r.op == "ConverseStream"]) == 2


def test_a_throttle_after_the_first_token_names_the_model_and_what_was_streamed(
    server: LocalBedrock,
) -> None:
    # messageStart, then two text deltas, then the exception.
    server.stream_error_after(3, "throttlingException", "Too many tokens, please wait.")
    streamed: list[str] = []

    def consume() -> None:
        streamed.extend(chunk.get("answer", "") for chunk in _chain(server).stream(QUESTION))

    with pytest.raises(AnswerStreamError) as info:
        consume()
    err = info.value
    assert isinstance(err, TiDBBedrockError)
    assert err.model == MODEL
    assert err.chunks == 2
    assert err.chars == len("".join(streamed)) > 0
    assert f"from {MODEL} failed after {err.chars:,} characters in 2 chunks" in str(err)
    assert "throttlingException" in str(err)
    assert "vector" not in str(err)  # no answer text (document content) in the message
    assert len([r for r in server.requests if r.op == "ConverseStream"]) == 1  # not retried


def test_invoke_goes_through_the_same_retry(server: LocalBedrock) -> None:
    server.stream_error_after(0, "throttlingException", "Too many tokens, please wait.")
    result = _chain(server).invoke(QUESTION)
    assert "vector search" in result["answer"]
