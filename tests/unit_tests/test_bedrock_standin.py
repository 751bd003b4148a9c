"""The LocalBedrock stand-in models, aws_config and the chat retry merge (offline)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from botocore.config import Config

from langchain_tidb_bedrock.aws_config import (
    BedrockConfigError,
    aws_is_configured,
    is_local_endpoint,
    require_aws,
    resolve_region,
)
from langchain_tidb_bedrock.chat_models.llama import _with_retries, create_llama3_chat
from langchain_tidb_bedrock.local import _standin_models as models


def test_embedding_is_stable_across_dims_and_calls() -> None:
    a = models.embed("TiDB vector search", 256, normalize=True)
    assert a == models.embed("TiDB vector search", 256, normalize=True)
    assert len(models.embed("TiDB vector search", 1024, normalize=True)) == 1024
    assert abs(np.linalg.norm(a) - 1) < 1e-6
    assert models.embed("TIDB Vector SEARCH", 256, normalize=True) == a  # lowercased


def test_answer_cites_best_passage_and_continuation_lines() -> None:
    prompt = (
        "Context:\n[1] Cats sleep a lot.\n[2] TiDB Serverless scales\nto zero when idle.\n\n"
        "Question: Does TiDB scale to zero?\nAnswer:"
    )
    assert models.generate(prompt) == (
        "(LocalBedrock stand-in) TiDB Serverless scales to zero when idle. [2]"
    )


def test_answer_uses_last_question_and_two_sentences() -> None:
    prompt = (
        "Question: ignored\n[1] Vectors live in TiDB. Paris is nice.\n[4] TiDB indexes vectors.\n\n"
        "Question: How does TiDB handle vectors?"
    )
    assert models.generate(prompt) == (
        "(LocalBedrock stand-in) Vectors live in TiDB. [1] TiDB indexes vectors. [4]"
    )


def test_answer_without_passages_or_overlap() -> None:
    assert models.generate("Question: What is TiDB?") == models.I_DONT_KNOW
    assert models.generate("[1] Cats sleep.\n\nQuestion: What is TiDB?") == models.I_DONT_KNOW


def test_last_user_message_is_the_question_without_marker() -> None:
    text = "[1] Cats sleep a lot.\n[2] Dogs bark."
    assert models.generate(text + "\n\nDo dogs bark?", "Do dogs bark?").endswith("Dogs bark. [2]")


def test_llama_special_tokens_are_ignored() -> None:
    prompt = (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n[1] Dogs bark.\n\n"
        "Question: Do dogs bark?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert models.generate(prompt) == "(LocalBedrock stand-in) Dogs bark. [1]"


@pytest.mark.parametrize(
    ("history", "follow_up", "expected"),
    [
        (
            "Human: What is TiDB?\nAI: A database.",
            "Does it support vectors?",
            "Does it support vectors? TiDB",
        ),
        (
            "Human: hello\nAI: hi\nUser: Tell me about HNSW indexes in TiDB",
            "How fast are they?",
            "How fast are they? HNSW indexes TiDB",
        ),
        ("Human: What is TiDB?", "Is TiDB open source?", "Is TiDB open source?"),
    ],
)
def test_follow_up_rewrite(history: str, follow_up: str, expected: str) -> None:
    prompt = f"Chat history:\n{history}\n\nFollow-up question: {follow_up}\nStandalone question:"
    assert models.generate(prompt) == expected


def test_apply_limits() -> None:
    assert models.apply_limits("a b c d", max_tokens=2) == ("a b", "max_tokens")
    assert models.apply_limits("a b c d", max_tokens=9, stop_sequences=["c", "b"]) == (
        "a ",
        "stop_sequence",
    )
    assert models.apply_limits("a b", max_tokens=None) == ("a b", "end_turn")


def test_resolve_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert resolve_region() == "eu-west-1"
    assert resolve_region("us-west-2") == "us-west-2"
    monkeypatch.delenv("AWS_REGION")
    assert resolve_region() == "us-east-1"  # AWS_DEFAULT_REGION from conftest
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(BedrockConfigError, match="export AWS_REGION=us-east-1"):
        resolve_region()


def test_aws_is_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert aws_is_configured()
    assert not aws_is_configured(profile="no-such-profile")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert not aws_is_configured()
    with pytest.raises(BedrockConfigError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        require_aws()
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "token")
    assert aws_is_configured()


def test_profile_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[dev]\naws_access_key_id = a\naws_secret_access_key = b\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert aws_is_configured(profile="dev")
    assert require_aws(profile="dev") == "us-east-1"


def test_is_local_endpoint() -> None:
    assert is_local_endpoint("http://127.0.0.1:8999")
    assert is_local_endpoint("http://localhost:1")
    assert not is_local_endpoint("https://bedrock-runtime.us-east-1.amazonaws.com")
    assert not is_local_endpoint(None)


def test_with_retries_keeps_mode() -> None:
    merged = _with_retries(Config(retries={"mode": "adaptive", "total_max_attempts": 5}), 2)
    assert merged is not None
    assert merged.retries == {"mode": "adaptive", "max_attempts": 2}  # type: ignore[attr-defined]
    assert _with_retries(None, None) is None
    plain = _with_retries(None, 4)
    assert plain is not None
    assert plain.retries == {"max_attempts": 4, "mode": "standard"}  # type: ignore[attr-defined]


def test_chat_missing_region_reads_well(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(BedrockConfigError, match="No AWS region configured"):
        create_llama3_chat()
    assert create_llama3_chat(region_name="us-west-2").region_name == "us-west-2"


def test_source_lines_are_not_quoted() -> None:
    prompt = (
        "[1] TiDB is a distributed SQL database.\n(source: docs/tidb.md, chunk 0)\n"
        "[2] Cats sleep.\n(source: docs/cats.md)\n\nQuestion: What is TiDB?\n\nAnswer:"
    )
    assert models.generate(prompt) == (
        "(LocalBedrock stand-in) TiDB is a distributed SQL database. [1]"
    )


@pytest.mark.parametrize(
    "prompt",
    [
        # A user's own LCEL prompt: context paragraphs, then the question, no [n] labels.
        "Use this context to answer.\n\nTiDB is a distributed SQL database. Cats sleep.\n\n"
        "What is TiDB?",
        "Context: TiDB is a distributed SQL database.\nQuestion: What is TiDB?",
        "Documents:\nCats sleep.\nTiDB is a distributed SQL database.\n\nWhat is TiDB?",
    ],
)
def test_the_standin_answers_from_any_context_format(prompt: str) -> None:
    assert models.generate(prompt) == "(LocalBedrock stand-in) TiDB is a distributed SQL database."


def test_the_standin_still_says_it_does_not_know_without_matching_context() -> None:
    assert models.generate("Cats sleep a lot.\n\nWhat is TiDB?") == models.I_DONT_KNOW
