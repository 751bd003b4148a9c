"""The floor every TiDB component stands on: ``TiDBEngine``, the operation runner, URL and TLS.

Nothing here imports the components above it (vector store, chat history, caches, ...).
"""

from langchain_tidb_bedrock.db.engine import TiDBEngine

__all__ = ["TiDBEngine"]
