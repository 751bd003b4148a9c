"""Titan embeddings against faulty responses: real boto3 -> FaultProxy -> LocalBedrock over HTTP.

The faults a network and the service add (a load balancer's plain 5xx, a 200 cut short, a vector
of the wrong length or not normalised) are injected by the proxy, so the client code runs as it
does against Bedrock: botocore parses the error, the client reads the body and checks it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from helpers.fault_proxy import (
    FaultProxy,
    garbled_body,
    plain_status,
    vector_length,
    vector_scaled,
)

from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings
from langchain_tidb_bedrock.errors import (
    BedrockResponseError,
    InvalidEmbeddingError,
    PartialEmbeddingError,
    TiDBBedrockError,
)
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

TEXTS = [f"passage {i} about {['tidb', 'vectors', 'bedrock'][i % 3]} number {i}" for i in range(40)]
PRIVATE_TEXT = "confidential: the merger closes on Friday"


@pytest.fixture
def proxy(bedrock: LocalBedrock) -> Iterator[FaultProxy]:
    with FaultProxy(bedrock.endpoint_url) as fault_proxy:
        yield fault_proxy


def make(proxy: FaultProxy, **kwargs: Any) -> BedrockTitanEmbeddings:
    kwargs.setdefault("backoff_base", 0.005)
    kwargs.setdefault("dimensions", 256)
    return BedrockTitanEmbeddings(endpoint_url=proxy.endpoint_url, **kwargs)


def only(text: str) -> Any:
    return lambda body: isinstance(body, dict) and body.get("inputText") == text


def sent(bedrock: LocalBedrock) -> Counter[str]:
    return Counter(r.body["inputText"] for r in bedrock.requests)


# ---------------------------------------------------------------- 5xx and unreadable bodies


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_plain_5xx_is_retried(proxy: FaultProxy, bedrock: LocalBedrock, status: int) -> None:
    proxy.inject(plain_status(status), when=only(TEXTS[1]))
    emb = make(proxy)
    vectors = emb.embed_documents(TEXTS[:3])
    assert [len(v) for v in vectors] == [256, 256, 256]
    assert proxy.injected == 1
    assert sent(bedrock) == {TEXTS[0]: 1, TEXTS[1]: 2, TEXTS[2]: 1}
    assert emb.usage["retries"] == 1


def test_a_garbled_200_body_is_retried(proxy: FaultProxy, bedrock: LocalBedrock) -> None:
    proxy.inject(garbled_body(), when=only(TEXTS[0]))
    emb = make(proxy)
    assert len(emb.embed_query(TEXTS[0])) == 256
    assert proxy.injected == 1
    assert sent(bedrock) == {TEXTS[0]: 2}
    assert emb.usage == {**emb.usage, "retries": 1, "embedded": 1}


async def test_async_retries_a_5xx_and_a_garbled_body(
    proxy: FaultProxy, bedrock: LocalBedrock
) -> None:
    proxy.inject(plain_status(502), when=only(TEXTS[2]))
    proxy.inject(garbled_body(), when=only(TEXTS[5]))
    vectors = await make(proxy).aembed_documents(TEXTS[:8])
    assert [len(v) for v in vectors] == [256] * 8
    assert proxy.injected == 2
    assert sum(sent(bedrock).values()) == 10


def test_bad_responses_among_40_texts_cost_one_retry_each(
    proxy: FaultProxy, bedrock: LocalBedrock
) -> None:
    # The trace: one bad response used to cancel the other texts (17-19 of 40 failed).
    proxy.inject(plain_status(502), when=only(TEXTS[4]))
    proxy.inject(garbled_body(), when=only(TEXTS[17]))
    proxy.inject(plain_status(500), when=only(TEXTS[30]))
    vectors = make(proxy).embed_documents(TEXTS)
    assert len(vectors) == 40
    assert all(len(v) == 256 for v in vectors)
    assert proxy.forwarded == 43


def test_one_bad_response_never_cancels_the_other_texts(
    proxy: FaultProxy, bedrock: LocalBedrock
) -> None:
    # No retries at all: the two texts whose response was bad fail, and only they.
    proxy.inject(plain_status(502), when=only(TEXTS[4]))
    proxy.inject(garbled_body(), when=only(TEXTS[17]))
    emb = make(proxy, max_retries=0)
    with pytest.raises(PartialEmbeddingError) as info:
        emb.embed_documents(TEXTS)
    err = info.value
    assert err.failed_indices == [4, 17]
    assert [i for i, v in enumerate(err.vectors) if v is None] == [4, 17]
    assert all(len(v) == 256 for v in err.vectors if v is not None)
    assert sum(sent(bedrock).values()) == 40  # every text was sent


def test_unreadable_bodies_fail_the_text_after_max_retries(
    proxy: FaultProxy, bedrock: LocalBedrock
) -> None:
    proxy.inject(garbled_body(), times=None, when=only(PRIVATE_TEXT))
    emb = make(proxy, max_retries=3)
    with pytest.raises(PartialEmbeddingError) as info:
        emb.embed_documents(["alpha", PRIVATE_TEXT, "gamma"])
    err = info.value
    assert err.failed_indices == [1]
    assert isinstance(err.last_error, BedrockResponseError)
    assert err.last_error.index == 1
    assert "input position 1" in str(err)
    assert "not JSON" in str(err)
    assert PRIVATE_TEXT not in str(err)
    assert sent(bedrock)[PRIVATE_TEXT] == 4  # the first attempt and three retries


def test_persistent_5xx_stops_at_the_deadline(proxy: FaultProxy, bedrock: LocalBedrock) -> None:
    proxy.inject(plain_status(502), times=None)
    emb = make(proxy, max_retries=10_000, backoff_base=0.01, backoff_max=0.01, timeout=1.0)
    with pytest.raises(PartialEmbeddingError) as info:
        emb.embed_documents(["alpha", "beta"])
    assert info.value.failed_indices == [0, 1]
    assert proxy.forwarded > 2  # retried until the deadline, not given up after one
    assert emb.usage["embedded"] == 0


# ---------------------------------------------------------------- vectors checked


def test_a_wrong_length_vector_is_sent_for_again(proxy: FaultProxy, bedrock: LocalBedrock) -> None:
    proxy.inject(vector_length(253), when=only(TEXTS[1]))
    vectors = make(proxy).embed_documents(TEXTS[:3])
    assert [len(v) for v in vectors] == [256, 256, 256]
    assert proxy.injected == 1
    assert sent(bedrock)[TEXTS[1]] == 2


def test_a_vector_that_stays_wrong_fails_its_text_with_its_position(
    proxy: FaultProxy, bedrock: LocalBedrock
) -> None:
    proxy.inject(vector_length(253), times=None, when=only(PRIVATE_TEXT))
    emb = make(proxy, max_retries=8)
    with pytest.raises(PartialEmbeddingError) as info:
        emb.embed_documents(["alpha", "beta", PRIVATE_TEXT, "delta", PRIVATE_TEXT])
    err = info.value
    assert err.failed_indices == [2, 4]
    cause = err.last_error
    assert isinstance(cause, InvalidEmbeddingError)
    assert isinstance(cause, TiDBBedrockError)
    assert cause.index == 2
    assert cause.problem == "253 dimensions, expected 256"
    assert "input position 2: 253 dimensions, expected 256" in str(err)
    assert PRIVATE_TEXT not in str(err)
    assert PRIVATE_TEXT not in repr(cause.args)
    assert [len(v) for v in err.vectors if v is not None] == [256, 256, 256]
    # Sent once more (a corrupted response), not max_retries times (a model answering wrong).
    assert sent(bedrock)[PRIVATE_TEXT] == 2


def test_embed_query_never_returns_a_wrong_length_vector(
    proxy: FaultProxy, bedrock: LocalBedrock
) -> None:
    proxy.inject(vector_length(1000), times=None)
    emb = make(proxy, dimensions=1024)
    with pytest.raises(PartialEmbeddingError) as info:
        emb.embed_query(PRIVATE_TEXT)
    assert isinstance(info.value.last_error, InvalidEmbeddingError)
    assert "input position 0: 1000 dimensions, expected 1024" in str(info.value)


def test_an_unnormalised_vector_is_sent_for_again(proxy: FaultProxy, bedrock: LocalBedrock) -> None:
    proxy.inject(vector_scaled(1.5), when=only(TEXTS[0]))
    vectors = make(proxy, normalize=True).embed_documents(TEXTS[:2])
    assert [float(np.linalg.norm(v)) for v in vectors] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert sent(bedrock)[TEXTS[0]] == 2


def test_an_unnormalised_vector_that_stays_fails_its_text(
    proxy: FaultProxy, bedrock: LocalBedrock
) -> None:
    proxy.inject(vector_scaled(1.5), times=None, when=only(PRIVATE_TEXT))
    with pytest.raises(PartialEmbeddingError) as info:
        make(proxy, normalize=True).embed_documents([PRIVATE_TEXT, "beta"])
    err = info.value
    assert err.failed_indices == [0]
    assert isinstance(err.last_error, InvalidEmbeddingError)
    assert "input position 0: L2 norm 1.5, expected 1 (normalize=True)" in str(err)
    assert PRIVATE_TEXT not in str(err)


def test_without_normalize_the_norm_is_not_checked(
    proxy: FaultProxy, bedrock: LocalBedrock
) -> None:
    proxy.inject(vector_scaled(1.5), times=None)
    vectors = make(proxy, normalize=False).embed_documents(TEXTS[:2])
    assert [len(v) for v in vectors] == [256, 256]
    assert sum(sent(bedrock).values()) == 2
