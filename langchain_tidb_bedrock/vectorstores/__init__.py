"""The TiDB vector store and its internals (engines, table state, writes, search, filters)."""

from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore
from langchain_tidb_bedrock.vectorstores.hybrid import (
    TiDBVectorStoreRetriever,
    reciprocal_rank_fusion,
    weighted_sum_ranking,
)

__all__ = [
    "TiDBVectorStore",
    "TiDBVectorStoreRetriever",
    "reciprocal_rank_fusion",
    "weighted_sum_ranking",
]
