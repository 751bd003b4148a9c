"""LocalBedrock's quotas and fidelity refusals, seen through real boto3 clients over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from langchain_tidb_bedrock.local.bedrock import LocalBedrock

TITAN = "amazon.titan-embed-text-v2:0"
LLAMA = "us.meta.llama3-2-3b-instruct-v1:0"
LLAMA_31 = "us.meta.llama3-1-8b-instruct-v1:0"
REQUESTS = "Too many requests, please wait before trying again."
TOKENS = "Too many tokens, please wait before trying again."
PER_DAY = "Too many tokens per day, please wait before trying again."


@pytest.fixture
def server() -> Iterator[LocalBedrock]:
    with LocalBedrock() as bedrock:
        yield bedrock


@pytest.fixture
def client(server: LocalBedrock) -> Any:
    # One attempt: each call sees exactly what the server answered.
    return _client(server, Config(retries={"total_max_attempts": 1}))


def _client(server: LocalBedrock, config: Config) -> Any:
    return boto3.client(
        "bedrock-runtime",
        config=config,
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
    )


def _embed(client: Any, text: str = "quota test text") -> dict[str, Any]:
    response = client.invoke_model(modelId=TITAN, body=json.dumps({"inputText": text}))
    data: dict[str, Any] = json.loads(response["body"].read())
    return data


def _converse(client: Any, text: str = "hello there", **kwargs: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": [{"text": text}]}]
    result: dict[str, Any] = client.converse(modelId=LLAMA, messages=messages, **kwargs)
    return result


def _refusal(call: Any) -> tuple[int, str, str, dict[str, str]]:
    with pytest.raises(ClientError) as info:
        call()
    response = info.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPHeaders"],
    )


# ---------------------------------------------------------------- quotas


def test_requests_per_minute_throttle_has_the_real_shape(server: LocalBedrock, client: Any) -> None:
    server.requests_per_minute = 1  # one request now, the next a minute later
    _embed(client)
    status, code, message, headers = _refusal(lambda: _embed(client))
    assert (status, code, message) == (429, "ThrottlingException", REQUESTS)
    assert "x-amz-retry-after" not in headers  # the service model defines none
    assert [r.status for r in server.requests] == [200, 429]


def test_quotas_are_kept_per_model_id(server: LocalBedrock, client: Any) -> None:
    server.requests_per_minute = 1
    _embed(client)
    _converse(client)  # Llama has its own bucket
    with pytest.raises(client.exceptions.ThrottlingException):
        _converse(client)
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    client.converse(modelId=LLAMA_31, messages=messages)  # and so does another profile


def test_tokens_per_minute_throttle(server: LocalBedrock, client: Any) -> None:
    server.tokens_per_minute = 6  # a bucket of 1 refilled every 10 s
    # A 3-token text passes a full bucket and leaves it 2 tokens in debt (~30 s to repay).
    assert _embed(client, "one two three")["inputTextTokenCount"] == 3
    status, code, message, _ = _refusal(lambda: _embed(client, "four"))
    assert (status, code, message) == (429, "ThrottlingException", TOKENS)


def test_converse_reserves_max_tokens_and_refunds_the_unused_part(
    server: LocalBedrock, client: Any
) -> None:
    server.tokens_per_minute = 6_000  # 100 tokens a second, 100 deep
    # The stop sequence empties the reply: each call reserves 2 + 90 tokens and uses 3, so the
    # second call is admitted only because the first one's unused 89 came back.
    config = {"maxTokens": 90, "stopSequences": ["(LocalBedrock"]}
    for _ in range(2):
        assert _converse(client, inferenceConfig=config)["usage"]["outputTokens"] == 1
    assert [r.status for r in server.requests] == [200, 200]


def test_daily_token_quota(server: LocalBedrock, client: Any) -> None:
    server.tokens_per_day = 8
    _embed(client, "one two three four five")  # 5 of 8 tokens
    status, code, message, _ = _refusal(lambda: _embed(client, "six seven eight nine"))
    assert (status, code, message) == (429, "ThrottlingException", PER_DAY)
    _embed(client, "six seven eight")  # what still fits is served
    server.tokens_per_day = 1_000  # a changed quota starts the day afresh
    _embed(client, "ten")


def test_quotas_are_settable_while_serving_and_reset_restores_the_constructors() -> None:
    with LocalBedrock(requests_per_minute=1, tokens_per_day=100) as server:
        client = _client(server, Config(retries={"total_max_attempts": 1}))
        assert (server.requests_per_minute, server.tokens_per_day) == (1, 100)
        _embed(client)
        with pytest.raises(client.exceptions.ThrottlingException):
            _embed(client)
        server.requests_per_minute = None
        for _ in range(5):
            _embed(client)
        server.reset()
        assert (server.requests_per_minute, server.tokens_per_day) == (1, 100)
        _embed(client)  # the buckets start full again
        with pytest.raises(client.exceptions.ThrottlingException):
            _embed(client)


def test_botocore_retries_a_quota_throttle(server: LocalBedrock) -> None:
    server.requests_per_minute = 600  # 10 a second: a retry after ~1 s backoff finds a refill
    client = _client(server, Config(retries={"mode": "standard", "total_max_attempts": 5}))
    for _ in range(12):
        _embed(client)
    statuses = [r.status for r in server.requests]
    assert statuses.count(200) == 12
    assert 429 in statuses


# ---------------------------------------------------------------- fidelity refusals


def test_llama_converse_max_tokens_limit(client: Any) -> None:
    _converse(client, inferenceConfig={"maxTokens": 2048})
    status, code, message, _ = _refusal(
        lambda: _converse(client, inferenceConfig={"maxTokens": 2049})
    )
    assert (status, code) == (400, "ValidationException")
    assert message == (
        "The maximum tokens you requested exceeds the model limit of 2048. "
        "Try again with a maximum tokens value that is lower than 2048."
    )


def test_tool_config_refused_for_llama_32_3b_only(client: Any) -> None:
    tools = {
        "tools": [
            {
                "toolSpec": {
                    "name": "lookup",
                    "description": "Look a word up.",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            }
        ]
    }
    _, code, message, _ = _refusal(lambda: _converse(client, toolConfig=tools))
    assert (code, message) == ("ValidationException", "This model doesn't support tool use.")
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    client.converse(modelId=LLAMA_31, messages=messages, toolConfig=tools)


def test_titan_on_the_streaming_operation(client: Any) -> None:
    _, code, message, _ = _refusal(
        lambda: client.invoke_model_with_response_stream(
            modelId=TITAN, body=json.dumps({"inputText": "hi"})
        )
    )
    assert (code, message) == ("ValidationException", "The model is unsupported for streaming.")


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        (
            {"messages": [{"role": "user", "content": [{"text": ""}]}]},
            "ContentBlock object at messages.0.content.0",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"text": "hi"}]},
                    {"role": "assistant", "content": [{"text": "ok"}, {"text": " \n"}]},
                    {"role": "user", "content": [{"text": "and?"}]},
                ]
            },
            "ContentBlock object at messages.1.content.1",
        ),
        (
            {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "system": [{"text": "  "}],
            },
            "SystemContentBlock object at system.0",
        ),
    ],
)
def test_blank_text_blocks_are_refused(client: Any, kwargs: dict[str, Any], where: str) -> None:
    _, code, message, _ = _refusal(lambda: client.converse(modelId=LLAMA, **kwargs))
    assert code == "ValidationException"
    assert message == (
        f"The text field in the {where} is blank. Add text to the text field, and try again."
    )


def test_empty_content_list_is_refused(client: Any) -> None:
    messages = [{"role": "user", "content": []}]
    _, _, message, _ = _refusal(lambda: client.converse(modelId=LLAMA, messages=messages))
    assert message.startswith("The content field in the Message object at messages.0 is empty.")


def test_content_type_and_accept_are_checked(client: Any) -> None:
    body = json.dumps({"inputText": "hi"})
    _embed(client)  # neither header given: JSON assumed
    client.invoke_model(
        modelId=TITAN,
        body=body,
        contentType="application/json; charset=utf-8",
        accept="*/*",
    )
    _, code, message, _ = _refusal(
        lambda: client.invoke_model(modelId=TITAN, body=body, contentType="text/plain")
    )
    assert (code, message) == (
        "ValidationException",
        "The provided Content Type is invalid or not supported for this model",
    )
    _, _, message, _ = _refusal(
        lambda: client.invoke_model(modelId=TITAN, body=body, accept="image/png")
    )
    assert message == "The provided Accept Type is invalid or not supported for this model"
    llama_body = json.dumps({"prompt": "hi"})
    _, _, message, _ = _refusal(  # the streaming operation's accept is X-Amzn-Bedrock-Accept
        lambda: client.invoke_model_with_response_stream(
            modelId=LLAMA, body=llama_body, accept="text/html"
        )
    )
    assert message == "The provided Accept Type is invalid or not supported for this model"


def test_missing_body_is_malformed(server: LocalBedrock, client: Any) -> None:
    _, code, message, _ = _refusal(lambda: client.invoke_model(modelId=TITAN))
    assert (code, message) == (
        "ValidationException",
        "Malformed input request, please reformat your input and try again.",
    )
    assert server.requests[-1].body is None
