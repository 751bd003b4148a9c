"""Document loaders: ``TiDBLoader`` (rows of a TiDB query as documents)."""

from langchain_tidb_bedrock.document_loaders.base import TiDBLoader

__all__ = ["TiDBLoader"]
