"""Request validation for LocalBedrock: Bedrock's refusals, with the service's own messages.

Each check raises :class:`BedrockError` (status, error code, message), which the HTTP layer
answers in Bedrock's error shape so botocore raises the same exception class.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INVALID_MODEL_MESSAGE",
    "RERANK_ARN_MESSAGE",
    "RERANK_CROSS_REGION_MESSAGE",
    "RERANK_MODEL_REGIONS",
    "RERANK_NO_ACCESS_MESSAGE",
    "RERANK_TOO_MANY_RESULTS_MESSAGE",
    "TITAN_V2_MODEL_ID",
    "UNSUPPORTED_OP_MESSAGE",
    "UNSUPPORTED_STREAMING_MESSAGE",
    "BedrockError",
    "Model",
    "RerankRequest",
    "check_media_types",
    "check_region",
    "invalid",
    "malformed",
    "resolve_model",
    "tool_call",
    "validate_converse",
    "validate_llama",
    "validate_rerank",
    "validate_rerank_invoke",
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
RERANK_ARN_MESSAGE = (
    "The provided model ARN for reranking is invalid. Please, use a valid model ARN. Also "
    "check the model ARN follows this format: "
    "arn:<partition>:bedrock:<region>::foundation-model/<model-id>"
)
RERANK_CROSS_REGION_MESSAGE = (
    "Reranking does not support cross-region calls. Please provide a valid model ARN."
)
RERANK_TOO_MANY_RESULTS_MESSAGE = (
    "Cannot provide numberOfResults value that exceeds the number of sources."
)
RERANK_NO_ACCESS_MESSAGE = "You don't have access to the model with the specified model ID."
# docs.aws.amazon.com/bedrock/latest/userguide/rerank-supported.html
RERANK_MODEL_REGIONS: dict[str, frozenset[str]] = {
    "amazon.rerank-v1:0": frozenset(
        {"ap-northeast-1", "ca-central-1", "eu-central-1", "us-west-2"}
    ),
    "cohere.rerank-v3-5:0": frozenset(
        {"ap-northeast-1", "ca-central-1", "eu-central-1", "us-east-1", "us-west-2"}
    ),
}
RERANK_MAX_SOURCES = 1000
RERANK_MAX_TEXT = 32_000
_FOUNDATION_ARN = re.compile(
    r"arn:aws(?:-[a-z-]+)?:bedrock:(?P<region>[a-z0-9-]+)::foundation-model/(?P<model>.+)"
)
_COHERE_RERANK_KEYS = {"query", "documents", "top_n", "api_version", "max_tokens_per_doc"}
_AMAZON_RERANK_KEYS = {"query", "documents", "top_n"}

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

    kind: str  # "titan", "llama" or "rerank"
    key: str  # the id without an ARN prefix: cross-Region profiles have their own quotas
    tools: bool = False


def resolve_model(model_id: str, profiles: Mapping[str, str] | None = None) -> Model:
    """Bedrock's errors for unknown or profile-only ids; else what the id names.

    ``profiles`` maps application inference-profile ids to the model id each one wraps.
    """
    bare = model_id
    if bare.startswith("arn:"):  # foundation-model/<id> or inference-profile/<id>
        kind, _, bare = bare.split(":", 5)[-1].partition("/")
        if kind == "application-inference-profile":
            wrapped = (profiles or {}).get(bare)
            if wrapped is None:
                raise invalid(INVALID_MODEL_MESSAGE)
            return resolve_model(wrapped)
    if bare == TITAN_V2_MODEL_ID:
        return Model("titan", bare)
    if bare in RERANK_MODEL_REGIONS:
        return Model("rerank", bare)
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


def check_region(model: Model, region: str, message: str = INVALID_MODEL_MESSAGE) -> None:
    """Refuse a rerank model outside the regions that offer it (other kinds are not checked)."""
    offered = RERANK_MODEL_REGIONS.get(model.key)
    if model.kind == "rerank" and offered is not None and region not in offered:
        raise invalid(message)


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


def _tool_results(blocks: Any) -> list[str]:
    """The texts inside ``toolResult`` blocks: what a tool returned is context for the answer."""
    texts: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        result = block.get("toolResult") if isinstance(block, dict) else None
        for part in (result or {}).get("content") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict) and "json" in part:
                texts.append(json.dumps(part["json"]))
    return texts


def tool_call(body: dict[str, Any], last_user: str) -> dict[str, Any] | None:
    """The stand-in's deterministic tool policy (models with tool use only).

    Call a tool when tools are offered and no tool result is in the conversation yet: the
    first tool (or the one ``toolChoice`` names), each string parameter it requires set to the
    last user text. Otherwise None: answer in text.
    """
    config = body.get("toolConfig") or {}
    specs = [
        t["toolSpec"] for t in config.get("tools") or [] if isinstance(t, dict) and "toolSpec" in t
    ]
    if not specs or any(_tool_results_present(m) for m in body["messages"]):
        return None
    chosen = (config.get("toolChoice") or {}).get("tool", {}).get("name")
    spec = next((t for t in specs if t.get("name") == chosen), specs[0])
    schema = (spec.get("inputSchema") or {}).get("json") or {}
    properties = schema.get("properties") or {}
    arguments = {
        name: last_user
        for name in schema.get("required") or list(properties)
        if (properties.get(name) or {}).get("type", "string") == "string"
    }
    seed = json.dumps([spec.get("name"), arguments, len(body["messages"])], sort_keys=True)
    return {
        "toolUseId": "tooluse_" + hashlib.sha256(seed.encode()).hexdigest()[:22],
        "name": spec.get("name"),
        "input": arguments,
    }


def _tool_results_present(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return any(isinstance(b, dict) and "toolResult" in b for b in content or [])


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
    asked = ""
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
            user_texts.append("\n".join(texts + _tool_results(message["content"])))
            asked = "\n".join(texts) or asked  # a turn of tool results only asks nothing
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
    return prompt, asked, config


# ---------------------------------------------------------------- rerank


@dataclass(frozen=True)
class RerankRequest:
    """A checked bedrock-agent-runtime ``Rerank`` request."""

    query: str
    texts: list[str]
    model: Model
    number_of_results: int
    next_token: str | None
    additional_fields: dict[str, Any]


def _constraint(where: str, rule: str) -> BedrockError:
    # The service quotes the value too; the stand-in leaves it out (it may be document text).
    return invalid(
        f"1 validation error detected: Value at '{where}' failed to satisfy constraint: {rule}"
    )


def _not_null(value: Any, where: str) -> Any:
    if value is None:
        raise invalid(
            f"1 validation error detected: Value null at '{where}' failed to satisfy "
            "constraint: Member must not be null"
        )
    return value


def _text_member(value: Any, where: str) -> str:
    text = _not_null(value.get("text") if isinstance(value, dict) else None, f"{where}.text")
    if not isinstance(text, str) or not text:
        raise _constraint(f"{where}.text", "Member must have length greater than or equal to 1")
    if len(text) > RERANK_MAX_TEXT:
        raise _constraint(
            f"{where}.text", f"Member must have length less than or equal to {RERANK_MAX_TEXT}"
        )
    return text


def _source_text(source: Any, n: int) -> str:
    where = f"sources.{n}.member"
    if not isinstance(source, dict) or source.get("type") != "INLINE":
        raise _constraint(f"{where}.type", "Member must satisfy enum value set: [INLINE]")
    inline = _not_null(source.get("inlineDocumentSource"), f"{where}.inlineDocumentSource")
    kind = inline.get("type") if isinstance(inline, dict) else None
    if kind == "JSON":
        document = _not_null(inline.get("jsonDocument"), f"{where}.inlineDocumentSource")
        return json.dumps(document, sort_keys=True)
    if kind != "TEXT":
        raise _constraint(
            f"{where}.inlineDocumentSource.type", "Member must satisfy enum value set: [TEXT, JSON]"
        )
    return _text_member(inline.get("textDocument"), f"{where}.inlineDocumentSource.textDocument")


def validate_rerank(body: Any, region: str) -> RerankRequest:
    """A ``POST /rerank`` body, checked like the service (messages without the values)."""
    if not isinstance(body, dict):
        raise invalid(MALFORMED_MESSAGE)
    queries = _not_null(body.get("queries"), "queries")
    if not isinstance(queries, list) or not queries:
        raise _constraint("queries", "Member must have length greater than or equal to 1")
    if len(queries) > 1:
        raise _constraint("queries", "Member must have length less than or equal to 1")
    query = queries[0]
    if not isinstance(query, dict) or query.get("type") != "TEXT":
        raise _constraint("queries.1.member.type", "Member must satisfy enum value set: [TEXT]")
    text = _text_member(query.get("textQuery"), "queries.1.member.textQuery")
    sources = _not_null(body.get("sources"), "sources")
    if not isinstance(sources, list) or not sources:
        raise _constraint("sources", "Member must have length greater than or equal to 1")
    if len(sources) > RERANK_MAX_SOURCES:
        raise _constraint(
            "sources", f"Member must have length less than or equal to {RERANK_MAX_SOURCES}"
        )
    texts = [_source_text(source, n) for n, source in enumerate(sources, start=1)]
    config = _not_null(body.get("rerankingConfiguration"), "rerankingConfiguration")
    if not isinstance(config, dict) or config.get("type") != "BEDROCK_RERANKING_MODEL":
        raise _constraint(
            "rerankingConfiguration.type",
            "Member must satisfy enum value set: [BEDROCK_RERANKING_MODEL]",
        )
    where = "rerankingConfiguration.bedrockRerankingConfiguration"
    bedrock = _not_null(config.get("bedrockRerankingConfiguration"), where)
    model_config = _not_null(bedrock.get("modelConfiguration"), f"{where}.modelConfiguration")
    arn = _not_null(model_config.get("modelArn"), f"{where}.modelConfiguration.modelArn")
    found = _FOUNDATION_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if found is None or found["model"] not in RERANK_MODEL_REGIONS:
        raise invalid(RERANK_ARN_MESSAGE)  # a bare id, a profile ARN, or not a rerank model
    if found["region"] != region:
        raise invalid(RERANK_CROSS_REGION_MESSAGE)
    model = Model("rerank", found["model"])
    check_region(model, region, RERANK_NO_ACCESS_MESSAGE)
    count = bedrock.get("numberOfResults", len(texts))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise _constraint(
            f"{where}.numberOfResults", "Member must have value greater than or equal to 1"
        )
    if count > RERANK_MAX_SOURCES:
        raise _constraint(
            f"{where}.numberOfResults",
            f"Member must have value less than or equal to {RERANK_MAX_SOURCES}",
        )
    if count > len(texts):
        raise invalid(RERANK_TOO_MANY_RESULTS_MESSAGE)
    extra = model_config.get("additionalModelRequestFields") or {}
    if not isinstance(extra, dict):
        raise invalid(MALFORMED_MESSAGE)
    token = body.get("nextToken")
    if token is not None and (
        not isinstance(token, str) or not 1 <= len(token) <= 2048 or re.search(r"\s", token)
    ):
        raise _constraint("nextToken", "Member must satisfy regular expression pattern: ^\\S*$")
    return RerankRequest(text, texts, model, count, token, extra)


def _integer_at_least(body: dict[str, Any], key: str, low: int, problems: list[str]) -> None:
    if key not in body:
        return
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"#/{key}: expected type: Integer, found: {_type_name(value)}")
    elif value < low:
        problems.append(f"#/{key}: {value} is not greater or equal to {low}")


def validate_rerank_invoke(body: Any, model: Model) -> tuple[str, list[str], int]:
    """A rerank model's InvokeModel body: (query, document texts, top_n).

    Cohere Rerank 3.5 requires ``api_version`` >= 2; Amazon Rerank 1.0 takes
    ``{query, documents, top_n}`` only. Every problem is reported at once, as the service's
    JSON-schema check does.
    """
    if not isinstance(body, dict):
        raise malformed(f"#: expected type: JSONObject, found: {_type_name(body)}")
    cohere = model.key.startswith("cohere.")
    allowed = _COHERE_RERANK_KEYS if cohere else _AMAZON_RERANK_KEYS
    required = ["query", "documents", *(["api_version"] if cohere else [])]
    problems = [f"#: required key [{key}] not found" for key in required if key not in body]
    problems += [
        f"#: extraneous key [{key}] is not permitted" for key in body if key not in allowed
    ]
    query = body.get("query", "")
    if not isinstance(query, str):
        problems.append(f"#/query: expected type: String, found: {_type_name(query)}")
    elif "query" in body and not query:
        problems.append("#/query: expected minLength: 1, actual: 0")
    documents = body.get("documents", [])
    texts: list[str] = []
    if not isinstance(documents, list):
        problems.append(f"#/documents: expected type: JSONArray, found: {_type_name(documents)}")
    elif "documents" in body and not documents:
        problems.append("#/documents: expected minimum item count: 1, found: 0")
    elif len(documents) > RERANK_MAX_SOURCES:
        problems.append(
            f"#/documents: expected maximum item count: {RERANK_MAX_SOURCES}, "
            f"found: {len(documents)}"
        )
    else:
        for i, document in enumerate(documents):
            if isinstance(document, str):
                texts.append(document)
            elif isinstance(document, dict) and cohere:
                texts.append(json.dumps(document, sort_keys=True))
            else:
                problems.append(
                    f"#/documents/{i}: expected type: String, found: {_type_name(document)}"
                )
    _integer_at_least(body, "top_n", 1, problems)
    _integer_at_least(body, "api_version", 2, problems)
    _integer_at_least(body, "max_tokens_per_doc", 1, problems)
    if problems:
        raise malformed("".join(problems))
    top_n = body.get("top_n", len(texts))
    return query, texts, int(top_n)
