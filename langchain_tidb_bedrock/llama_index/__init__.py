"""LlamaIndex integration (optional extra: ``pip install 'langchain-tidb-bedrock[llama-index]'``).

The vector store, Titan embedding, Llama 3 LLM and query engine for LlamaIndex, on the same
engine and operations as the LangChain components. Nothing here is imported by
``import langchain_tidb_bedrock``; names below load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra installs it
    msg = (
        "langchain_tidb_bedrock.llama_index needs llama-index-core: "
        "pip install 'langchain-tidb-bedrock[llama-index]'"
    )
    raise ImportError(msg) from exc

if TYPE_CHECKING:
    from langchain_tidb_bedrock.llama_index.embeddings import BedrockTitanEmbedding
    from langchain_tidb_bedrock.llama_index.filters import to_filter_dict
    from langchain_tidb_bedrock.llama_index.llms import create_llama3_llm
    from langchain_tidb_bedrock.llama_index.query_engine import (
        TiDBQueryEngine,
        create_query_engine,
        default_qa_prompt,
    )
    from langchain_tidb_bedrock.llama_index.vector_store import TiDBVectorStore

_EXPORTS: dict[str, str] = {
    "BedrockTitanEmbedding": "embeddings",
    "to_filter_dict": "filters",
    "create_llama3_llm": "llms",
    "TiDBQueryEngine": "query_engine",
    "create_query_engine": "query_engine",
    "default_qa_prompt": "query_engine",
    "TiDBVectorStore": "vector_store",
}

__all__ = [
    "BedrockTitanEmbedding",
    "TiDBQueryEngine",
    "TiDBVectorStore",
    "create_llama3_llm",
    "create_query_engine",
    "default_qa_prompt",
    "to_filter_dict",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
