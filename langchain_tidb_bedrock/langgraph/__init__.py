"""LangGraph on TiDB (the ``[langgraph]`` extra): a checkpointer, a store, agent retrieval.

Importing ``langchain_tidb_bedrock`` never imports this folder; its names resolve lazily.
"""

from langchain_tidb_bedrock.langgraph.checkpoint import TiDBSaver
from langchain_tidb_bedrock.langgraph.retrieval import (
    RetrievalState,
    TiDBRetrievalMiddleware,
    create_tidb_retriever_tool,
)
from langchain_tidb_bedrock.langgraph.store import TiDBIndexConfig, TiDBStore

__all__ = [
    "RetrievalState",
    "TiDBIndexConfig",
    "TiDBRetrievalMiddleware",
    "TiDBSaver",
    "TiDBStore",
    "create_tidb_retriever_tool",
]
