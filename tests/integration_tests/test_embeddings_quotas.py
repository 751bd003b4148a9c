"""BedrockTitanEmbeddings under Bedrock quotas and refusals, against LocalBedrock over HTTP."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_tidb_bedrock.embeddings.titan import (
    BedrockConfigError,
    BedrockEmbeddingError,
    BedrockTitanEmbeddings,
    PartialEmbeddingError,
)
from langchain_tidb_bedrock.local import _standin_models
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

TEXTS = [f"quota passage {i} about topic {i % 3}" for i in range(10)]


@pytest.fixture
def server() -> Iterator[LocalBedrock]:
    with LocalBedrock() as bedrock:
        yield bedrock


def make(server: LocalBedrock, **kwargs: Any) -> BedrockTitanEmbeddings:
    kwargs.setdefault("backoff_base", 0.005)
    return BedrockTitanEmbeddings(endpoint_url=server.endpoint_url, **kwargs)


def expected(text: str) -> list[float]:
    return _standin_models.embed(text, 1024, normalize=True)


def test_every_text_is_embedded_in_order_under_a_tight_quota(server: LocalBedrock) -> None:
    server.requests_per_minute = 120  # two requests a second, a bucket of two
    emb = make(server, max_concurrency=4)
    assert emb.embed_documents(TEXTS) == [expected(t) for t in TEXTS]
    ok = Counter(r.body["inputText"] for r in server.requests if r.status == 200)
    assert ok == Counter(TEXTS)  # each text embedded exactly once
    # Only the opening burst meets the quota blind; after it the learned rate holds.
    assert emb.usage["throttles"] <= 6
    assert emb._rate is not None
    # The learned rate, not a probe above it that the run ended before testing.
    settled = emb._rate.settled_rate
    assert settled is not None
    assert settled <= 2.5


def test_timeout_hands_back_the_vectors_already_computed(server: LocalBedrock) -> None:
    server.requests_per_minute = 1  # the first text passes, the next ones wait a minute
    emb = make(server, max_concurrency=1, timeout=1.0)
    with pytest.raises(PartialEmbeddingError) as info:
        emb.embed_documents(TEXTS[:4])
    err = info.value
    assert isinstance(err, BedrockEmbeddingError)
    assert err.failed_indices == [1, 2, 3]
    assert err.vectors == [expected(TEXTS[0]), None, None, None]
    assert isinstance(err.last_error, TimeoutError)
    assert "1 s timeout" in str(err)


async def test_async_timeout_hands_back_the_vectors_too(server: LocalBedrock) -> None:
    server.requests_per_minute = 1
    emb = make(server, max_concurrency=1, timeout=1.0)
    with pytest.raises(PartialEmbeddingError) as info:
        await emb.aembed_documents(TEXTS[:3])
    assert info.value.failed_indices == [1, 2]
    assert info.value.vectors[0] == expected(TEXTS[0])


TOO_MANY = (
    "400 Bad Request: Too many input tokens. Max input tokens: 8192, "
    "request input token count: 9000"
)


def test_too_many_input_tokens_is_cut_by_the_reported_count_and_retried_once(
    server: LocalBedrock,
) -> None:
    text = "word " * 1000
    server.fail_next(400, "ValidationException", TOO_MANY)
    emb = make(server)
    with pytest.warns(UserWarning, match="counted 9,000 tokens"):
        vector = emb.embed_query(text)
    first, second = server.requests
    assert first.body["inputText"] == text
    keep = int(len(text) * 8192 / 9000 * 0.9)
    assert second.body["inputText"] == text[:keep]
    assert vector == expected(text[:keep])


def test_too_many_input_tokens_is_retried_only_once(server: LocalBedrock) -> None:
    server.fail_next(400, "ValidationException", TOO_MANY, times=2)
    emb = make(server)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(BedrockEmbeddingError) as info:
            emb.embed_query("word " * 1000)
    assert "Too many input tokens" in str(info.value)
    assert len(server.requests) == 2


def test_too_many_input_tokens_is_not_cut_when_asked_for_errors(server: LocalBedrock) -> None:
    server.fail_next(400, "ValidationException", TOO_MANY)
    with pytest.raises(BedrockEmbeddingError):
        make(server, on_long_text="error").embed_query("word " * 1000)
    assert len(server.requests) == 1


def test_daily_quota_fails_fast_and_keeps_what_was_done(server: LocalBedrock) -> None:
    server.tokens_per_day = 8
    emb = make(server, max_concurrency=1)
    texts = ["one two three", "four five six", "seven eight nine", "ten eleven twelve"]
    with pytest.raises(PartialEmbeddingError) as info:
        emb.embed_documents(texts)
    err = info.value
    assert err.failed_indices == [2, 3]
    assert err.vectors[:2] == [expected(texts[0]), expected(texts[1])]
    assert "Too many tokens per day" in str(err)
    # No retry of the refused text, and the text after it was never sent.
    assert [r.status for r in server.requests] == [200, 200, 429]


@pytest.mark.parametrize(
    ("code", "message", "hints"),
    [
        (
            "AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: "
            "bedrock:InvokeModel",
            ["IAM policy", "Service Control Policy", "Expired session credentials"],
        ),
        (
            "ExpiredTokenException",
            "The security token included in the request is expired",
            ["session token has expired", "refresh the credentials"],
        ),
    ],
)
def test_access_errors_say_what_to_check_and_are_not_retried(
    server: LocalBedrock, code: str, message: str, hints: list[str]
) -> None:
    server.fail_next(403, code, message)
    emb = make(server, max_concurrency=1)
    with pytest.raises(PartialEmbeddingError) as info:
        emb.embed_documents(["alpha", "beta"])
    err = info.value
    assert err.failed_indices == [0, 1]
    assert isinstance(err.last_error, BedrockConfigError)
    for hint in hints:
        assert hint in str(err)
    assert "amazon.titan-embed-text-v2:0" in str(err)
    assert "local-test" not in str(err)  # no credentials in the message
    assert len(server.requests) == 1
