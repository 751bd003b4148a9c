"""Retrieval-augmented generation on TiDB vector search and Amazon Bedrock for LangChain."""

from importlib import metadata

from langchain_tidb_bedrock.aws_config import BedrockConfigError, aws_is_configured
from langchain_tidb_bedrock.chains import create_rag_chain
from langchain_tidb_bedrock.chat_models import (
    DEFAULT_EMBEDDING_MODEL_ID,
    DEFAULT_LLM_MODEL_ID,
    create_llama3_chat,
)
from langchain_tidb_bedrock.connection import ConnectionConfigError, tidb_url_from_env
from langchain_tidb_bedrock.embeddings import BedrockEmbeddingError, BedrockTitanEmbeddings
from langchain_tidb_bedrock.filters import FilterError
from langchain_tidb_bedrock.indexes import ExplainResult, TiFlashUnavailableError
from langchain_tidb_bedrock.ingest import IngestSummary, ingest_paths
from langchain_tidb_bedrock.prompts import CONDENSE_QUESTION_PROMPT, RAG_PROMPT, format_docs
from langchain_tidb_bedrock.schema import DistanceStrategy
from langchain_tidb_bedrock.translator import TiDBTranslator
from langchain_tidb_bedrock.vectorstores import TiDBVectorStore

try:
    __version__ = metadata.version(__package__ or __name__)
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = ""

__all__ = [
    "CONDENSE_QUESTION_PROMPT",
    "DEFAULT_EMBEDDING_MODEL_ID",
    "DEFAULT_LLM_MODEL_ID",
    "RAG_PROMPT",
    "BedrockConfigError",
    "BedrockEmbeddingError",
    "BedrockTitanEmbeddings",
    "ConnectionConfigError",
    "DistanceStrategy",
    "ExplainResult",
    "FilterError",
    "IngestSummary",
    "TiDBTranslator",
    "TiDBVectorStore",
    "TiFlashUnavailableError",
    "__version__",
    "aws_is_configured",
    "create_llama3_chat",
    "create_rag_chain",
    "format_docs",
    "ingest_paths",
    "tidb_url_from_env",
]
