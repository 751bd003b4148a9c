"""``TiDBDocStore``: ``BaseStore[str, Document]`` on a TiDB table (for parent documents)."""

from __future__ import annotations

import orjson
from langchain_core.documents import Document

from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.storage.base import TiDBKeyValueStore

__all__ = ["TiDBDocStore"]


class TiDBDocStore(TiDBKeyValueStore[Document]):
    """Document store on TiDB: the ``docstore`` of parent-document and multi-vector retrievers.

    Setup:
        Point it at TiDB like the vector store (``engine=`` to share one, ``connection_string=``,
        or the ``TIDB_*`` environment).

    Key init args:
        engine: TiDBEngine | None
            A shared engine (never closed by the store).
        connection_string: str | None
            A TiDB URL for a private engine; defaults to the ``TIDB_*`` environment.
        table_name: str
            The table (default ``langchain_doc_store``), created on the first write.
        namespace: str
            Several stores can share a table, one namespace each (default ``"default"``).
        max_value_bytes: int
            The largest stored document (its JSON), by default just under TiDB's 6 MiB row
            limit; parents far over 64 KB are fine.

    Instantiate:
        ```python
        from langchain_classic.retrievers import ParentDocumentRetriever
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from langchain_tidb_bedrock import TiDBDocStore, TiDBEngine, TiDBVectorStore

        engine = TiDBEngine.from_env()
        retriever = ParentDocumentRetriever(
            vectorstore=TiDBVectorStore(embeddings, engine=engine, table_name="chunks"),
            docstore=TiDBDocStore(engine=engine, namespace="parents"),
            child_splitter=RecursiveCharacterTextSplitter(chunk_size=400),
        )
        retriever.add_documents(docs)
        retriever.invoke("question")  # whole parent documents
        ```

    Values:
        A ``Document`` is stored as JSON (``page_content``, ``metadata``, ``id``); metadata must
        be JSON-serialisable (tuples come back as lists). Anything else raises
        ``InvalidInputError`` naming its position, and nothing is written.

    Async:
        ``amget``, ``amset``, ``amdelete`` and ``ayield_keys`` run natively on the async driver.
    """

    _default_table = "langchain_doc_store"

    def _encode(self, value: Document, position: int) -> bytes:
        if not isinstance(value, Document):
            msg = f"the value at position {position} is a {type(value).__name__}, not a Document"
            raise InvalidInputError(msg)
        body = {"page_content": value.page_content, "metadata": value.metadata, "id": value.id}
        try:
            return orjson.dumps(body)
        except TypeError as exc:
            msg = f"the metadata of the Document at position {position} is not JSON: {exc}"
            raise InvalidInputError(msg) from None

    def _decode(self, raw: bytes) -> Document:
        body = orjson.loads(raw)
        return Document(page_content=body["page_content"], metadata=body["metadata"], id=body["id"])
