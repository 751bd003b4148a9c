"""Retrieval-augmented generation on TiDB vector search and Amazon Bedrock for LangChain."""

from importlib import metadata
from typing import Any

from langchain_tidb_bedrock.filters import FilterError
from langchain_tidb_bedrock.indexes import ExplainResult, TiFlashUnavailableError
from langchain_tidb_bedrock.schema import DistanceStrategy
from langchain_tidb_bedrock.vectorstores import TiDBVectorStore

try:
    __version__ = metadata.version(__package__ or __name__)
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = ""

__all__ = [
    "DistanceStrategy",
    "ExplainResult",
    "FilterError",
    "TiDBVectorStore",
    "TiFlashUnavailableError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
