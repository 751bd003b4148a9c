"""Amazon Titan Text Embeddings V2 on Bedrock."""

from langchain_tidb_bedrock.embeddings.titan import (
    DEFAULT_EMBEDDING_MODEL_ID,
    BedrockTitanEmbeddings,
    PartialEmbeddingError,
)

__all__ = ["DEFAULT_EMBEDDING_MODEL_ID", "BedrockTitanEmbeddings", "PartialEmbeddingError"]
