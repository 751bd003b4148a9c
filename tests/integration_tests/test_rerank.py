"""Bedrock rerank over HTTP: LocalBedrock's Rerank and InvokeModel wire contract, exercised with
real boto3 clients, and BedrockReranker (vs langchain-aws BedrockRerank) against it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, InvalidEndpointConfigurationError
from langchain_aws import BedrockRerank
from langchain_core.documents import Document
from pydantic import SecretStr

from langchain_tidb_bedrock.document_compressors import BedrockReranker
from langchain_tidb_bedrock.document_compressors._requests import (
    foundation_model_arn,
    rerank_request,
)
from langchain_tidb_bedrock.errors import BedrockConfigError, BedrockModelUnavailableError
from langchain_tidb_bedrock.local import _rerank as standin
from langchain_tidb_bedrock.local._validation import (
    RERANK_ARN_MESSAGE,
    RERANK_NO_ACCESS_MESSAGE,
    RERANK_TOO_MANY_RESULTS_MESSAGE,
)
from langchain_tidb_bedrock.local.bedrock import LocalBedrock, RecordedRequest

AMAZON = "amazon.rerank-v1:0"
COHERE = "cohere.rerank-v3-5:0"
QUERY = "Does TiDB support vector search?"
TEXTS = [
    "Paris is the capital of France.",  # no query word: 0
    "TiDB is a distributed SQL database.",  # tidb
    "TiDB supports vector search with HNSW indexes.",  # tidb, support, vector, search
    "Vector search finds nearest neighbours.",  # vector, search
]
EXPECTED_ORDER = [2, 3, 1, 0]
_NO_RETRY = Config(retries={"total_max_attempts": 1})


def _agent(bedrock: LocalBedrock, region: str = "us-east-1") -> Any:
    return boto3.client(
        "bedrock-agent-runtime",
        endpoint_url=bedrock.endpoint_url,
        region_name=region,
        config=_NO_RETRY,
    )


def _runtime(bedrock: LocalBedrock, region: str = "us-east-1") -> Any:
    return boto3.client(
        "bedrock-runtime", endpoint_url=bedrock.endpoint_url, region_name=region, config=_NO_RETRY
    )


def _reranks(bedrock: LocalBedrock) -> list[RecordedRequest]:
    return [r for r in bedrock.requests if r.op == "Rerank"]


@pytest.fixture
def reranker(bedrock: LocalBedrock) -> Iterator[BedrockReranker]:
    """Cohere Rerank 3.5 in us-east-1 through the Rerank API; fast backoff for the retry tests."""
    made = BedrockReranker(
        model_id=COHERE,
        endpoint_url=bedrock.endpoint_url,
        region_name="us-east-1",
        top_n=3,
        backoff_base=0.01,
        backoff_max=0.05,
    )
    yield made
    made.close()


# ---------------------------------------------------------------- LocalBedrock: Rerank API


def test_rerank_api_shape_and_deterministic_order(bedrock: LocalBedrock) -> None:
    arn = foundation_model_arn(AMAZON, "us-west-2")
    response = _agent(bedrock, "us-west-2").rerank(**rerank_request(QUERY, TEXTS, arn, 4))
    assert set(response) == {"results", "ResponseMetadata"}
    assert [r["index"] for r in response["results"]] == EXPECTED_ORDER
    assert [r["relevanceScore"] for r in response["results"]] == [
        standin.relevance(QUERY, TEXTS[i]) for i in EXPECTED_ORDER
    ]
    (record,) = bedrock.requests
    assert (record.op, record.model_id, record.region, record.path, record.status) == (
        "Rerank",
        arn,
        "us-west-2",
        "/rerank",
        200,
    )


@pytest.mark.parametrize(
    ("model_arn", "region", "message"),
    [
        (AMAZON, "us-west-2", RERANK_ARN_MESSAGE),  # a bare id, as the service refuses it
        (foundation_model_arn(AMAZON, "us-east-1"), "us-east-1", RERANK_NO_ACCESS_MESSAGE),
        (
            foundation_model_arn(COHERE, "us-east-1"),
            "us-west-2",
            "Reranking does not support cross-region calls",
        ),
    ],
)
def test_rerank_api_model_refusals(
    bedrock: LocalBedrock, model_arn: str, region: str, message: str
) -> None:
    with pytest.raises(ClientError) as caught:
        _agent(bedrock, region).rerank(**rerank_request(QUERY, TEXTS, model_arn, 1))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert message in caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_rerank_api_source_and_result_limits(bedrock: LocalBedrock) -> None:
    client, arn = _agent(bedrock), foundation_model_arn(COHERE, "us-east-1")
    with pytest.raises(ClientError, match="less than or equal to 1000"):
        client.rerank(**rerank_request(QUERY, ["some text"] * 1001, arn, 1))
    with pytest.raises(ClientError, match=RERANK_TOO_MANY_RESULTS_MESSAGE):
        client.rerank(**rerank_request(QUERY, TEXTS, arn, 5))
    assert len(client.rerank(**rerank_request(QUERY, ["t"] * 1000, arn, 1000))["results"]) == 1000


def test_rerank_api_pages_with_next_token(bedrock: LocalBedrock) -> None:
    bedrock.rerank_page_size = 3
    client, arn = _agent(bedrock), foundation_model_arn(COHERE, "us-east-1")
    request = rerank_request(QUERY, TEXTS, arn, 4)
    first = client.rerank(**request)
    assert [r["index"] for r in first["results"]] == EXPECTED_ORDER[:3]
    second = client.rerank(**request, nextToken=first["nextToken"])
    assert [r["index"] for r in second["results"]] == EXPECTED_ORDER[3:]
    assert "nextToken" not in second
    other = rerank_request("another query", TEXTS, arn, 4)
    with pytest.raises(ClientError, match="nextToken is invalid"):
        client.rerank(**other, nextToken=first["nextToken"])


def test_rerank_counts_against_the_per_minute_request_quota(bedrock: LocalBedrock) -> None:
    bedrock.requests_per_minute = 1
    client, arn = _agent(bedrock), foundation_model_arn(COHERE, "us-east-1")
    client.rerank(**rerank_request(QUERY, TEXTS, arn, 1))
    with pytest.raises(ClientError) as caught:
        client.rerank(**rerank_request(QUERY, TEXTS, arn, 1))
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    # InvokeModel of the same model shares the model's quota.
    with pytest.raises(ClientError, match="ThrottlingException"):
        _runtime(bedrock).invoke_model(
            modelId=COHERE, body=json.dumps({"query": "q", "documents": ["a"], "api_version": 2})
        )


# ---------------------------------------------------------------- LocalBedrock: InvokeModel


def test_invoke_cohere_rerank_shape(bedrock: LocalBedrock) -> None:
    body = {"query": QUERY, "documents": TEXTS, "top_n": 2, "api_version": 2}
    response = _runtime(bedrock).invoke_model(modelId=COHERE, body=json.dumps(body))
    data = json.loads(response["body"].read())
    assert [r["index"] for r in data["results"]] == EXPECTED_ORDER[:2]
    assert set(data) == {"id", "results", "meta"}
    assert set(data["results"][0]) == {"index", "relevance_score"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"query": QUERY, "documents": TEXTS}, "required key [api_version] not found"),
        ({"query": QUERY, "documents": TEXTS, "api_version": 1}, "1 is not greater or equal to 2"),
    ],
)
def test_invoke_cohere_rerank_refusals(
    bedrock: LocalBedrock, body: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ClientError) as caught:
        _runtime(bedrock).invoke_model(modelId=COHERE, body=json.dumps(body))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert fragment in caught.value.response["Error"]["Message"]


def test_invoke_amazon_rerank_by_region(bedrock: LocalBedrock) -> None:
    body = json.dumps({"query": QUERY, "documents": TEXTS, "top_n": 1})
    with pytest.raises(ClientError, match="The provided model identifier is invalid"):
        _runtime(bedrock, "us-east-1").invoke_model(modelId=AMAZON, body=body)
    data = json.loads(
        _runtime(bedrock, "us-west-2").invoke_model(modelId=AMAZON, body=body)["body"].read()
    )
    assert data == {
        "results": [{"index": 2, "relevance_score": standin.relevance(QUERY, TEXTS[2])}]
    }


def test_rerank_models_do_not_converse_or_stream(bedrock: LocalBedrock) -> None:
    client = _runtime(bedrock)
    with pytest.raises(ClientError, match="doesn't support the model"):
        client.converse(modelId=COHERE, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    with pytest.raises(ClientError, match="unsupported for streaming"):
        client.invoke_model_with_response_stream(modelId=COHERE, body="{}")


# ---------------------------------------------------------------- BedrockReranker


def test_compress_documents_scores_orders_and_keeps_top_n(
    bedrock: LocalBedrock, reranker: BedrockReranker
) -> None:
    docs = [Document(page_content=t, metadata={"n": i}, id=f"d{i}") for i, t in enumerate(TEXTS)]
    best = reranker.compress_documents(docs, QUERY)
    assert [d.metadata["n"] for d in best] == EXPECTED_ORDER[:3]
    assert [d.id for d in best] == [f"d{i}" for i in EXPECTED_ORDER[:3]]
    assert best[0].metadata["relevance_score"] == standin.relevance(QUERY, TEXTS[2])
    assert "relevance_score" not in docs[2].metadata  # the inputs are not modified
    (request,) = bedrock.requests  # one request, the id turned into the ARN
    config = request.body["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    assert config["modelConfiguration"]["modelArn"] == foundation_model_arn(COHERE, "us-east-1")
    assert config["numberOfResults"] == 3
    assert reranker.compress_documents(docs, QUERY, top_n=1)[0].metadata["n"] == 2
    assert reranker.usage == {"requests": 2, "documents": 8, "retries": 0, "throttles": 0}


def test_top_n_above_the_document_count_is_clamped(
    bedrock: LocalBedrock, reranker: BedrockReranker
) -> None:
    # The service refuses numberOfResults above the number of sources.
    assert [r["index"] for r in reranker.rerank(TEXTS[:2], QUERY, top_n=10)] == [1, 0]
    assert len(bedrock.requests) == 1


def test_langchain_aws_refuses_a_bare_model_id_where_ours_works(bedrock: LocalBedrock) -> None:
    docs = [Document(page_content=t) for t in TEXTS]
    # Its own client (BedrockRerank drops base_url: its before-validator reads "endpoint_url",
    # which extra="forbid" refuses as an argument).
    theirs = BedrockRerank(model_arn=AMAZON, client=_agent(bedrock, "us-west-2"))
    with pytest.raises(ClientError, match="model ARN for reranking is invalid"):
        theirs.compress_documents(docs, QUERY)
    ours = BedrockReranker(
        model_id=AMAZON, region_name="us-west-2", endpoint_url=bedrock.endpoint_url
    )
    assert [d.page_content for d in ours.compress_documents(docs, QUERY)] == [
        TEXTS[i] for i in EXPECTED_ORDER[:3]
    ]
    assert [r.status for r in _reranks(bedrock)] == [400, 200]


def test_more_than_1000_documents_are_split_and_merged_by_score(
    bedrock: LocalBedrock, reranker: BedrockReranker
) -> None:
    # At most three of the query's four words each: the one text with all four ranks first.
    words = ["tidb", "vector", "search", "hnsw", "index", "paris", "sql", "france"]
    texts = [" ".join(words[(i * 7 + j) % 8] for j in range(1 + i % 5)) for i in range(2500)]
    texts[2100] = "TiDB supports vector search"  # the single best, in the last request
    ranked = reranker.rerank(texts, QUERY, top_n=20)
    expected = standin.rank(QUERY, texts, 20)  # what one request over all of them would give
    assert [(r["index"], r["relevance_score"]) for r in ranked] == expected
    assert ranked[0]["index"] == 2100
    sizes = sorted(len(r.body["sources"]) for r in _reranks(bedrock))
    assert sizes == [500, 1000, 1000]


def test_next_token_pages_are_followed(bedrock: LocalBedrock, reranker: BedrockReranker) -> None:
    bedrock.rerank_page_size = 1
    ranked = reranker.rerank(TEXTS, QUERY, top_n=3)
    assert [r["index"] for r in ranked] == EXPECTED_ORDER[:3]
    tokens = [r.body.get("nextToken") for r in _reranks(bedrock)]
    assert tokens[0] is None
    assert len(tokens) == 3
    assert all(tokens[1:])


async def test_async_rerank_runs_requests_concurrently(
    bedrock: LocalBedrock, reranker: BedrockReranker
) -> None:
    docs = [Document(page_content=t) for t in TEXTS]
    bedrock.latency = 0.5  # the three calls are in flight together (counted, not timed)
    results = await asyncio.gather(*(reranker.acompress_documents(docs, QUERY) for _ in range(3)))
    assert all(
        [d.page_content for d in r] == [TEXTS[i] for i in EXPECTED_ORDER[:3]] for r in results
    )
    assert len(_reranks(bedrock)) == 3
    assert bedrock.max_in_flight == 3


async def test_async_split_and_pages(bedrock: LocalBedrock, reranker: BedrockReranker) -> None:
    bedrock.rerank_page_size = 2
    texts = TEXTS * 3
    small = reranker.model_copy(update={"max_sources_per_request": 5})
    ranked = await small.arerank(texts, QUERY, top_n=4)
    assert [(r["index"], r["relevance_score"]) for r in ranked] == standin.rank(QUERY, texts, 4)
    # 12 texts in 3 requests of 5, 5 and 2 sources, asking 4, 4 and 2 results in pages of 2.
    assert len(_reranks(bedrock)) == 5


def test_invoke_path_for_cohere(bedrock: LocalBedrock) -> None:
    reranker = BedrockReranker(
        model_id=COHERE, api="invoke", endpoint_url=bedrock.endpoint_url, region_name="us-east-1"
    )
    ranked = reranker.rerank(TEXTS, QUERY, top_n=2)
    assert [r["index"] for r in ranked] == EXPECTED_ORDER[:2]
    (request,) = bedrock.requests
    assert (request.op, request.model_id) == ("InvokeModel", COHERE)
    assert request.body == {"query": QUERY, "documents": TEXTS, "top_n": 2, "api_version": 2}


def test_application_inference_profile_goes_through_invoke(bedrock: LocalBedrock) -> None:
    arn = bedrock.add_inference_profile(AMAZON, region="us-west-2")
    reranker = BedrockReranker(
        model_id=arn, provider="amazon", endpoint_url=bedrock.endpoint_url, region_name="us-west-2"
    )
    assert reranker.resolved_api == "invoke"
    assert reranker.rerank(TEXTS, QUERY, top_n=1)[0]["index"] == 2
    (request,) = bedrock.requests
    assert (request.op, request.model_id) == ("InvokeModel", arn)
    assert request.body == {"query": QUERY, "documents": TEXTS, "top_n": 1}


@pytest.mark.parametrize("api", ["rerank", "invoke"])
def test_model_not_offered_in_the_region_is_a_clear_error(bedrock: LocalBedrock, api: str) -> None:
    reranker = BedrockReranker(
        model_id=AMAZON,
        api=api,
        endpoint_url=bedrock.endpoint_url,
        region_name="us-east-1",  # type: ignore[arg-type]
    )
    secret = "Confidential launch plan for TiDB"  # noqa: S105 - document text, not a password
    with pytest.raises(BedrockModelUnavailableError) as caught:
        reranker.rerank([secret], "TiDB launch")
    err = caught.value
    assert isinstance(err, BedrockConfigError)
    assert (err.model_id, err.region) == (AMAZON, "us-east-1")
    assert "us-west-2" in err.offered_regions
    assert "amazon.rerank-v1:0 is not offered in us-east-1" in str(err)
    assert secret not in str(err)
    assert len(bedrock.requests) == 1  # not retried


def test_throttling_and_transient_errors_are_retried(bedrock: LocalBedrock) -> None:
    # Without the rate learner, which would pace the retries at its 1 request/s start rate.
    reranker = BedrockReranker(
        model_id=COHERE,
        endpoint_url=bedrock.endpoint_url,
        region_name="us-east-1",
        backoff_base=0.01,
        adaptive_rate_limit=False,
    )
    bedrock.fail_next(429, "ThrottlingException", "Too many requests, please wait.", times=2)
    bedrock.fail_next(503, "ServiceUnavailableException", "busy")
    assert reranker.rerank(TEXTS, QUERY, top_n=1)[0]["index"] == 2
    assert [r.status for r in bedrock.requests] == [429, 429, 503, 200]
    assert reranker.usage == {"requests": 4, "documents": 4, "retries": 3, "throttles": 2}


def test_retries_run_out(bedrock: LocalBedrock) -> None:
    reranker = BedrockReranker(
        model_id=COHERE,
        endpoint_url=bedrock.endpoint_url,
        region_name="us-east-1",
        max_retries=1,
        backoff_base=0.01,
    )
    bedrock.fail_next(503, "ServiceUnavailableException", "busy", times=5)
    with pytest.raises(ClientError, match="ServiceUnavailableException"):
        reranker.rerank(TEXTS, QUERY)
    assert len(bedrock.requests) == 2


def test_access_denied_is_not_retried(bedrock: LocalBedrock, reranker: BedrockReranker) -> None:
    bedrock.fail_next(
        403, "AccessDeniedException", "User is not authorized to perform: bedrock:Rerank"
    )
    with pytest.raises(BedrockConfigError, match="Bedrock refused access"):
        reranker.rerank(TEXTS, QUERY)
    assert len(bedrock.requests) == 1


def test_a_real_quota_is_met_by_the_rate_learner(bedrock: LocalBedrock) -> None:
    # 600 requests/min: a 10-request bucket refilled at 10/s; 20 questions must all succeed.
    bedrock.requests_per_minute = 600
    reranker = BedrockReranker(
        model_id=COHERE,
        endpoint_url=bedrock.endpoint_url,
        region_name="us-east-1",
        backoff_base=0.05,
    )
    for _ in range(20):
        assert reranker.rerank(TEXTS, QUERY, top_n=1)[0]["index"] == 2
    usage = reranker.usage
    assert usage["requests"] == 20 + usage["retries"]
    assert sum(1 for r in bedrock.requests if r.status == 200) == 20


def test_an_api_key_goes_through_invoke_model_with_bearer_auth(bedrock: LocalBedrock) -> None:
    reranker = BedrockReranker(
        model_id=COHERE,
        endpoint_url=bedrock.endpoint_url,
        region_name="us-east-1",
        api_key=SecretStr("bedrock-api-key"),
    )
    assert reranker.resolved_api == "invoke"  # Rerank is SigV4 only
    # botocore signs with the key as a bearer token, which it sends over HTTPS only: the
    # plain-HTTP LocalBedrock is refused before anything is sent.
    with pytest.raises(InvalidEndpointConfigurationError, match="Bearer authorization"):
        reranker.rerank(TEXTS, QUERY)
    assert bedrock.requests == []
