"""BedrockReranker's pure logic and LocalBedrock's rerank stand-in, without HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError
from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import SecretStr

from langchain_tidb_bedrock.chains.rag import _Rerank, configure_retriever
from langchain_tidb_bedrock.document_compressors import BedrockReranker
from langchain_tidb_bedrock.document_compressors._requests import (
    foundation_model_arn,
    invoke_body,
    merge,
    parse_invoke_results,
    parse_model,
    rerank_request,
    split,
)
from langchain_tidb_bedrock.document_compressors.rerank import _fault
from langchain_tidb_bedrock.errors import BedrockModelUnavailableError
from langchain_tidb_bedrock.local import _rerank as standin
from langchain_tidb_bedrock.local._validation import (
    RERANK_ARN_MESSAGE,
    RERANK_CROSS_REGION_MESSAGE,
    RERANK_NO_ACCESS_MESSAGE,
    RERANK_TOO_MANY_RESULTS_MESSAGE,
    BedrockError,
    Model,
    resolve_model,
    validate_rerank,
    validate_rerank_invoke,
)

LOCAL = "http://127.0.0.1:9"  # never contacted: clients are built on first use
COHERE = "cohere.rerank-v3-5:0"
AMAZON = "amazon.rerank-v1:0"


# ---------------------------------------------------------------- model ids and ARNs


@pytest.mark.parametrize(
    ("region", "arn"),
    [
        ("us-west-2", "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"),
        ("cn-north-1", "arn:aws-cn:bedrock:cn-north-1::foundation-model/amazon.rerank-v1:0"),
        (
            "us-gov-west-1",
            "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/amazon.rerank-v1:0",
        ),
    ],
)
def test_foundation_model_arn_per_partition(region: str, arn: str) -> None:
    assert foundation_model_arn(AMAZON, region) == arn


def test_parse_model_bare_id_builds_the_arn() -> None:
    ref = parse_model(COHERE, "us-east-1")
    assert (ref.model, ref.provider, ref.invoke_id) == (COHERE, "cohere", COHERE)
    assert ref.rerank_arn == "arn:aws:bedrock:us-east-1::foundation-model/cohere.rerank-v3-5:0"
    assert ref.region is None


def test_parse_model_foundation_arn_is_kept_with_its_region() -> None:
    arn = "arn:aws:bedrock:eu-central-1::foundation-model/amazon.rerank-v1:0"
    ref = parse_model(arn, "us-west-2")
    assert (ref.model, ref.provider, ref.rerank_arn, ref.region) == (
        AMAZON,
        "amazon",
        arn,
        "eu-central-1",
    )


def test_parse_model_profiles_have_no_rerank_arn() -> None:
    geo = parse_model("us.cohere.rerank-v3-5:0", "us-east-1")
    assert (geo.model, geo.provider, geo.rerank_arn) == (COHERE, "cohere", None)
    app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    ref = parse_model(app, "us-east-1")
    assert (ref.model, ref.provider, ref.rerank_arn, ref.invoke_id) == ("", None, None, app)
    assert parse_model(app, "us-east-1", provider="cohere").provider == "cohere"


@pytest.mark.parametrize(
    ("model_id", "fragment"),
    [
        ("", "must not be empty"),
        ("arn:aws:s3:::bucket", "not a Bedrock model ARN"),
        ("arn:aws:bedrock:us-east-1:123456789012:custom-model/x", "custom-model"),
    ],
)
def test_parse_model_refuses(model_id: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_model(model_id, "us-east-1")


# ---------------------------------------------------------------- bodies, results, merging


def test_rerank_request_shape() -> None:
    request = rerank_request("q", ["a", "b"], "arn:x", 1, {"max_tokens_per_doc": 9})
    assert request["queries"] == [{"type": "TEXT", "textQuery": {"text": "q"}}]
    assert request["sources"][1] == {
        "type": "INLINE",
        "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": "b"}},
    }
    config = request["rerankingConfiguration"]
    assert config["type"] == "BEDROCK_RERANKING_MODEL"
    assert config["bedrockRerankingConfiguration"] == {
        "numberOfResults": 1,
        "modelConfiguration": {
            "modelArn": "arn:x",
            "additionalModelRequestFields": {"max_tokens_per_doc": 9},
        },
    }
    assert "additionalModelRequestFields" not in str(rerank_request("q", ["a"], "arn:x", 1))


def test_invoke_body_per_provider() -> None:
    assert invoke_body("cohere", "q", ["a"], 1) == {
        "query": "q",
        "documents": ["a"],
        "top_n": 1,
        "api_version": 2,
    }
    assert invoke_body("amazon", "q", ["a"], 1) == {"query": "q", "documents": ["a"], "top_n": 1}


def test_parse_invoke_results() -> None:
    data = {"results": [{"index": 1, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0}]}
    assert parse_invoke_results(data) == [(1, 0.5), (0, 0.0)]
    with pytest.raises(ValueError, match="no 'results'"):
        parse_invoke_results({"id": "x"})
    with pytest.raises(ValueError, match="relevance_score"):
        parse_invoke_results({"results": [{"index": 0}]})


def test_split_covers_every_index_in_order() -> None:
    assert split(2500) == [range(0, 1000), range(1000, 2000), range(2000, 2500)]
    assert split(3, 2) == [range(0, 2), range(2, 3)]
    assert split(0) == []


def test_merge_orders_by_score_then_position_and_cuts() -> None:
    batches = [
        ([0, 1, 2], [(2, 0.9), (0, 0.5)]),
        ([3, 4], [(1, 0.9), (0, 0.7)]),
    ]
    assert merge(batches, 3) == [(2, 0.9), (4, 0.9), (3, 0.7)]
    assert merge(batches, None) == [(2, 0.9), (4, 0.9), (3, 0.7), (0, 0.5)]
    with pytest.raises(ValueError, match="source 5 of a request of 2"):
        merge([([0, 1], [(5, 0.1)])], None)


# ---------------------------------------------------------------- construction


def test_auto_api_picks_rerank_for_a_foundation_model() -> None:
    reranker = BedrockReranker(model_id=COHERE, endpoint_url=LOCAL, region_name="us-east-1")
    assert reranker.resolved_api == "rerank"
    assert reranker.model_arn == foundation_model_arn(COHERE, "us-east-1")
    assert reranker.top_n == 3


def test_model_and_base_url_aliases() -> None:
    reranker = BedrockReranker(model=AMAZON, base_url=LOCAL, region_name="us-west-2")  # type: ignore[call-arg]
    assert (reranker.model_id, reranker.endpoint_url) == (AMAZON, LOCAL)


def test_auto_api_picks_invoke_for_an_api_key_or_a_profile() -> None:
    keyed = BedrockReranker(
        model_id=COHERE, endpoint_url=LOCAL, region_name="us-east-1", api_key=SecretStr("k")
    )
    assert keyed.resolved_api == "invoke"
    app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    profiled = BedrockReranker(
        model_id=app, provider="cohere", endpoint_url=LOCAL, region_name="us-east-1"
    )
    assert profiled.resolved_api == "invoke"
    assert profiled.model_arn is None


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {"model_id": "us.cohere.rerank-v3-5:0", "api": "rerank"},
            "takes foundation-model ARNs only",
        ),
        (
            {"model_id": "arn:aws:bedrock:us-west-2::foundation-model/cohere.rerank-v3-5:0"},
            "does not support cross-Region calls",
        ),
        (
            {"model_id": "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a"},
            "provider='amazon' or provider='cohere'",
        ),
        ({"model_id": COHERE, "top_n": 0}, "greater than or equal to 1"),
        ({"model_id": COHERE, "max_sources_per_request": 1001}, "less than or equal to 1000"),
    ],
)
def test_construction_errors(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        BedrockReranker(endpoint_url=LOCAL, region_name="us-east-1", **kwargs)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [("  ", "non-empty"), ("x" * 32_001, "32,000")],
)
def test_query_checks_before_any_request(query: str, fragment: str) -> None:
    reranker = BedrockReranker(model_id=COHERE, endpoint_url=LOCAL, region_name="us-east-1")
    with pytest.raises(ValueError, match=fragment):
        reranker.rerank(["a document"], query)
    assert reranker.usage["requests"] == 0


def test_nothing_to_rerank_sends_nothing() -> None:
    reranker = BedrockReranker(model_id=COHERE, endpoint_url=LOCAL, region_name="us-east-1")
    assert reranker.rerank([], "q") == []
    assert reranker.rerank(["", "   "], "q") == []  # blank texts are not sent
    assert reranker.usage["requests"] == 0


# ---------------------------------------------------------------- error classification


def _client_error(code: str, message: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
        },
        "Rerank",
    )


@pytest.mark.parametrize(
    ("code", "message", "status", "kind"),
    [
        ("ValidationException", RERANK_NO_ACCESS_MESSAGE, 400, "unavailable"),
        ("ValidationException", "The provided model identifier is invalid.", 400, "unavailable"),
        (
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
            429,
            "throttle",
        ),
        ("ThrottlingException", "Too many tokens per day, please wait.", 429, "quota_exhausted"),
        ("ServiceUnavailableException", "busy", 503, "transient"),
        ("AccessDeniedException", "denied", 403, "access"),
        ("ValidationException", RERANK_ARN_MESSAGE, 400, "fatal"),
    ],
)
def test_fault_kinds(code: str, message: str, status: int, kind: str) -> None:
    assert _fault(_client_error(code, message, status)) == kind


def test_unavailable_error_names_the_regions() -> None:
    err = BedrockModelUnavailableError(
        AMAZON, "us-east-1", ("us-west-2", "eu-central-1"), "ValidationException: no"
    )
    assert "not offered in us-east-1" in str(err)
    assert "us-west-2, eu-central-1" in str(err)
    other = BedrockModelUnavailableError(COHERE, "us-east-1", ("us-east-1",), "x")
    assert "bedrock:Rerank" in str(other)


# ---------------------------------------------------------------- the stand-in's scorer


def test_standin_score_counts_query_words_and_prefers_short_documents() -> None:
    query = "Does TiDB support vector search?"
    both = standin.relevance(query, "TiDB supports vector search.")
    longer = standin.relevance(query, "TiDB supports vector search. " + "Filler words here. " * 10)
    one = standin.relevance(query, "TiDB is a database.")
    none = standin.relevance(query, "Paris is the capital of France.")
    assert 0 < one < longer < both < 1
    assert none == 0.0
    # A document's score does not depend on its neighbours (batches merge by score).
    assert standin.rank(query, ["x", "TiDB is a database."])[0] == (1, one)
    assert standin.rank(query, ["a", "b", "c"], 2) == [(0, 0.0), (1, 0.0)]  # ties keep order


# ---------------------------------------------------------------- the stand-in's validation


def _rerank_body(
    sources: int = 2, arn: str = foundation_model_arn(COHERE, "us-east-1"), n: int = 1
) -> dict[str, Any]:
    return rerank_request("q", [f"text {i}" for i in range(sources)], arn, n)


@pytest.mark.parametrize(
    ("body", "region", "message"),
    [
        (_rerank_body(arn=COHERE), "us-east-1", RERANK_ARN_MESSAGE),
        (
            _rerank_body(
                arn="arn:aws:bedrock:us-east-1::inference-profile/us.cohere.rerank-v3-5:0"
            ),
            "us-east-1",
            RERANK_ARN_MESSAGE,
        ),
        (_rerank_body(), "us-west-2", RERANK_CROSS_REGION_MESSAGE),
        (
            _rerank_body(arn=foundation_model_arn(AMAZON, "us-east-1")),
            "us-east-1",
            RERANK_NO_ACCESS_MESSAGE,
        ),
        (_rerank_body(sources=2, n=3), "us-east-1", RERANK_TOO_MANY_RESULTS_MESSAGE),
        (
            _rerank_body(sources=1001),
            "us-east-1",
            "'sources' failed to satisfy constraint: "
            "Member must have length less than or equal to 1000",
        ),
    ],
)
def test_validate_rerank_refusals(body: dict[str, Any], region: str, message: str) -> None:
    with pytest.raises(BedrockError) as caught:
        validate_rerank(body, region)
    assert caught.value.code == "ValidationException"
    assert message in caught.value.message
    assert "text 0" not in caught.value.message  # no document text in errors


def test_validate_rerank_accepts_json_documents() -> None:
    body = _rerank_body()
    body["sources"][0]["inlineDocumentSource"] = {"type": "JSON", "jsonDocument": {"a": 1}}
    request = validate_rerank(body, "us-east-1")
    assert request.texts == ['{"a": 1}', "text 1"]
    assert request.model == Model("rerank", COHERE)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"query": "q", "documents": ["a"]}, "#: required key [api_version] not found"),
        ({"query": "q", "documents": ["a"], "api_version": 1}, "1 is not greater or equal to 2"),
        (
            {"prompt": "q"},
            "#: required key [query] not found#: required key [documents] not found#: required "
            "key [api_version] not found#: extraneous key [prompt] is not permitted",
        ),
        (
            {"query": "q", "documents": ["a"] * 1001, "api_version": 2},
            "expected maximum item count: 1000, found: 1001",
        ),
    ],
)
def test_validate_cohere_invoke(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BedrockError, match="Malformed input request") as caught:
        validate_rerank_invoke(body, Model("rerank", COHERE))
    assert fragment in caught.value.message


def test_validate_amazon_invoke() -> None:
    model = Model("rerank", AMAZON)
    assert validate_rerank_invoke({"query": "q", "documents": ["a", "b"]}, model) == (
        "q",
        ["a", "b"],
        2,
    )
    with pytest.raises(BedrockError, match=r"extraneous key \[api_version\]"):
        validate_rerank_invoke({"query": "q", "documents": ["a"], "api_version": 2}, model)


def test_resolve_model_knows_rerank_ids_and_application_profiles() -> None:
    assert resolve_model(COHERE) == Model("rerank", COHERE)
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/p1"
    assert resolve_model(arn, {"p1": AMAZON}) == Model("rerank", AMAZON)
    with pytest.raises(BedrockError, match="model identifier is invalid"):
        resolve_model(arn)


def test_format_sources_shows_the_rerank_score() -> None:
    from langchain_tidb_bedrock.chains.prompts import format_sources

    docs = [
        Document(page_content="a", metadata={"source": "a.md", "chunk": 0, "relevance_score": 0.8}),
        Document(page_content="b", metadata={"source": "b.md", "relevance_score": True}),
    ]
    assert format_sources(docs) == ["[1] a.md (chunk 0) relevance 0.80", "[2] b.md"]


# ---------------------------------------------------------------- the chain's rerank stage


class _Keep(BaseDocumentCompressor):
    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        return documents


def _mmr_retriever(**search_kwargs: Any) -> Any:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=8))
    return store.as_retriever(search_type="mmr", search_kwargs=search_kwargs)


def test_rerank_stage_fetches_more_without_lowering_mmr_fetch_k() -> None:
    stage = _Rerank(_Keep(), 4, 2)
    retriever = _mmr_retriever(k=2, fetch_k=9)
    config = stage.fetch_config({}, stage.keep(retriever, {}), retriever)
    assert config["configurable"] == {"k": 4, "fetch_k": 9}
    active = configure_retriever(retriever, config)
    assert active.search_kwargs == {"k": 4, "fetch_k": 9}  # type: ignore[attr-defined]
    wide = stage.fetch_config({"configurable": {"rerank_fetch_k": 30}}, 2, retriever)
    assert wide["configurable"]["k"] == wide["configurable"]["fetch_k"] == 30
    # Never fewer than the k the answer gets.
    assert stage.fetch_config({"configurable": {"k": 7}}, 7, retriever)["configurable"]["k"] == 7


def test_rerank_stage_per_call_choice() -> None:
    keep = _Keep()
    stage = _Rerank(keep, 20, 4)
    assert stage.active(None) is keep
    assert stage.active({"configurable": {"rerank": False}}) is None
    assert stage.active({"configurable": {"rerank": None}}) is None
    by_id = stage.active({"configurable": {"rerank": COHERE}})
    assert isinstance(by_id, BedrockReranker)
    assert by_id.model_id == COHERE
    assert stage.active({"configurable": {"rerank": COHERE}}) is by_id  # built once
    with pytest.raises(ValueError, match="bool, None or a model id"):
        stage.active({"configurable": {"rerank": 3}})
    assert stage.keep(_mmr_retriever(k=3), {"configurable": {"k": 5}}) == 5
    assert stage.keep(_mmr_retriever(k=3), None) == 3


def test_a_model_switch_keeps_the_reranker_settings() -> None:
    base = BedrockReranker(
        model_id=COHERE, endpoint_url=LOCAL, region_name="us-west-2", max_retries=1
    )
    switched = _Rerank(base, 20, 4).active({"configurable": {"rerank": AMAZON}})
    assert isinstance(switched, BedrockReranker)
    assert (switched.model_id, switched.endpoint_url, switched.region_name) == (
        AMAZON,
        LOCAL,
        "us-west-2",
    )
    assert switched.max_retries == 1
    assert switched.model_arn == foundation_model_arn(AMAZON, "us-west-2")
