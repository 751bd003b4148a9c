"""Offline checks of BedrockTitanEmbeddings: the standard unit suite plus construction rules."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.config import Config
from langchain_aws import BedrockEmbeddings
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from langchain_tidb_bedrock.aws_config import BedrockConfigError
from langchain_tidb_bedrock.embeddings._rate import AdaptiveWindow
from langchain_tidb_bedrock.embeddings._titan_ids import check_embedding_model_id
from langchain_tidb_bedrock.embeddings.titan import (
    DEFAULT_EMBEDDING_MODEL_ID,
    MAX_INPUT_TOKENS,
    BedrockEmbeddingError,
    BedrockTitanEmbeddings,
    UnsupportedModelError,
    _fit,
    estimate_tokens,
)
from langchain_tidb_bedrock.local import _standin_models


class TestBedrockTitanEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[BedrockTitanEmbeddings]:
        return BedrockTitanEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"region_name": "us-east-1", "dimensions": 512}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {
                "BEDROCK_EMBEDDING_MODEL_ID": "amazon.titan-embed-text-v2:0",
                "AWS_REGION": "eu-central-1",
                "AWS_ACCESS_KEY_ID": "env-key",
                "AWS_SECRET_ACCESS_KEY": "env-secret",
            },
            {},
            {
                "model_id": "amazon.titan-embed-text-v2:0",
                "region_name": "eu-central-1",
                "aws_access_key_id": "env-key",
                "aws_secret_access_key": "env-secret",
            },
        )


def test_is_a_langchain_aws_bedrock_embeddings() -> None:
    emb = BedrockTitanEmbeddings(region_name="us-east-1")
    assert isinstance(emb, BedrockEmbeddings)
    assert emb.model_id == DEFAULT_EMBEDDING_MODEL_ID
    assert (emb.dimensions, emb.normalize, emb.max_concurrency, emb.max_retries) == (
        1024,
        True,
        16,
        8,
    )


@pytest.mark.parametrize("dims", [0, 128, 768, 1536])
def test_dimensions_are_validated(dims: int) -> None:
    with pytest.raises(ValidationError, match=r"dimensions must be one of \(256, 512, 1024\)"):
        BedrockTitanEmbeddings(region_name="us-east-1", dimensions=dims)


def test_model_id_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/x"
    monkeypatch.setenv("BEDROCK_EMBEDDING_MODEL_ID", profile)
    assert BedrockTitanEmbeddings(region_name="us-east-1").model_id == profile


@pytest.mark.parametrize(
    "model_id",
    [
        "amazon.titan-embed-text-v1",
        "amazon.titan-embed-text-v2",  # the version suffix missing
        "amazon.titan-embed-txt-v2:0",
        "cohere.embed-english-v3",
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v1",
        "",
    ],
)
def test_other_embedding_models_are_refused_without_a_request(
    model_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sockets are blocked in the unit tests: refused before any client or request.
    with pytest.raises(UnsupportedModelError, match=r"only Titan Text Embeddings V2 \(amazon"):
        check_embedding_model_id(model_id)
    with pytest.raises(ValidationError, match="is supported for embeddings"):
        BedrockTitanEmbeddings(region_name="us-east-1", model_id=model_id or " ")
    monkeypatch.setenv("BEDROCK_EMBEDDING_MODEL_ID", model_id or " ")
    with pytest.raises(ValidationError, match="is supported for embeddings"):
        BedrockTitanEmbeddings(region_name="us-east-1")


@pytest.mark.parametrize(
    "model_id",
    [
        DEFAULT_EMBEDDING_MODEL_ID,
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123",
    ],
)
def test_titan_v2_and_opaque_arns_are_accepted(model_id: str) -> None:
    assert check_embedding_model_id(model_id) == model_id
    assert BedrockTitanEmbeddings(region_name="us-east-1", model_id=model_id).model_id == model_id


def test_region_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    emb = BedrockTitanEmbeddings()
    assert emb.region_name == "ap-southeast-2"
    assert emb.client.meta.region_name == "ap-southeast-2"


def test_missing_region_reads_well(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(BedrockConfigError, match="AWS_REGION") as info:
        BedrockTitanEmbeddings()
    assert "LocalBedrock" in str(info.value)


def test_missing_credentials_read_well(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(BedrockConfigError) as info:
        BedrockTitanEmbeddings(region_name="us-east-1")
    message = str(info.value)
    for hint in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "LocalBedrock"):
        assert hint in message
    # A local endpoint needs neither: LocalBedrock ignores signatures.
    local = BedrockTitanEmbeddings(endpoint_url="http://127.0.0.1:9")
    assert local.region_name == "us-east-1"


def test_client_config_disables_botocore_retries_and_sizes_pool() -> None:
    user = Config(retries={"mode": "adaptive"}, connect_timeout=3, max_pool_connections=50)
    emb = BedrockTitanEmbeddings(region_name="us-east-1", config=user, max_concurrency=8)
    config = emb.client.meta.config
    assert config.retries["total_max_attempts"] == 1
    assert config.max_pool_connections == 50  # never below the user's pool
    assert config.connect_timeout == 3


def test_request_body_is_built_once_per_text() -> None:
    emb = BedrockTitanEmbeddings(region_name="us-east-1", dimensions=256, normalize=False)
    assert emb._body("hi") == '{"inputText": "hi", "dimensions": 256, "normalize": false}'
    emb2 = BedrockTitanEmbeddings(
        region_name="us-east-1", model_kwargs={"embeddingTypes": ["float"]}
    )
    assert '"embeddingTypes": ["float"]' in emb2._body("hi")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"model_kwargs": {"dimensions": 256}}, "dimensions"),
        ({"dimensions": 512, "model_kwargs": {"dimensions": 1024}}, "dimensions"),
        ({"model_kwargs": {"normalize": False}}, "normalize"),
        ({"normalize": False, "model_kwargs": {"normalize": 0}}, "normalize"),
    ],
)
def test_model_kwargs_cannot_override_validated_fields(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(
        ValueError, match=f"pass {key}=.*use dimensions=/normalize=, not model_kwargs"
    ):
        BedrockTitanEmbeddings(region_name="us-east-1", **kwargs)


def test_model_kwargs_agreeing_with_the_fields_are_accepted() -> None:
    emb = BedrockTitanEmbeddings(
        region_name="us-east-1",
        dimensions=256,
        model_kwargs={"dimensions": 256, "normalize": True, "embeddingTypes": ["float"]},
    )
    assert '"dimensions": 256' in emb._body("hi")


@pytest.mark.parametrize(
    "text",
    [
        "数据库向量检索。" * 5000,  # CJK
        "x = f(a, b);\n" * 5000,  # dense code
        "w " * 9000,  # many short words
        "The quick brown fox jumps over the lazy dog. " * 1000,
        "价格 1234567890 € " * 4000,
    ],
)
def test_token_estimate_is_conservative_and_fit_stays_under_the_limit(text: str) -> None:
    assert estimate_tokens(text) >= _standin_models.count_tokens(text)
    fitted = _fit(text)
    assert text.startswith(fitted)
    assert estimate_tokens(fitted) <= MAX_INPUT_TOKENS < estimate_tokens(text[: len(fitted) + 1])
    assert _standin_models.count_tokens(fitted) <= MAX_INPUT_TOKENS  # LocalBedrock accepts it


def test_short_text_is_not_cut() -> None:
    text = "TiDB stores vectors. " * 300
    assert estimate_tokens(text) < MAX_INPUT_TOKENS
    assert _fit(text) == text


def test_error_message_names_indices() -> None:
    err = BedrockEmbeddingError(list(range(25)), 100, TimeoutError("late"))
    assert str(err).startswith("25 of 100 texts were not embedded (input indices [0, 1, 2")
    assert ", ...]" in str(err)
    assert "TimeoutError: late" in str(err)


def test_adaptive_limiter_bounds_and_aimd() -> None:
    limiter = AdaptiveWindow(8)
    active = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal active, peak
        epoch = limiter.acquire()
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.005)
        with lock:
            active -= 1
        limiter.release("ok", epoch)

    threads = [threading.Thread(target=work) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 < peak <= 8
    epochs = [limiter.acquire() for _ in range(8)]
    for epoch in epochs:  # a whole window throttled at once cuts it once...
        limiter.release("throttle", epoch)
    assert limiter.limit == 4
    limiter.release("throttle", limiter.acquire())  # ...a later throttle cuts again
    assert limiter.limit == 2
    for _ in range(100):  # ...and successes grow it back up to the maximum
        limiter.release("ok", limiter.acquire())
    assert limiter.limit == 8


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"embedding": [0.6, 0.8]}', None),
        (b'{"embedding": [0, 1]}', None),  # JSON integers are numbers
        (b'{"embedding": [0.6, true]}', "values that are not numbers"),
        (b'{"embedding": [0.6, "0.8"]}', "values that are not numbers"),
        (b'{"embedding": [0.6, null]}', "values that are not numbers"),
        (b'{"embedding": [0.6, [0.8]]}', "values that are not numbers"),
        # orjson refuses NaN: the body is read again with json, so the check names it.
        (b'{"embedding": [0.6, NaN]}', "values that are not finite (NaN or infinity)"),
        (b'{"embedding": [0.6, 0.7]}', "L2 norm 0.921954, expected 1 (normalize=True)"),
        (b'{"embedding": [0.6, 0.8, 0.0]}', "3 dimensions, expected 2"),
    ],
)
def test_a_titan_answer_is_parsed_and_checked(body: bytes, problem: str | None) -> None:
    from langchain_tidb_bedrock.embeddings.titan import _loads, vector_problem

    vector = _loads(body)["embedding"]
    assert vector_problem(vector, 2, normalized=True) == problem
