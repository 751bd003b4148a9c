"""Llama 3 on Amazon Bedrock for LlamaIndex, set up as ``create_llama3_chat`` does."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from langchain_tidb_bedrock.aws_config import (
    is_local_endpoint,
    local_endpoint_settings,
    require_aws,
    resolve_region,
)
from langchain_tidb_bedrock.chat_models.llama import DEFAULT_LLM_MODEL_ID, _with_retries

if TYPE_CHECKING:
    from llama_index.llms.bedrock_converse import BedrockConverse

__all__ = ["create_llama3_llm"]


def create_llama3_llm(
    model_id: str | None = None,
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 512,
    config: Config | None = None,
    max_retries: int | None = None,
    credentials_profile_name: str | None = None,
    **kwargs: Any,
) -> BedrockConverse:
    """A LlamaIndex ``BedrockConverse`` for Llama 3, set up as ``create_llama3_chat`` is.

    Same model default (``BEDROCK_LLM_MODEL_ID`` or Llama 3.2 3B through the US inference
    profile), temperature 0, 512 tokens, the same region and credential checks, and a local
    endpoint (``LocalBedrock``) works without AWS settings.

    Args:
        model_id: Bedrock model or inference-profile id.
        region_name: AWS region; falls back to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
        endpoint_url: Custom endpoint, e.g. a LocalBedrock's ``endpoint_url``.
        temperature: Sampling temperature (0 for grounded answers).
        max_tokens: Most tokens to generate.
        config: botocore ``Config``; its retry mode is kept.
        max_retries: Retries, merged into ``config``'s ``retries``.
        credentials_profile_name: Named AWS profile (``profile_name`` of ``BedrockConverse``).
        **kwargs: Passed to ``BedrockConverse`` (``aws_access_key_id``, ``system_prompt``...).

    Returns:
        The LLM (``chat``, ``stream_chat``, ``complete`` and their async twins).

    Raises:
        BedrockConfigError: No region or credentials (the message names what to set).
    """
    try:
        from llama_index.llms.bedrock_converse import BedrockConverse
    except ImportError as exc:  # pragma: no cover - the extra installs it
        msg = (
            "create_llama3_llm needs llama-index-llms-bedrock-converse: "
            "pip install 'langchain-tidb-bedrock[llama-index]'"
        )
        raise ImportError(msg) from exc
    model = model_id or os.environ.get("BEDROCK_LLM_MODEL_ID") or DEFAULT_LLM_MODEL_ID
    profile = credentials_profile_name or kwargs.pop("profile_name", None)
    has_keys = bool(kwargs.get("aws_access_key_id") and kwargs.get("aws_secret_access_key"))
    if kwargs.get("client") is not None:
        region = region_name or resolve_region(region_name, profile)
    elif is_local_endpoint(endpoint_url):
        region, placeholder_keys = local_endpoint_settings(region_name, profile, has_keys=has_keys)
        if placeholder_keys:
            kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    else:
        region = require_aws(region_name, profile, has_explicit_keys=has_keys)
    if max_retries is not None:
        # BedrockConverse builds its botocore config from max_retries only when given none.
        kwargs["max_retries"] = max(max_retries, 1)  # its own retry loop needs at least 1
    return BedrockConverse(
        model=model,
        region_name=region,
        endpoint_url=endpoint_url,
        temperature=temperature,
        max_tokens=max_tokens,
        profile_name=profile,
        # A given config keeps its retry mode, with max_retries merged into its retries.
        botocore_config=_with_retries(config, max_retries) if config is not None else None,
        **kwargs,
    )
