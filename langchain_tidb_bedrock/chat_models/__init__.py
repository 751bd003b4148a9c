"""Meta Llama 3 chat models on Bedrock."""

from langchain_tidb_bedrock.chat_models.llama import (
    DEFAULT_EMBEDDING_MODEL_ID,
    DEFAULT_LLM_MODEL_ID,
    create_llama3_chat,
)

__all__ = ["DEFAULT_EMBEDDING_MODEL_ID", "DEFAULT_LLM_MODEL_ID", "create_llama3_chat"]
