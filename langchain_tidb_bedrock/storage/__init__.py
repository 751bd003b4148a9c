"""Key-value stores on TiDB: ``TiDBByteStore`` (bytes) and ``TiDBDocStore`` (documents)."""

from langchain_tidb_bedrock.storage.byte_store import TiDBByteStore
from langchain_tidb_bedrock.storage.doc_store import TiDBDocStore

__all__ = ["TiDBByteStore", "TiDBDocStore"]
