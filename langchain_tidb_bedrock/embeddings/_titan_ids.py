"""Which embedding model ids the package can use: Titan Text Embeddings V2 only.

Kept apart from ``titan`` (which imports langchain-aws and numpy) so the CLI can check its
options without importing them.
"""

from __future__ import annotations

import re

from langchain_tidb_bedrock.errors import UnsupportedModelError

__all__ = ["DEFAULT_EMBEDDING_MODEL_ID", "VALID_DIMENSIONS", "check_embedding_model_id"]

DEFAULT_EMBEDDING_MODEL_ID = "amazon.titan-embed-text-v2:0"
VALID_DIMENSIONS = (256, 512, 1024)
SUPPORTED = (
    f"only Titan Text Embeddings V2 ({DEFAULT_EMBEDDING_MODEL_ID}) is supported for embeddings"
)
# The bare id, optionally behind a geographic prefix (as cross-Region profile ids are written).
_TITAN_V2 = re.compile(r"(?:[a-z]{2,6}\.)?amazon\.titan-embed-text-v2:0")
_ARN = re.compile(r"arn:aws[a-z-]*:bedrock:[^:]*:[^:]*:([a-z-]+)/(.+)")


def check_embedding_model_id(model_id: str) -> str:
    """Return ``model_id`` if it can be Titan Text Embeddings V2, without asking Bedrock.

    A bare id or a foundation-model ARN must name Titan V2; other ARNs (inference profiles,
    provisioned or custom models) cannot be told apart offline and pass, for Bedrock to judge.

    Raises:
        UnsupportedModelError: The id is plainly another model (``amazon.titan-embed-text-v1``,
            a Cohere model, a typo).
    """
    arn = _ARN.fullmatch(model_id)
    if arn is not None and arn.group(1) != "foundation-model":
        return model_id
    bare = arn.group(2) if arn is not None else model_id
    if _TITAN_V2.fullmatch(bare):
        return model_id
    msg = f"{SUPPORTED}, got {model_id!r}"
    raise UnsupportedModelError(model_id, msg)
