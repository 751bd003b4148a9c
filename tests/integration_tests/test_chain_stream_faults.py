"""The RAG answer stream decides retries with the shared classification (LocalBedrock over HTTP).

A daily-quota 429 is fatal, as it is for the embeddings: retrying it only spends the caller's
time. A transient fault before the first token is retried like a throttle.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_tidb_bedrock.chains.rag import create_rag_chain
from langchain_tidb_bedrock.chat_models.llama import create_llama3_chat
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

MODEL = "us.meta.llama3-2-3b-instruct-v1:0"
QUESTION = "Does TiDB support vector search?"
DAILY = "Too many tokens per day, please wait before trying again."


class FixedRetriever(BaseRetriever):
    """Always the same passages: the chain's retrieval is not under test here."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content="TiDB supports vector search with HNSW indexes.")]


@pytest.fixture
def server() -> Iterator[LocalBedrock]:
    with LocalBedrock() as bedrock:
        yield bedrock


def _chain(server: LocalBedrock) -> Any:
    # No botocore retries: what is retried here is the answer stream's own decision.
    llm = create_llama3_chat(
        MODEL, endpoint_url=server.endpoint_url, region_name="us-east-1", max_retries=0
    )
    return create_rag_chain(FixedRetriever(), llm)


def _streams(server: LocalBedrock) -> list[int]:
    return [r.status for r in server.requests if r.op == "ConverseStream"]


def test_a_daily_quota_429_is_not_retried(server: LocalBedrock) -> None:
    server.tokens_per_day = 1  # the first request already exceeds it: HTTP 429 per day
    with pytest.raises(ClientError, match="per day") as info:
        list(_chain(server).stream(QUESTION))
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert _streams(server) == [429]


def test_an_in_stream_daily_quota_throttle_is_not_retried(server: LocalBedrock) -> None:
    server.stream_error_after(0, "throttlingException", DAILY)
    with pytest.raises(ClientError, match="per day"):
        _chain(server).invoke(QUESTION)
    assert _streams(server) == [200]  # the stream opened, then the exception event


async def test_async_daily_quota_is_not_retried(server: LocalBedrock) -> None:
    server.stream_error_after(0, "throttlingException", DAILY)
    with pytest.raises(ClientError, match="per day"):
        [chunk async for chunk in _chain(server).astream(QUESTION)]
    assert len(_streams(server)) == 1


def test_a_per_minute_throttle_is_still_retried(server: LocalBedrock) -> None:
    server.stream_error_after(0, "throttlingException", "Too many tokens, please wait.")
    assert "vector search" in _chain(server).invoke(QUESTION)["answer"]
    assert len(_streams(server)) == 2


def test_a_model_stream_error_before_the_first_token_is_retried(server: LocalBedrock) -> None:
    server.stream_error_after(0, "modelStreamErrorException")
    assert "vector search" in _chain(server).invoke(QUESTION)["answer"]
    assert len(_streams(server)) == 2


def test_a_503_before_the_stream_is_retried(server: LocalBedrock) -> None:
    server.fail_next(503, "ServiceUnavailableException", "busy")
    assert "vector search" in _chain(server).invoke(QUESTION)["answer"]
    assert _streams(server) == [503, 200]


def test_a_validation_error_is_not_retried(server: LocalBedrock) -> None:
    server.fail_next(400, "ValidationException", "Malformed input request")
    with pytest.raises(ClientError, match="Malformed"):
        _chain(server).invoke(QUESTION)
    assert _streams(server) == [400]
