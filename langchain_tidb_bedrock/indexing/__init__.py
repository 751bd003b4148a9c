"""LangChain indexing on TiDB: ``TiDBRecordManager`` for ``index()``."""

from langchain_tidb_bedrock.indexing.record_manager import TiDBRecordManager

__all__ = ["TiDBRecordManager"]
