"""The one classification of Bedrock failures (throttle, exhausted quota, transient...)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EventStreamError,
    IncompleteReadError,
    ReadTimeoutError,
)

import langchain_tidb_bedrock._bedrock_faults as faults_module
from langchain_tidb_bedrock._bedrock_faults import (
    Fault,
    access_hint,
    classify,
    refuses_every_request,
    reported_token_count,
    retry_after,
    retryable,
)
from langchain_tidb_bedrock.errors import BedrockResponseError, InvalidEmbeddingError

TOO_MANY_TOKENS = (
    "400 Bad Request: Too many input tokens. "
    "Max input tokens: 8192, request input token count: 9001"
)
DAILY = "Too many tokens per day, please wait before trying again."


def _error(
    code: str, message: str, status: int = 400, headers: dict[str, str] | None = None
) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return ClientError(response, "InvokeModel")


def _in_stream(code: str, message: str) -> EventStreamError:
    # What botocore raises for an exception event inside a ConverseStream (HTTP status 200).
    response: Any = {"Error": {"Code": code, "Message": message}}
    return EventStreamError(response, "ConverseStream")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_error("ThrottlingException", "Too many requests, please wait", 429), "throttle"),
        (_in_stream("throttlingException", "Too many tokens, please wait."), "throttle"),
        (_error("ThrottlingException", DAILY, 429), "quota_exhausted"),
        (_in_stream("throttlingException", DAILY), "quota_exhausted"),
        (_error("ServiceQuotaExceededException", "over quota", 400), "quota_exhausted"),
        (_error("ServiceUnavailableException", "busy", 503), "transient"),
        (_error("InternalServerException", "boom", 500), "transient"),
        (_error("ModelNotReadyException", "warming up", 429), "transient"),
        (_error("ModelTimeoutException", "slow", 408), "transient"),
        (_in_stream("modelStreamErrorException", "stream failed"), "transient"),
        (_in_stream("internalServerException", "boom"), "transient"),
        # A load balancer's bare 5xx: botocore sets the code to the status.
        (_error("502", "Bad Gateway", 502), "transient"),
        (_error("500", "Internal Server Error", 500), "transient"),
        (ReadTimeoutError(endpoint_url="http://x"), "transient"),
        (IncompleteReadError(actual_bytes=3, expected_bytes=10), "transient"),
        (BedrockResponseError("body is not JSON", index=3), "transient"),
        (InvalidEmbeddingError(3, "m", "253 dimensions, expected 256"), "transient"),
        (_error("AccessDeniedException", "no", 403), "access"),
        (_error("ExpiredTokenException", "expired", 403), "access"),
        (_error("ValidationException", TOO_MANY_TOKENS), "input_too_long"),
        (_error("ValidationException", "Malformed input request"), "fatal"),
        (_error("ModelErrorException", "the model failed on this input", 424), "fatal"),
        (ValueError("anything else"), "fatal"),
    ],
)
def test_classify(error: BaseException, kind: Fault) -> None:
    assert classify(error) == kind
    assert retryable(error) is (kind in ("throttle", "transient"))


@pytest.mark.parametrize(
    ("error", "everyone"),
    [
        (_error("ThrottlingException", DAILY, 429), True),
        (_error("AccessDeniedException", "no", 403), True),
        (_error("ValidationException", "The provided model identifier is invalid."), True),
        (_error("ResourceNotFoundException", "end of its life", 404), True),
        # About one input, or one response: the other requests go on.
        (_error("ValidationException", TOO_MANY_TOKENS), False),
        (_error("ModelErrorException", "the model failed on this input", 424), False),
        (_error("502", "Bad Gateway", 502), False),
        (_error("ThrottlingException", "Too many requests", 429), False),
        (InvalidEmbeddingError(0, "m", "253 dimensions, expected 256"), False),
        (ValueError("unexpected"), False),
    ],
)
def test_refuses_every_request(error: BaseException, everyone: bool) -> None:
    assert refuses_every_request(error) is everyone


def test_retry_after() -> None:
    assert retry_after(_error("ThrottlingException", "x", 429, {"x-amz-retry-after": "150"})) == (
        pytest.approx(0.15)
    )
    assert retry_after(_error("ThrottlingException", "x", 429)) == 0
    assert retry_after(_error("ThrottlingException", "x", 429, {"x-amz-retry-after": "soon"})) == 0
    assert retry_after(ValueError("x")) == 0


def test_reported_token_count() -> None:
    assert reported_token_count(_error("ValidationException", TOO_MANY_TOKENS)) == (9001, 8192)
    assert reported_token_count(_error("ValidationException", "other")) is None


def test_access_hint_names_marketplace_for_meta_models_only() -> None:
    denied = _error("AccessDeniedException", "not authorized", 403)
    llama = access_hint(denied, "us.meta.llama3-2-3b-instruct-v1:0")
    assert "aws-marketplace:Subscribe" in llama
    assert "inference profile" in llama
    assert "Marketplace" not in access_hint(denied, "amazon.titan-embed-text-v2:0")
    expired = access_hint(_error("ExpiredTokenException", "expired", 403), "m")
    assert "session token has expired" in expired


def test_imports_nothing_of_the_package_but_errors() -> None:
    tree = ast.parse(Path(faults_module.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.startswith("langchain_tidb_bedrock")}
    assert ours == {"langchain_tidb_bedrock.errors"}


def test_every_bedrock_caller_uses_this_classification() -> None:
    # One classification: no other module keeps its own list of throttling codes.
    package = Path(faults_module.__file__).parent
    for relative in ("chains/_stream.py", "embeddings/titan.py", "embeddings/_rate.py"):
        source = (package / relative).read_text().lower()
        assert "throttlingexception" not in source, relative
        assert "_bedrock_faults" in source or relative.endswith("_rate.py"), relative
