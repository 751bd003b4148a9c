"""Retrieval-augmented generation on TiDB vector search and Amazon Bedrock for LangChain.

Names resolve lazily, so ``from langchain_tidb_bedrock import TiDBVectorStore`` does not import
boto3, langchain-aws or the text splitters.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_tidb_bedrock.aws_config import aws_is_configured
    from langchain_tidb_bedrock.caches.exact import TiDBCache
    from langchain_tidb_bedrock.caches.semantic import TiDBSemanticCache
    from langchain_tidb_bedrock.chains.prompts import (
        CONDENSE_QUESTION_PROMPT,
        RAG_PROMPT,
        format_docs,
    )
    from langchain_tidb_bedrock.chains.rag import create_rag_chain
    from langchain_tidb_bedrock.chat_message_histories.base import TiDBChatMessageHistory
    from langchain_tidb_bedrock.chat_models.llama import DEFAULT_LLM_MODEL_ID, create_llama3_chat
    from langchain_tidb_bedrock.db.connection import tidb_url_from_env
    from langchain_tidb_bedrock.db.engine import TiDBEngine
    from langchain_tidb_bedrock.document_compressors.rerank import BedrockReranker
    from langchain_tidb_bedrock.document_loaders.base import TiDBLoader
    from langchain_tidb_bedrock.embeddings.batch import BedrockBatchEmbeddings
    from langchain_tidb_bedrock.embeddings.titan import (
        DEFAULT_EMBEDDING_MODEL_ID,
        BedrockTitanEmbeddings,
    )
    from langchain_tidb_bedrock.errors import (
        AnswerStreamError,
        BedrockConfigError,
        BedrockEmbeddingError,
        BedrockModelUnavailableError,
        ConnectionConfigError,
        FilterError,
        InvalidInputError,
        KeywordIndexMissingError,
        PartialEmbeddingError,
        TiDBBedrockError,
        TiFlashUnavailableError,
        WriteError,
    )
    from langchain_tidb_bedrock.indexing.record_manager import TiDBRecordManager
    from langchain_tidb_bedrock.ingest.pipeline import IngestSummary, ingest_paths
    from langchain_tidb_bedrock.langgraph.checkpoint import TiDBSaver
    from langchain_tidb_bedrock.langgraph.retrieval import (
        TiDBRetrievalMiddleware,
        create_tidb_retriever_tool,
    )
    from langchain_tidb_bedrock.langgraph.store import TiDBStore
    from langchain_tidb_bedrock.storage.byte_store import TiDBByteStore
    from langchain_tidb_bedrock.storage.doc_store import TiDBDocStore
    from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore
    from langchain_tidb_bedrock.vectorstores.indexes import ExplainResult
    from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy
    from langchain_tidb_bedrock.vectorstores.translator import TiDBTranslator

    __version__: str

_EXPORTS: dict[str, str] = {
    "CONDENSE_QUESTION_PROMPT": "chains.prompts",
    "RAG_PROMPT": "chains.prompts",
    "format_docs": "chains.prompts",
    "create_rag_chain": "chains.rag",
    "DEFAULT_LLM_MODEL_ID": "chat_models.llama",
    "create_llama3_chat": "chat_models.llama",
    "IngestSummary": "ingest.pipeline",
    "ingest_paths": "ingest.pipeline",
    "DEFAULT_EMBEDDING_MODEL_ID": "embeddings.titan",
    "BedrockTitanEmbeddings": "embeddings.titan",
    "BedrockBatchEmbeddings": "embeddings.batch",
    "BedrockReranker": "document_compressors.rerank",
    "BedrockModelUnavailableError": "errors",
    "AnswerStreamError": "errors",
    "BedrockConfigError": "errors",
    "PartialEmbeddingError": "errors",
    "WriteError": "errors",
    "BedrockEmbeddingError": "errors",
    "ConnectionConfigError": "errors",
    "FilterError": "errors",
    "TiDBBedrockError": "errors",
    "TiFlashUnavailableError": "errors",
    "TiDBVectorStore": "vectorstores.base",
    "tidb_url_from_env": "db.connection",
    "TiDBEngine": "db.engine",
    "TiDBChatMessageHistory": "chat_message_histories.base",
    "TiDBLoader": "document_loaders.base",
    "InvalidInputError": "errors",
    "KeywordIndexMissingError": "errors",
    "ExplainResult": "vectorstores.indexes",
    "DistanceStrategy": "vectorstores.schema",
    "TiDBTranslator": "vectorstores.translator",
    "aws_is_configured": "aws_config",
    "TiDBCache": "caches.exact",
    "TiDBSemanticCache": "caches.semantic",
    "TiDBRecordManager": "indexing.record_manager",
    "TiDBByteStore": "storage.byte_store",
    "TiDBDocStore": "storage.doc_store",
    "TiDBSaver": "langgraph.checkpoint",
    "TiDBStore": "langgraph.store",
    "TiDBRetrievalMiddleware": "langgraph.retrieval",
    "create_tidb_retriever_tool": "langgraph.retrieval",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata costs tens of milliseconds: on first use
        from importlib import metadata

        try:
            version = metadata.version(__package__ or __name__)
        except metadata.PackageNotFoundError:  # running from a source tree without an install
            version = ""
        globals()[name] = version
        return version
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CONDENSE_QUESTION_PROMPT",
    "AnswerStreamError",
    "PartialEmbeddingError",
    "WriteError",
    "DEFAULT_EMBEDDING_MODEL_ID",
    "DEFAULT_LLM_MODEL_ID",
    "RAG_PROMPT",
    "BedrockBatchEmbeddings",
    "BedrockConfigError",
    "BedrockEmbeddingError",
    "BedrockTitanEmbeddings",
    "BedrockModelUnavailableError",
    "BedrockReranker",
    "ConnectionConfigError",
    "DistanceStrategy",
    "ExplainResult",
    "FilterError",
    "IngestSummary",
    "InvalidInputError",
    "KeywordIndexMissingError",
    "TiDBBedrockError",
    "TiDBByteStore",
    "TiDBCache",
    "TiDBChatMessageHistory",
    "TiDBDocStore",
    "TiDBEngine",
    "TiDBLoader",
    "TiDBRecordManager",
    "TiDBRetrievalMiddleware",
    "TiDBSaver",
    "TiDBSemanticCache",
    "TiDBStore",
    "TiDBTranslator",
    "TiDBVectorStore",
    "TiFlashUnavailableError",
    "__version__",
    "aws_is_configured",
    "create_llama3_chat",
    "create_rag_chain",
    "create_tidb_retriever_tool",
    "format_docs",
    "ingest_paths",
    "tidb_url_from_env",
]
