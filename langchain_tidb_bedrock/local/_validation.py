"""Request validation for LocalBedrock: Bedrock's refusals, with the service's own messages.

Each check raises :class:`BedrockError` (status, error code, message), which the HTTP layer
answers in Bedrock's error shape so botocore raises the same exception class.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INVALID_MODEL_MESSAGE",
    "TITAN_V2_MODEL_ID",
    "UNSUPPORTED_OP_MESSAGE",
    "UNSUPPORTED_STREAMING_MESSAGE",
    "BedrockError",
    "Model",
    "check_media_types",
    "invalid",
    "malformed",
    "resolve_model",
    "validate_converse",
    "validate_llama",
    "validate_titan",
]

TITAN_V2_MODEL_ID = "amazon.titan-embed-text-v2:0"
INVALID_MODEL_MESSAGE = "The provided model identifier is invalid."
UNSUPPORTED_OP_MESSAGE = (
    "This action doesn't support the model that you provided. "
    "Try again with a supported text or chat model."
)
UNSUPPORTED_STREAMING_MESSAGE = "The model is unsupported for streaming."
NO_TOOLS_MESSAGE = "This model doesn't support tool use."
CONTENT_TYPE_MESSAGE = "The provided Content Type is invalid or not supported for this model"
ACCEPT_MESSAGE = "The provided Accept Type is invalid or not supported for this model"
MALFORMED_MESSAGE = "Malformed input request, please reformat your input and try again."

_LLAMA = re.compile(r"(?:(us|eu|apac|global)\.)?meta\.llama(3(?:-[1-3])?)-(\d+)b-instruct-v1:0")
# Llama 3.2 and 3.3 are only served through cross-Region inference profiles.
_PROFILE_ONLY = {"3-2", "3-3"}
# AWS lists Llama 3.0 and the 3.2 1B/3B text models without tool use.
_NO_TOOLS = {("3", "8"), ("3", "70"), ("3-2", "1"), ("3-2", "3")}
LLAMA_MAX_OUTPUT_TOKENS = 2048
LLAMA_DEFAULT_MAX_TOKENS = 512
_TITAN_KEYS = {"inputText", "dimensions", "normalize", "embeddingTypes"}
_LLAMA_KEYS = {"prompt", "temperature", "top_p", "max_gen_len", "images"}
_INFERENCE_KEYS = {"maxTokens", "temperature", "topP", "stopSequences"}
_MAX_CHARS = 50_000
_JSON_TYPES = {"application/json", "*/*"}


class BedrockError(Exception):
    """An error answered in Bedrock's shape (``extra`` keys go into the JSON body)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra


def invalid(message: str) -> BedrockError:
    """A 400 ValidationException."""
    return BedrockError(400, "ValidationException", message)


def malformed(detail: str) -> BedrockError:
    """A 400 ValidationException in the JSON-schema wording InvokeModel bodies get."""
    return invalid(f"Malformed input request: {detail}, please reformat your input and try again.")


@dataclass(frozen=True)
class Model:
    """A resolved model id: its kind and the key its quotas are kept under."""

    kind: str  # "titan" or "llama"
    key: str  # the id without an ARN prefix: cross-Region profiles have their own quotas
    tools: bool = False


def resolve_model(model_id: str) -> Model:
    """Bedrock's errors for unknown or profile-only ids; else what the id names."""
    bare = model_id
    if bare.startswith("arn:"):  # foundation-model/<id> or inference-profile/<id>
        bare = bare.split(":", 5)[-1].split("/", 1)[-1]
    if bare == TITAN_V2_MODEL_ID:
        return Model("titan", bare)
    match = _LLAMA.fullmatch(bare)
    if match is None:
        raise invalid(INVALID_MODEL_MESSAGE)
    region, version, size = match.groups()
    if region is None and version in _PROFILE_ONLY:
        raise invalid(
            f"Invocation of model ID {bare} with on-demand throughput isn't supported. Retry "
            "your request with the ID or ARN of an inference profile that contains this model."
        )
    return Model("llama", bare, tools=(version, size) not in _NO_TOOLS)


def _media_type(value: str | None) -> str | None:
    return value.split(";", 1)[0].strip().lower() if value else None


def check_media_types(op: str, headers: Any, raw: bytes) -> None:
    """InvokeModel's ``contentType``/``accept`` and a missing body, as the service refuses them.

    botocore sends neither header when the caller leaves them out; Bedrock then assumes JSON.
    """
    if op not in ("InvokeModel", "InvokeModelWithResponseStream"):
        return
    content_type = _media_type(headers.get("Content-Type"))
    if content_type is not None and content_type != "application/json":
        raise invalid(CONTENT_TYPE_MESSAGE)
    accept_header = "Accept" if op == "InvokeModel" else "X-Amzn-Bedrock-Accept"
    accept = _media_type(headers.get(accept_header))
    if accept is not None and accept not in _JSON_TYPES:
        raise invalid(ACCEPT_MESSAGE)
    if not raw.strip():
        raise invalid(MALFORMED_MESSAGE)


def _type_name(value: Any) -> str:
    names = {str: "String", bool: "Boolean", int: "Integer", float: "Number", list: "JSONArray"}
    if value is None:
        return "Null"
    return names.get(type(value), "JSONObject")


def _check_keys(body: Any, allowed: set[str], required: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise malformed(f"#: expected type: JSONObject, found: {_type_name(body)}")
    for key in body:
        if key not in allowed:
            raise malformed(f"#: extraneous key [{key}] is not permitted")
    if required not in body:
        raise malformed(f"#: required key [{required}] not found")
    return body


def _number(body: dict[str, Any], key: str, low: float, high: float) -> None:
    if key not in body:
        return
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise malformed(f"#/{key}: expected type: Number, found: {_type_name(value)}")
    if not low <= value <= high:
        raise malformed(f"#/{key}: {value} is not between {low} and {high}")


def validate_titan(body: Any) -> tuple[str, int, bool, list[str]]:
    """Titan V2's body: (inputText, dimensions, normalize, embeddingTypes)."""
    body = _check_keys(body, _TITAN_KEYS, "inputText")
    text = body["inputText"]
    if not isinstance(text, str):
        raise malformed(f"#/inputText: expected type: String, found: {_type_name(text)}")
    if not text:
        raise malformed("#/inputText: expected minLength: 1, actual: 0")
    if len(text) > _MAX_CHARS:
        raise malformed(f"#/inputText: expected maxLength: {_MAX_CHARS}, actual: {len(text)}")
    dims = body.get("dimensions", 1024)
    if isinstance(dims, bool) or dims not in (256, 512, 1024):
        raise malformed(f"#/dimensions: {json.dumps(dims)} is not a valid enum value")
    normalize = body.get("normalize", True)
    if not isinstance(normalize, bool):
        raise malformed(f"#/normalize: expected type: Boolean, found: {_type_name(normalize)}")
    types = body.get("embeddingTypes", ["float"])
    if not isinstance(types, list) or not types:
        raise malformed("#/embeddingTypes: expected minimum item count: 1")
    for item in types:
        if item not in ("float", "binary"):
            raise malformed(f"#/embeddingTypes: {json.dumps(item)} is not a valid enum value")
    return text, int(dims), normalize, types


def validate_llama(body: Any) -> tuple[str, int]:
    """A Llama InvokeModel body: (prompt, max_gen_len)."""
    body = _check_keys(body, _LLAMA_KEYS, "prompt")
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        raise malformed(f"#/prompt: expected type: String, found: {_type_name(prompt)}")
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    _number(body, "max_gen_len", 1, LLAMA_MAX_OUTPUT_TOKENS)
    return prompt, int(body.get("max_gen_len", LLAMA_DEFAULT_MAX_TOKENS))


def _blocks(blocks: Any, where: str, kind: str) -> list[str]:
    """The texts of a content list; a blank text block is refused like the service does."""
    texts: list[str] = []
    for j, block in enumerate(blocks if isinstance(blocks, list) else []):
        if isinstance(block, dict) and "text" in block:
            text = block["text"]
            if not isinstance(text, str) or not text.strip():
                raise invalid(
                    f"The text field in the {kind} object at {where}.{j} is blank. "
                    "Add text to the text field, and try again."
                )
            texts.append(text)
    return texts


def validate_converse(body: Any, model: Model) -> tuple[str, str, dict[str, Any]]:
    """The prompt text (system + user turns), the last user text and ``inferenceConfig``."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise invalid(
            "1 validation error detected: Value null at 'messages' failed to satisfy "
            "constraint: Member must not be null"
        )
    messages = body["messages"]
    if not messages:
        raise invalid("The model returned the following errors: messages must not be empty")
    user_texts: list[str] = []
    previous = None
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise invalid(f"Invalid message role: {role}")
        if role == previous:
            raise invalid(
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        if previous is None and role != "user":
            raise invalid(
                "A conversation must start with a user message. Try again with a "
                "conversation that starts with a user message."
            )
        previous = role
        if not message.get("content"):
            raise invalid(
                f"The content field in the Message object at messages.{i} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
        texts = _blocks(message["content"], f"messages.{i}.content", "ContentBlock")
        if role == "user":
            user_texts.append("\n".join(texts))
    system = "\n".join(_blocks(body.get("system"), "system", "SystemContentBlock"))
    if body.get("toolConfig") is not None and not model.tools:
        raise invalid(NO_TOOLS_MESSAGE)
    config = body.get("inferenceConfig") or {}
    for key in config:
        if key not in _INFERENCE_KEYS:
            raise invalid(f"Unknown inferenceConfig key: {key}")
    _number(config, "temperature", 0, 1)
    _number(config, "topP", 0, 1)
    if "maxTokens" in config:
        max_tokens = config["maxTokens"]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise invalid("The value of maxTokens must be a positive integer.")
        if max_tokens > LLAMA_MAX_OUTPUT_TOKENS:
            limit = LLAMA_MAX_OUTPUT_TOKENS
            raise invalid(
                f"The maximum tokens you requested exceeds the model limit of {limit}. "
                f"Try again with a maximum tokens value that is lower than {limit}."
            )
    prompt = "\n\n".join([system, *user_texts]) if system else "\n\n".join(user_texts)
    return prompt, user_texts[-1] if user_texts else "", config
