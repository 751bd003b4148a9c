"""Document compressors: Amazon Bedrock rerank models."""

from langchain_tidb_bedrock.document_compressors.rerank import (
    AMAZON_RERANK_MODEL_ID,
    COHERE_RERANK_MODEL_ID,
    DEFAULT_RERANK_MODEL_ID,
    BedrockReranker,
)

__all__ = [
    "AMAZON_RERANK_MODEL_ID",
    "COHERE_RERANK_MODEL_ID",
    "DEFAULT_RERANK_MODEL_ID",
    "BedrockReranker",
]
