"""BedrockTitanEmbeddings against LocalBedrock over HTTP (real boto3, no mocks)."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections import Counter
from typing import Any

import numpy as np
import pytest
from botocore.config import Config
from langchain_aws import BedrockEmbeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from langchain_tidb_bedrock.embeddings import titan as titan_module
from langchain_tidb_bedrock.embeddings.titan import BedrockEmbeddingError, BedrockTitanEmbeddings
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

TITAN = "amazon.titan-embed-text-v2:0"
TEXTS = [
    f"passage {i} about {['tidb', 'vectors', 'bedrock', 'llama'][i % 4]} number {i}"
    for i in range(200)
]


def make(bedrock: LocalBedrock, **kwargs: Any) -> BedrockTitanEmbeddings:
    kwargs.setdefault("backoff_base", 0.005)
    return BedrockTitanEmbeddings(endpoint_url=bedrock.endpoint_url, **kwargs)


def ok_counts(bedrock: LocalBedrock) -> Counter[str]:
    return Counter(r.body["inputText"] for r in bedrock.requests if r.status == 200)


class TestBedrockTitanEmbeddingsStandard(EmbeddingsIntegrationTests):
    endpoint_url = ""

    @pytest.fixture(autouse=True)
    def _point_at_local_bedrock(self, local_bedrock: LocalBedrock) -> None:
        # The session server's port is only known at run time; the params read it from here.
        local_bedrock.reset()
        type(self).endpoint_url = local_bedrock.endpoint_url

    @property
    def embeddings_class(self) -> type[BedrockTitanEmbeddings]:
        return BedrockTitanEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint_url, "region_name": "us-east-1", "dimensions": 256}


# ---------------------------------------------------------------- request schema


def test_titan_request_body_matches_schema(bedrock: LocalBedrock) -> None:
    emb = make(bedrock, dimensions=512, normalize=False)
    vector = emb.embed_query("What is TiDB?")
    (record,) = bedrock.requests
    assert record.op == "InvokeModel"
    assert record.model_id == TITAN
    assert record.body == {"inputText": "What is TiDB?", "dimensions": 512, "normalize": False}
    assert record.headers["Content-Type"] == "application/json"
    assert record.headers["Accept"] == "application/json"
    assert len(vector) == 512
    assert abs(np.linalg.norm(vector) - 1.0) > 1e-3  # no client-side normalisation


def test_normalize_is_the_api_flag(bedrock: LocalBedrock) -> None:
    vector = make(bedrock, dimensions=256).embed_query("unit length please")
    assert bedrock.requests[0].body["normalize"] is True
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-5


def test_model_id_from_environment(bedrock: LocalBedrock, monkeypatch: pytest.MonkeyPatch) -> None:
    foundation = f"arn:aws:bedrock:us-east-1::foundation-model/{TITAN}"
    monkeypatch.setenv("BEDROCK_EMBEDDING_MODEL_ID", foundation)
    emb = make(bedrock, dimensions=256)
    assert len(emb.embed_query("x")) == 256
    assert bedrock.requests[0].model_id == foundation
    # Plainly another model: refused at construction, nothing sent.
    monkeypatch.setenv("BEDROCK_EMBEDDING_MODEL_ID", "amazon.titan-embed-text-v9:0")
    with pytest.raises(ValueError, match=r"only Titan Text Embeddings V2 \(amazon"):
        make(bedrock)
    assert len(bedrock.requests) == 1


async def _now(emb: BedrockTitanEmbeddings, texts: list[str]) -> list[list[float]]:
    return emb.embed_documents(texts)  # the sync call, awaitable alongside the async one


@pytest.mark.parametrize("texts", [["x"], ["one", "two", "three"]])
async def test_a_model_id_bedrock_refuses_is_one_clear_error(
    bedrock: LocalBedrock, texts: list[str]
) -> None:
    # An ARN cannot be judged offline; Bedrock's ValidationException about it becomes one
    # UnsupportedModelError (not a partial-embedding report), and the other texts are not sent.
    unknown = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/nope"
    emb = make(bedrock, model_id=unknown, max_concurrency=1)
    for asynchronous in (False, True):
        bedrock.reset()
        with pytest.raises(titan_module.UnsupportedModelError) as info:
            await (emb.aembed_documents(texts) if asynchronous else _now(emb, texts))
        message = str(info.value)
        assert message.startswith(
            "only Titan Text Embeddings V2 (amazon.titan-embed-text-v2:0) is supported"
        )
        assert f"Bedrock refused {unknown!r}" in message
        assert "ValidationException: The provided model identifier is invalid." in message
        assert len(bedrock.requests) == 1


def test_usage_is_accumulated(bedrock: LocalBedrock) -> None:
    emb = make(bedrock)
    emb.embed_documents(["one two three", "four five"])
    emb.embed_query("six")
    assert emb.usage == {
        "input_tokens": 6,
        "requests": 3,
        "embedded": 3,
        "retries": 0,
        "throttles": 0,
    }


# ---------------------------------------------------------------- speed and concurrency


def test_concurrent_and_identical_to_langchain_aws(bedrock: LocalBedrock) -> None:
    # Concurrency is checked here; how much faster it is lives in `make bench` (embed.py).
    bedrock.latency = 0.05
    ours = make(bedrock)
    fast = ours.embed_documents(TEXTS)
    assert 1 < bedrock.max_in_flight <= ours.max_concurrency
    baseline = BedrockEmbeddings(
        model_id=TITAN, endpoint_url=bedrock.endpoint_url, region_name="us-east-1"
    )
    bedrock.latency = 0.0
    slow = baseline.embed_documents(TEXTS)
    np.testing.assert_allclose(np.asarray(fast), np.asarray(slow), atol=1e-7)


async def test_async_is_bounded_and_ordered(bedrock: LocalBedrock) -> None:
    bedrock.latency = 0.02
    emb = make(bedrock, max_concurrency=4)
    texts = TEXTS[:40]
    vectors = await emb.aembed_documents(texts)
    assert 1 < bedrock.max_in_flight <= 4
    bedrock.latency = 0.0
    assert vectors == emb.embed_documents(texts)
    assert await emb.aembed_query(texts[3]) == vectors[3]


def test_connection_pool_matches_concurrency(bedrock: LocalBedrock) -> None:
    user = Config(retries={"mode": "adaptive", "max_attempts": 10}, read_timeout=7)
    emb = make(bedrock, max_concurrency=32, config=user)
    config = emb.client.meta.config
    assert config.max_pool_connections == 32
    assert config.retries["total_max_attempts"] == 1  # retries are ours
    assert config.read_timeout == 7  # the rest of the user's config is kept


# ---------------------------------------------------------------- throttling and retries


def test_throttled_ingestion_completes_in_order_without_duplicates(bedrock: LocalBedrock) -> None:
    expected = make(bedrock).embed_documents(TEXTS)
    bedrock.reset()
    bedrock.throttle_rate = 0.3
    emb = make(bedrock)
    vectors = emb.embed_documents(TEXTS)
    assert vectors == expected
    statuses = Counter(r.status for r in bedrock.requests)
    assert statuses[429] >= 60
    assert set(ok_counts(bedrock).values()) == {1}  # each text embedded exactly once
    assert len(ok_counts(bedrock)) == len(TEXTS)
    usage = emb.usage
    assert usage["throttles"] == statuses[429] == usage["retries"]
    assert usage["embedded"] == len(TEXTS)
    # These 429s name their wait (x-amz-retry-after): paced by it, not taken for a quota.
    assert emb._rate is not None
    assert emb._rate.rate is None


def test_throttling_shrinks_the_concurrency_window(bedrock: LocalBedrock) -> None:
    bedrock.latency = 0.005
    bedrock.throttle_every = 1  # every request throttled
    emb = make(bedrock, max_concurrency=16, max_retries=0)
    with pytest.raises(BedrockEmbeddingError):
        emb.embed_documents(TEXTS[:32])
    assert emb._limiter is not None
    shrunk = emb._limiter.limit
    assert shrunk <= 8
    # Once throttling stops, successes grow the window back, and the server sees it.
    bedrock.reset()
    bedrock.latency = 0.005
    emb.embed_documents(TEXTS[32:])
    assert emb._limiter.limit > shrunk
    assert bedrock.max_in_flight > shrunk


def test_retry_after_header_is_honoured(bedrock: LocalBedrock) -> None:
    bedrock.retry_after_ms = 150
    bedrock.fail_next(
        429, "ThrottlingException", "slow down", {"x-amz-retry-after": "150"}, times=1
    )
    start = time.perf_counter()
    make(bedrock, backoff_base=0.001).embed_query("x")
    assert time.perf_counter() - start >= 0.15


def test_retry_after_header_is_capped_by_backoff_max(bedrock: LocalBedrock) -> None:
    # A minute-long hint must not stall the batch beyond the configured ceiling.
    bedrock.fail_next(
        429, "ThrottlingException", "slow down", {"x-amz-retry-after": "60000"}, times=2
    )
    emb = make(bedrock, backoff_base=0.001, backoff_max=0.05)
    start = time.perf_counter()
    assert len(emb.embed_query("x")) == 1024
    elapsed = time.perf_counter() - start
    assert 0.1 <= elapsed < 3
    assert [r.status for r in bedrock.requests] == [429, 429, 200]


async def test_cancelling_aembed_stops_pool_requests(bedrock: LocalBedrock) -> None:
    # The only request keeps failing with a transient error and retrying in the pool; cancelling
    # the awaiting task must stop it rather than let it retry on in the background.
    bedrock.fail_next(503, "ServiceUnavailableException", "try again", times=50)
    emb = make(bedrock, backoff_base=0.05, backoff_max=0.05, max_retries=50)
    task = asyncio.ensure_future(emb.aembed_documents(["alpha", "beta"]))
    await asyncio.sleep(0.15)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)  # a request may still be in flight
    sent = len(bedrock.requests)
    await asyncio.sleep(0.5)
    assert len(bedrock.requests) == sent  # nothing retried after the cancellation
    emb.close()


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "ServiceUnavailableException"),
        (500, "InternalServerException"),
        (429, "ModelNotReadyException"),
        (408, "ModelTimeoutException"),
    ],
)
def test_transient_errors_are_retried(bedrock: LocalBedrock, status: int, code: str) -> None:
    bedrock.fail_next(status, code, "try again", times=2)
    emb = make(bedrock)
    assert len(emb.embed_query("hello")) == 1024
    assert [r.status for r in bedrock.requests] == [status, status, 200]
    assert emb.usage["retries"] == 2


def test_exhausted_retries_name_the_failed_indices(bedrock: LocalBedrock) -> None:
    bedrock.throttle_every = 1
    emb = make(bedrock, max_retries=2)
    with pytest.raises(BedrockEmbeddingError) as info:
        emb.embed_documents(["alpha", "beta", "alpha", "gamma"])
    err = info.value
    assert err.failed_indices == [0, 1, 2, 3]
    assert "4 of 4 texts were not embedded (input indices [0, 1, 2, 3])" in str(err)
    assert "ThrottlingException" in str(err)
    assert len(bedrock.requests) == 3 * 3  # three distinct texts, three attempts each


def test_non_retryable_error_is_not_retried(bedrock: LocalBedrock) -> None:
    bedrock.fail_next(400, "ValidationException", "bad input")
    emb = make(bedrock, max_concurrency=1)
    with pytest.raises(BedrockEmbeddingError) as info:
        emb.embed_documents(["a", "b", "c"])
    assert info.value.failed_indices == [0, 1, 2]
    assert "ValidationException" in str(info.value)
    assert len(bedrock.requests) == 1  # the others were cancelled, not sent


def test_partial_failure_names_only_the_failed_index(
    bedrock: LocalBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 9,000 words: under 50,000 characters but over Titan's 8,192 tokens -> rejected by the
    # service (the client-side token guard is lifted here so the request is sent).
    monkeypatch.setattr(titan_module, "MAX_INPUT_TOKENS", 1_000_000)
    too_many_tokens = "w " * 9000
    emb = make(bedrock, max_concurrency=1, on_long_text="error")  # no cut-and-retry
    with pytest.raises(BedrockEmbeddingError) as info:
        emb.embed_documents(["fine", too_many_tokens])
    assert info.value.failed_indices == [1]
    assert "Too many input tokens" in str(info.value.last_error)


# ---------------------------------------------------------------- input checks


def test_empty_text_is_rejected_with_its_index(bedrock: LocalBedrock) -> None:
    emb = make(bedrock)
    with pytest.raises(ValueError, match="index 2"):
        emb.embed_documents(["a", "b", "   "])
    with pytest.raises(ValueError, match="index 0"):
        emb.embed_query("")
    assert bedrock.requests == []


def test_long_text_is_truncated_with_a_warning(bedrock: LocalBedrock) -> None:
    emb = make(bedrock)
    with pytest.warns(UserWarning, match="index 1 has 60,000 characters; truncated"):
        vectors = emb.embed_documents(["short", "x" * 60_000])
    assert len(vectors) == 2
    lengths = sorted(len(r.body["inputText"]) for r in bedrock.requests)
    # 50,000 characters would still be ~12,500 tokens by the conservative estimate (4 letters
    # per token): cut further to 8,192 tokens.
    assert lengths == [5, 32_768]


def test_long_cjk_text_is_truncated_to_the_token_limit(bedrock: LocalBedrock) -> None:
    # 40,000 characters of CJK pass the character limit but are far over 8,192 tokens; before,
    # the service's non-retryable ValidationException failed the whole batch.
    cjk = "数据库向量检索。" * 5000
    emb = make(bedrock)
    with pytest.warns(UserWarning, match="index 1 has 40,000 characters; truncated to 8,192"):
        vectors = emb.embed_documents(["short", cjk, "another"])
    assert [len(v) for v in vectors] == [1024, 1024, 1024]
    assert [r.status for r in bedrock.requests] == [200, 200, 200]
    sent = next(r.body["inputText"] for r in bedrock.requests if len(r.body["inputText"]) > 10)
    assert sent == cjk[:8192]


def test_token_heavy_text_is_truncated_or_rejected(bedrock: LocalBedrock) -> None:
    words = "w " * 9000  # 18,000 characters, 9,000 words: over 8,192 tokens
    with pytest.warns(UserWarning, match="index 0 has 18,000 characters; truncated"):
        assert len(make(bedrock).embed_query(words)) == 1024
    assert [r.status for r in bedrock.requests] == [200]
    bedrock.reset()
    with pytest.raises(ValueError, match="index 1 has about 9,000 tokens"):
        make(bedrock, on_long_text="error").embed_documents(["fine", words])
    assert bedrock.requests == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a text within the limits is sent untouched
        make(bedrock).embed_query("w " * 4000)


def test_long_text_raises_when_configured(bedrock: LocalBedrock) -> None:
    emb = make(bedrock, on_long_text="error")
    with pytest.raises(ValueError, match="index 0 has 50,001 characters"):
        emb.embed_documents(["x" * 50_001])
    assert bedrock.requests == []


async def test_empty_list_sends_nothing(bedrock: LocalBedrock) -> None:
    emb = make(bedrock)
    assert emb.embed_documents([]) == []
    assert await emb.aembed_documents([]) == []
    assert bedrock.requests == []


def test_duplicates_are_embedded_once(bedrock: LocalBedrock) -> None:
    emb = make(bedrock)
    vectors = emb.embed_documents(["a", "b", "a"])
    assert len(bedrock.requests) == 2
    assert len(vectors) == 3
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert sorted(r.body["inputText"] for r in bedrock.requests) == ["a", "b"]


def test_similar_texts_are_close(bedrock: LocalBedrock) -> None:
    emb = make(bedrock)
    q, near, far = np.asarray(
        emb.embed_documents(
            ["How does TiDB vector search work?", "TiDB vector search uses HNSW", "Paris in May"]
        )
    )
    assert q @ near > q @ far + 0.2


def test_store_refuses_a_blank_text_before_any_titan_call(
    bedrock: LocalBedrock, tidb_url: str, table_name: str
) -> None:
    from langchain_tidb_bedrock import TiDBVectorStore

    store = TiDBVectorStore(
        make(bedrock), connection_string=tidb_url, table_name=table_name, batch_size=2
    )
    with pytest.raises(ValueError, match="position 3 is empty or whitespace only"):
        store.add_texts(["a", "b", "c", " \n"])
    assert bedrock.requests == []  # not one text embedded
    assert store.count() == 0
    store.close()
