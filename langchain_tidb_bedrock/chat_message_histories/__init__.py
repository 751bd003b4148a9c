"""Chat message history in TiDB: ``TiDBChatMessageHistory``."""

from langchain_tidb_bedrock.chat_message_histories.base import TiDBChatMessageHistory

__all__ = ["TiDBChatMessageHistory"]
