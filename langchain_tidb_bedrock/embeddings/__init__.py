"""Amazon Titan Text Embeddings V2 on Bedrock.

Names resolve on first use, so importing a light submodule (``_titan_ids``) does not import
langchain-aws and numpy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_tidb_bedrock.embeddings.titan import (
        DEFAULT_EMBEDDING_MODEL_ID,
        BedrockTitanEmbeddings,
        PartialEmbeddingError,
    )

__all__ = ["DEFAULT_EMBEDDING_MODEL_ID", "BedrockTitanEmbeddings", "PartialEmbeddingError"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(import_module(f"{__name__}.titan"), name)
