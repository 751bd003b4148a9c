"""LLM caches on TiDB: ``TiDBCache`` (exact) and ``TiDBSemanticCache`` (nearest prompt)."""

from langchain_tidb_bedrock.caches.exact import TiDBCache
from langchain_tidb_bedrock.caches.semantic import TiDBSemanticCache

__all__ = ["TiDBCache", "TiDBSemanticCache"]
