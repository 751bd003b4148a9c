"""The prebuilt retrieval chain and its prompts."""

from langchain_tidb_bedrock.chains.prompts import CONDENSE_QUESTION_PROMPT, RAG_PROMPT, format_docs
from langchain_tidb_bedrock.chains.rag import create_rag_chain

__all__ = ["CONDENSE_QUESTION_PROMPT", "RAG_PROMPT", "create_rag_chain", "format_docs"]
