"""Llama 3 chat on Amazon Bedrock through the Converse API (langchain-aws ``ChatBedrockConverse``).

Converse, not InvokeModel: with ``meta`` models langchain-aws' ``ChatBedrock`` sends stop sequences
Bedrock rejects and refuses ``stream(..., stop=...)``; Converse maps ``stop`` to
``inferenceConfig.stopSequences`` and streams through ConverseStream.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from botocore.config import Config
from langchain_aws import ChatBedrockConverse

from langchain_tidb_bedrock.aws_config import (
    is_local_endpoint,
    local_endpoint_settings,
    require_aws,
    resolve_endpoint,
    resolve_region,
)
from langchain_tidb_bedrock.embeddings.titan import DEFAULT_EMBEDDING_MODEL_ID

__all__ = ["DEFAULT_EMBEDDING_MODEL_ID", "DEFAULT_LLM_MODEL_ID", "create_llama3_chat"]

DEFAULT_LLM_MODEL_ID = "us.meta.llama3-2-3b-instruct-v1:0"
"""Llama 3.2 3B Instruct via the US cross-Region inference profile (the bare id is refused)."""


def _with_retries(config: Config | None, max_retries: int | None) -> Config | None:
    """Fold ``max_retries`` into ``config`` without losing its retry mode.

    langchain-aws merges ``Config(retries={"max_attempts": n})`` over the user's config, which
    replaces the whole ``retries`` dict (``mode="adaptive"`` is lost); merge the dict here instead.
    """
    if max_retries is None:
        return config
    if config is None:
        return Config(retries={"max_attempts": max_retries, "mode": "standard"})
    retries = dict(getattr(config, "retries", None) or {})
    retries.pop("total_max_attempts", None)  # it would win over max_attempts
    retries["max_attempts"] = max_retries
    merged: Config = config.merge(Config(retries=retries))  # type: ignore[arg-type]
    return merged


class _OnFirstUse:
    """A boto3 client built on first attribute access.

    ``ChatBedrockConverse`` builds a ``bedrock`` control-plane client up front but calls it
    only to resolve application inference profiles; loading that service's model takes about
    a tenth of a second of every command's start-up.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._build()
        return getattr(self._client, name)


def _control_plane(chat: list[ChatBedrockConverse]) -> Any:
    """The control-plane client langchain-aws would build, from the finished model's settings."""
    from langchain_aws.utils import create_aws_client

    llm = chat[0]
    return create_aws_client(
        region_name=llm.region_name,
        credentials_profile_name=llm.credentials_profile_name,
        aws_access_key_id=llm.aws_access_key_id,
        aws_secret_access_key=llm.aws_secret_access_key,
        aws_session_token=llm.aws_session_token,
        endpoint_url=llm.endpoint_url,
        config=llm.config,
        service_name="bedrock",
        api_key=llm.bedrock_api_key,
    )


def create_llama3_chat(
    model_id: str | None = None,
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 512,
    config: Config | None = None,
    max_retries: int | None = None,
    **kwargs: Any,
) -> ChatBedrockConverse:
    """A ``ChatBedrockConverse`` for Llama 3 on Bedrock.

    Args:
        model_id: Bedrock model or inference-profile id; defaults to ``BEDROCK_LLM_MODEL_ID`` or
            ``us.meta.llama3-2-3b-instruct-v1:0``.
        region_name: AWS region; falls back to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
        endpoint_url: Custom endpoint, e.g. a LocalBedrock's ``endpoint_url``; default
            ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, real AWS when any AWS setting exists, else
            this process's LocalBedrock (announced on stderr).
        temperature: Sampling temperature (0 for grounded answers).
        max_tokens: Most tokens to generate.
        config: botocore ``Config``; its retry mode is kept.
        max_retries: Retries, merged into ``config``'s ``retries`` (not passed to langchain-aws).
        **kwargs: Passed to ``ChatBedrockConverse`` (e.g. ``stop``, ``top_p``,
            ``credentials_profile_name``).

    Returns:
        The chat model; ``.stream()`` uses ConverseStream and ``stop=`` becomes ``stopSequences``.

    Raises:
        BedrockConfigError: No region or credentials (the message names what to set).
    """
    model = model_id or os.environ.get("BEDROCK_LLM_MODEL_ID") or DEFAULT_LLM_MODEL_ID
    profile = kwargs.get("credentials_profile_name")
    has_keys = bool(kwargs.get("aws_access_key_id") and kwargs.get("aws_secret_access_key"))
    if kwargs.get("client") is None:
        endpoint_url = resolve_endpoint(endpoint_url, region_name, profile, has_keys=has_keys)
    if kwargs.get("client") is not None:
        region = region_name or resolve_region(region_name, profile)
    elif is_local_endpoint(endpoint_url):
        region, placeholder_keys = local_endpoint_settings(region_name, profile, has_keys=has_keys)
        if placeholder_keys:
            kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    else:
        region = require_aws(region_name, profile, has_explicit_keys=has_keys)
    built: list[ChatBedrockConverse] = []
    if kwargs.get("bedrock_client") is None and "application-inference-profile" not in model:
        # (an application profile is resolved through it during construction: built then)
        kwargs["bedrock_client"] = _OnFirstUse(lambda: _control_plane(built))
    built.append(
        ChatBedrockConverse(  # type: ignore[call-arg]  # pydantic fields, not in the stub
            model=model,
            region_name=region,
            endpoint_url=endpoint_url,
            temperature=temperature,
            max_tokens=max_tokens,
            config=_with_retries(config, max_retries),
            **kwargs,
        )
    )
    return built[0]
