"""Pure request logic of :class:`~.rerank.BedrockReranker`: model ids, ARNs, bodies, merging.

Two wire paths reach the same models:

* ``bedrock-agent-runtime`` ``Rerank`` (``POST /rerank``, SigV4 only): takes the foundation-model
  ARN only (a bare id or an inference-profile ARN is refused), 1-1,000 sources, and may page its
  results with ``nextToken``;
* ``bedrock-runtime`` ``InvokeModel`` with the model's own body (bearer keys and inference
  profiles work here): Cohere Rerank 3.5 wants ``api_version`` >= 2.

Nothing here does I/O, so the unit tests drive it directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AMAZON_RERANK_MODEL_ID",
    "COHERE_RERANK_MODEL_ID",
    "MAX_QUERY_CHARS",
    "MAX_SOURCES",
    "MAX_TEXT_CHARS",
    "OFFERED_REGIONS",
    "ModelRef",
    "foundation_model_arn",
    "invoke_body",
    "merge",
    "parse_invoke_results",
    "parse_model",
    "partition_of",
    "rerank_request",
    "split",
]

AMAZON_RERANK_MODEL_ID = "amazon.rerank-v1:0"
COHERE_RERANK_MODEL_ID = "cohere.rerank-v3-5:0"
MAX_SOURCES = 1_000
"""Sources per ``Rerank`` request (the service model's ``RerankSourcesList`` max)."""
MAX_TEXT_CHARS = 32_000
"""Characters per query and per source text (``RerankTextDocumentTextString`` max)."""
MAX_QUERY_CHARS = MAX_TEXT_CHARS

# docs.aws.amazon.com/bedrock/latest/userguide/rerank-supported.html (checked December 2026).
OFFERED_REGIONS: dict[str, tuple[str, ...]] = {
    AMAZON_RERANK_MODEL_ID: ("ap-northeast-1", "ca-central-1", "eu-central-1", "us-west-2"),
    COHERE_RERANK_MODEL_ID: (
        "ap-northeast-1",
        "ca-central-1",
        "eu-central-1",
        "us-east-1",
        "us-west-2",
    ),
}
"""Regions where each rerank model is offered, as AWS lists them (a hint for error messages,
never a gate: a region added later still works)."""

Provider = Literal["amazon", "cohere"]

_ARN = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z-]+)?):bedrock:(?P<region>[a-z0-9-]*):(?P<account>\d{12})?:"
    r"(?P<kind>[a-z-]+)/(?P<resource>.+)"
)
_GEO_PROFILE = re.compile(r"(?:us|eu|apac|jp|au|ca|us-gov|global)\.(?P<model>.+)")


def partition_of(region: str) -> str:
    """The ARN partition of ``region`` (``aws``, ``aws-cn``, ``aws-us-gov``...)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-iso-"):
        return "aws-iso"
    if region.startswith("us-isob-"):
        return "aws-iso-b"
    return "aws"


def foundation_model_arn(model_id: str, region: str) -> str:
    """``arn:<partition>:bedrock:<region>::foundation-model/<model_id>``, what ``Rerank`` takes."""
    return f"arn:{partition_of(region)}:bedrock:{region}::foundation-model/{model_id}"


@dataclass(frozen=True)
class ModelRef:
    """What a ``model_id`` argument names.

    Attributes:
        model: The foundation model id when known (``cohere.rerank-v3-5:0``), else ``""``
            (an application inference profile hides it).
        provider: ``"amazon"`` or ``"cohere"`` (which InvokeModel body to send), or None.
        invoke_id: What ``InvokeModel`` gets as ``modelId`` (the id or ARN as given).
        rerank_arn: What ``Rerank`` gets as ``modelArn``; None for inference profiles, which
            ``Rerank`` refuses.
        region: The region named by an ARN, else None.
    """

    model: str
    provider: Provider | None
    invoke_id: str
    rerank_arn: str | None
    region: str | None


def _provider(model: str) -> Provider | None:
    if model.startswith("cohere."):
        return "cohere"
    if model.startswith("amazon."):
        return "amazon"
    return None


def parse_model(model_id: str, region: str, provider: Provider | None = None) -> ModelRef:
    """Resolve a model id or ARN for ``region``.

    Args:
        model_id: ``amazon.rerank-v1:0``, ``cohere.rerank-v3-5:0``, a foundation-model ARN, a
            cross-Region inference-profile id or ARN, or an application inference-profile ARN.
        region: The client's region (builds the foundation-model ARN of a bare id).
        provider: Overrides the provider read from the id (needed for application
            inference profiles, whose ARN does not name the model).

    Returns:
        The :class:`ModelRef`.

    Raises:
        ValueError: An empty id, or an ARN that is not a Bedrock model or profile ARN.
    """
    model_id = model_id.strip()
    if not model_id:
        msg = "model_id must not be empty: use amazon.rerank-v1:0 or cohere.rerank-v3-5:0"
        raise ValueError(msg)
    if model_id.startswith("arn:"):
        found = _ARN.fullmatch(model_id)
        if found is None:
            msg = (
                f"{model_id!r} is not a Bedrock model ARN: expected "
                "arn:aws:bedrock:<region>::foundation-model/<model-id> or an inference-profile ARN"
            )
            raise ValueError(msg)
        kind, resource, arn_region = found["kind"], found["resource"], found["region"] or None
        if kind == "foundation-model":
            return ModelRef(
                resource, provider or _provider(resource), model_id, model_id, arn_region
            )
        if kind in ("inference-profile", "application-inference-profile"):
            geo = _GEO_PROFILE.fullmatch(resource) if kind == "inference-profile" else None
            model = geo["model"] if geo else ""
            return ModelRef(model, provider or _provider(model), model_id, None, arn_region)
        msg = f"{model_id!r} names a Bedrock {kind}, not a model or an inference profile"
        raise ValueError(msg)
    geo = _GEO_PROFILE.fullmatch(model_id)
    if geo is not None and _provider(geo["model"]) is not None:  # a cross-Region profile id
        model = geo["model"]
        return ModelRef(model, provider or _provider(model), model_id, None, None)
    arn = foundation_model_arn(model_id, region)
    return ModelRef(model_id, provider or _provider(model_id), model_id, arn, None)


def rerank_request(
    query: str,
    texts: Sequence[str],
    model_arn: str,
    number_of_results: int,
    additional_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``bedrock-agent-runtime`` ``rerank`` (without ``nextToken``)."""
    model_configuration: dict[str, Any] = {"modelArn": model_arn}
    if additional_fields:
        model_configuration["additionalModelRequestFields"] = dict(additional_fields)
    return {
        "queries": [{"type": "TEXT", "textQuery": {"text": query}}],
        "sources": [
            {
                "type": "INLINE",
                "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}},
            }
            for t in texts
        ],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "numberOfResults": number_of_results,
                "modelConfiguration": model_configuration,
            },
        },
    }


def invoke_body(
    provider: Provider,
    query: str,
    texts: Sequence[str],
    top_n: int,
    additional_fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The InvokeModel body of a rerank model (Cohere adds ``api_version: 2``)."""
    body: dict[str, Any] = {"query": query, "documents": list(texts), "top_n": top_n}
    if provider == "cohere":
        body["api_version"] = 2
    body.update(additional_fields or {})
    return body


def parse_invoke_results(data: Any) -> list[tuple[int, float]]:
    """``(index, score)`` pairs of an InvokeModel rerank response.

    Raises:
        ValueError: The body has no ``results`` list of ``{index, relevance_score}``.
    """
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        msg = "the rerank response has no 'results' list"
        raise ValueError(msg)
    pairs = []
    for item in results:
        try:
            pairs.append((int(item["index"]), float(item["relevance_score"])))
        except (KeyError, TypeError, ValueError):
            msg = "a rerank result lacks an integer 'index' or a numeric 'relevance_score'"
            raise ValueError(msg) from None
    return pairs


def split(count: int, size: int = MAX_SOURCES) -> list[range]:
    """Consecutive index ranges of at most ``size`` covering ``range(count)``."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def merge(
    batches: Iterable[tuple[Sequence[int], Sequence[tuple[int, float]]]],
    top_n: int | None,
) -> list[tuple[int, float]]:
    """Merge per-batch results into one ranking: highest score first, ties by input position.

    Args:
        batches: ``(positions, results)`` per request, where ``positions[i]`` is the input
            position of the request's ``i``-th source and results are ``(i, score)``.
        top_n: How many to keep (None: all).

    Returns:
        ``(input position, score)`` pairs.

    Raises:
        ValueError: A result names an index outside its request.
    """
    best: dict[int, float] = {}
    for positions, results in batches:
        for index, score in results:
            if not 0 <= index < len(positions):
                msg = f"the rerank response names source {index} of a request of {len(positions)}"
                raise ValueError(msg)
            position = positions[index]
            best[position] = max(score, best.get(position, score))
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return ranked if top_n is None else ranked[:top_n]
