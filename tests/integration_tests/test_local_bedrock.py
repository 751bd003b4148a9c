"""LocalBedrock's wire contract, exercised with real boto3 clients over HTTP."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from typing import Any
from urllib.parse import quote

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from langchain_tidb_bedrock.local.bedrock import LocalBedrock

TITAN = "amazon.titan-embed-text-v2:0"
LLAMA = "us.meta.llama3-2-3b-instruct-v1:0"
CONTEXT = (
    "Use the numbered passages to answer.\n"
    "[1] Bedrock hosts foundation models from several providers.\n"
    "[2] TiDB is a distributed SQL database. It stores vectors and supports vector search\n"
    "with HNSW indexes.\n"
    "[3] Paris is the capital of France.\n"
    "\n"
    "Question: Does TiDB support vector search?"
)


@pytest.fixture
def client(bedrock: LocalBedrock) -> Any:
    # No botocore retries: each test sees exactly what the server sent.
    config = Config(retries={"total_max_attempts": 1}, max_pool_connections=64)
    return boto3.client(
        "bedrock-runtime", config=config, endpoint_url=bedrock.endpoint_url, region_name="us-east-1"
    )


def _titan(client: Any, **body: Any) -> tuple[dict[str, Any], dict[str, str]]:
    response = client.invoke_model(modelId=TITAN, body=json.dumps(body))
    return json.loads(response["body"].read()), response["ResponseMetadata"]["HTTPHeaders"]


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def _cos(a: list[float], b: list[float]) -> float:
    va, vb = np.asarray(a), np.asarray(b)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


# ---------------------------------------------------------------- Titan


def test_titan_response_shape_and_headers(bedrock: LocalBedrock, client: Any) -> None:
    data, headers = _titan(client, inputText="hello vector world", dimensions=512)
    assert set(data) == {"embedding", "inputTextTokenCount", "embeddingsByType"}
    assert len(data["embedding"]) == 512
    assert data["embeddingsByType"] == {"float": data["embedding"]}
    assert data["inputTextTokenCount"] == 3
    assert headers["x-amzn-bedrock-input-token-count"] == "3"
    assert "x-amzn-bedrock-output-token-count" in headers
    assert abs(np.linalg.norm(data["embedding"]) - 1.0) < 1e-5  # normalize defaults to true
    (record,) = bedrock.requests
    assert (record.op, record.model_id, record.status) == ("InvokeModel", TITAN, 200)
    assert record.body == {"inputText": "hello vector world", "dimensions": 512}


def test_titan_normalize_false_and_binary(client: Any) -> None:
    data, _ = _titan(
        client, inputText="hello world", normalize=False, embeddingTypes=["float", "binary"]
    )
    assert len(data["embedding"]) == 1024
    assert abs(np.linalg.norm(data["embedding"]) - 1.0) > 1e-3
    assert data["embeddingsByType"]["binary"] == [1 if x > 0 else 0 for x in data["embedding"]]


def test_titan_embeddings_are_deterministic_and_semantic(client: Any) -> None:
    a, _ = _titan(client, inputText="TiDB supports vector search")
    again, _ = _titan(client, inputText="TiDB supports vector search")
    near, _ = _titan(client, inputText="vector search in TiDB")
    far, _ = _titan(client, inputText="The weather in Paris is sunny today")
    assert a["embedding"] == again["embedding"]
    assert _cos(a["embedding"], near["embedding"]) > 0.5
    assert _cos(a["embedding"], near["embedding"]) > _cos(a["embedding"], far["embedding"]) + 0.3


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"inputText": "x", "dimensions": 128}, "#/dimensions: 128 is not a valid enum value"),
        ({"inputText": ""}, "expected minLength: 1"),
        ({"inputText": "x" * 50_001}, "expected maxLength: 50000, actual: 50001"),
        ({"inputText": "x", "stop": 1}, "extraneous key [stop] is not permitted"),
        ({"text": "x"}, "extraneous key [text]"),
        ({"inputText": "x", "normalize": "yes"}, "#/normalize: expected type: Boolean"),
        ({"inputText": "x", "embeddingTypes": ["int8"]}, "not a valid enum value"),
    ],
)
def test_titan_validation_errors(client: Any, body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(client.exceptions.ValidationException) as info:
        client.invoke_model(modelId=TITAN, body=json.dumps(body))
    assert fragment in str(info.value)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_model_and_bare_llama32_id(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="identifier is invalid"):
        client.invoke_model(modelId="amazon.titan-embed-text-v9:0", body="{}")
    with pytest.raises(client.exceptions.ValidationException) as info:
        client.converse(modelId="meta.llama3-2-3b-instruct-v1:0", messages=_user("hi"))
    assert str(info.value).endswith(
        "Invocation of model ID meta.llama3-2-3b-instruct-v1:0 with on-demand throughput isn't "
        "supported. Retry your request with the ID or ARN of an inference profile that contains "
        "this model."
    )
    with pytest.raises(client.exceptions.ValidationException, match="doesn't support the model"):
        client.converse(modelId=TITAN, messages=_user("hi"))


def test_model_id_is_percent_decoded_after_splitting(bedrock: LocalBedrock, client: Any) -> None:
    arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{LLAMA}"
    client.converse(modelId=arn, messages=_user("hi"))
    record = bedrock.requests[-1]
    assert record.model_id == arn
    assert quote(arn, safe="") in record.path


# ---------------------------------------------------------------- Llama: InvokeModel


def test_llama_invoke_prompt_api(bedrock: LocalBedrock, client: Any) -> None:
    body = {"prompt": CONTEXT, "temperature": 0.0, "top_p": 0.9, "max_gen_len": 200}
    response = client.invoke_model(modelId=LLAMA, body=json.dumps(body))
    data = json.loads(response["body"].read())
    assert set(data) == {
        "generation",
        "prompt_token_count",
        "generation_token_count",
        "stop_reason",
    }
    assert data["stop_reason"] == "stop"
    assert data["generation"].startswith("(LocalBedrock stand-in) ")
    assert "[2]" in data["generation"]
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-output-token-count"] == str(data["generation_token_count"])
    assert bedrock.requests[-1].body == body


def test_llama_invoke_rejects_extraneous_keys(client: Any) -> None:
    body = {"prompt": "hi", "stop_sequences": ["\n"]}
    with pytest.raises(client.exceptions.ValidationException) as info:
        client.invoke_model(modelId=LLAMA, body=json.dumps(body))
    assert "extraneous key [stop_sequences] is not permitted" in str(info.value)


def test_llama_invoke_max_gen_len_cuts(client: Any) -> None:
    body = {"prompt": CONTEXT, "max_gen_len": 3}
    data = json.loads(client.invoke_model(modelId=LLAMA, body=json.dumps(body))["body"].read())
    assert data["stop_reason"] == "length"
    assert len(data["generation"].split()) == 3


def test_invoke_with_response_stream_chunks(client: Any) -> None:
    response = client.invoke_model_with_response_stream(
        modelId=LLAMA, body=json.dumps({"prompt": CONTEXT})
    )
    assert response["contentType"] == "application/json"
    chunks = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    assert len(chunks) > 3
    assert chunks[0]["prompt_token_count"] > 0
    assert all(c["prompt_token_count"] is None for c in chunks[1:])
    assert all(c["stop_reason"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["stop_reason"] == "stop"
    metrics = last["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == last["generation_token_count"]
    text = "".join(c["generation"] for c in chunks)
    plain = client.invoke_model(modelId=LLAMA, body=json.dumps({"prompt": CONTEXT}))
    assert text == json.loads(plain["body"].read())["generation"]


def test_mid_stream_exception_raises_event_stream_error(bedrock: LocalBedrock, client: Any) -> None:
    bedrock.stream_error_after(2)
    response = client.invoke_model_with_response_stream(
        modelId=LLAMA, body=json.dumps({"prompt": CONTEXT})
    )
    received: list[Any] = []
    with pytest.raises(EventStreamError) as info:
        received.extend(response["body"])
    assert len(received) == 2
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
    # One-shot: the next stream is clean.
    again = client.converse_stream(modelId=LLAMA, messages=_user(CONTEXT))
    assert "messageStop" in {next(iter(e)) for e in again["stream"]}


# ---------------------------------------------------------------- Converse


def test_converse_response_shape(bedrock: LocalBedrock, client: Any) -> None:
    response = client.converse(
        modelId=LLAMA,
        messages=_user(CONTEXT),
        system=[{"text": "Answer only from the passages."}],
        inferenceConfig={"maxTokens": 100, "temperature": 0.0},
    )
    assert response["stopReason"] == "end_turn"
    text = response["output"]["message"]["content"][0]["text"]
    assert text == (
        "(LocalBedrock stand-in) It stores vectors and supports vector search "
        "with HNSW indexes. [2]"
    )
    usage = response["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert "latencyMs" in response["metrics"]
    assert bedrock.requests[-1].body["system"] == [{"text": "Answer only from the passages."}]


def test_converse_stop_sequences_and_max_tokens(client: Any) -> None:
    stopped = client.converse(
        modelId=LLAMA, messages=_user(CONTEXT), inferenceConfig={"stopSequences": ["HNSW", "zzz"]}
    )
    assert stopped["stopReason"] == "stop_sequence"
    text = stopped["output"]["message"]["content"][0]["text"]
    assert text == "(LocalBedrock stand-in) It stores vectors and supports vector search with "
    short = client.converse(
        modelId=LLAMA, messages=_user(CONTEXT), inferenceConfig={"maxTokens": 4}
    )
    assert short["stopReason"] == "max_tokens"
    assert len(short["output"]["message"]["content"][0]["text"].split()) == 4


def test_converse_answers_i_dont_know_without_relevant_passage(client: Any) -> None:
    prompt = "[1] Paris is the capital of France.\n\nQuestion: How fast is TiKV compaction?"
    response = client.converse(modelId=LLAMA, messages=_user(prompt))
    text = response["output"]["message"]["content"][0]["text"]
    assert text == "(LocalBedrock stand-in) I don't know based on the provided context."


def test_converse_rejects_non_alternating_roles(client: Any) -> None:
    messages = _user("a") + _user("b")
    with pytest.raises(client.exceptions.ValidationException, match="alternate"):
        client.converse(modelId=LLAMA, messages=messages)


def test_converse_stream_event_order(client: Any) -> None:
    response = client.converse_stream(
        modelId=LLAMA, messages=_user(CONTEXT), inferenceConfig={"maxTokens": 50}
    )
    events = list(response["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart"
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert len(deltas) > 3
    assert "".join(deltas).startswith("(LocalBedrock stand-in) It stores vectors")
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == len(deltas)


# ---------------------------------------------------------------- knobs


def test_throttling_shape_and_retry_after(bedrock: LocalBedrock, client: Any) -> None:
    bedrock.throttle_every = 2
    _titan(client, inputText="one")
    with pytest.raises(client.exceptions.ThrottlingException) as info:
        _titan(client, inputText="two")
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["Error"]["Message"] == "Too many requests, please wait before trying again."
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amz-retry-after"] == "10"
    assert [r.status for r in bedrock.requests] == [200, 429]


def test_throttle_rate_is_a_deterministic_fraction(bedrock: LocalBedrock, client: Any) -> None:
    bedrock.throttle_rate = 0.3
    for i in range(20):
        with contextlib.suppress(client.exceptions.ThrottlingException):
            _titan(client, inputText=f"text {i}")
    assert [r.status for r in bedrock.requests].count(429) == 6


def test_fail_next_queue(bedrock: LocalBedrock, client: Any) -> None:
    bedrock.fail_next(503, "ServiceUnavailableException", "busy", {"x-extra": "1"}, times=2)
    for _ in range(2):
        with pytest.raises(client.exceptions.ServiceUnavailableException) as info:
            _titan(client, inputText="x")
        assert info.value.response["ResponseMetadata"]["HTTPHeaders"]["x-extra"] == "1"
    _titan(client, inputText="x")
    bedrock.fail_next(500, "InternalServerException", "boom")
    with pytest.raises(ClientError) as err:
        client.converse(modelId=LLAMA, messages=_user("hi"))
    assert err.value.response["Error"] == {"Code": "InternalServerException", "Message": "boom"}


def test_concurrency_is_recorded_and_reset_clears(bedrock: LocalBedrock, client: Any) -> None:
    bedrock.latency = 0.05
    threads = [
        threading.Thread(target=_titan, args=(client,), kwargs={"inputText": f"t{i}"})
        for i in range(64)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bedrock.requests) == 64
    assert all(r.status == 200 for r in bedrock.requests)
    assert bedrock.max_in_flight > 8
    # A handler counts its request done only after the response is on the wire, so the client
    # can return first: wait for the server's own bookkeeping before resetting.
    deadline = time.monotonic() + 5
    while bedrock.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bedrock.in_flight == 0
    bedrock.throttle_every = 1
    bedrock.fail_next(503, "ServiceUnavailableException", "busy")
    bedrock.reset()
    assert bedrock.requests == []
    assert bedrock.max_in_flight == 0
    assert bedrock.latency == 0.0
    _titan(client, inputText="after reset")  # no throttling, no queued failure


def test_unknown_path_is_404(client: Any, bedrock: LocalBedrock) -> None:
    import urllib.error
    import urllib.request

    url = bedrock.endpoint_url + "/foo"
    request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310 - loopback
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback
    assert info.value.code == 404


def test_standalone_server_lifecycle() -> None:
    server = LocalBedrock(latency=0.0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.endpoint_url
    with server:
        client = boto3.client(
            "bedrock-runtime", endpoint_url=server.endpoint_url, region_name="us-east-1"
        )
        body = json.dumps({"inputText": "hi", "dimensions": 256})
        vector = json.loads(client.invoke_model(modelId=TITAN, body=body)["body"].read())
        assert len(vector["embedding"]) == 256
    with pytest.raises(RuntimeError):
        _ = server.endpoint_url


def test_eventstream_frame_matches_reference_bytes() -> None:
    from langchain_tidb_bedrock.local import _eventstream as es

    payload = b'{"bytes": "' + base64.b64encode(b"{}") + b'"}'
    frame = es.frame(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
        payload,
    )
    assert len(frame) == 108
    assert frame[:12].hex() == "0000006c0000004bd8eedd3d"
    assert frame[-4:].hex() == "fc468f5c"
