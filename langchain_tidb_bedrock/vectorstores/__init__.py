"""The TiDB vector store and its internals (engines, table state, writes, search, filters)."""

from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

__all__ = ["TiDBVectorStore"]
