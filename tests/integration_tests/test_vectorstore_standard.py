"""LangChain's own VectorStore suite, unmodified, against a real TiDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_tidb_bedrock import TiDBVectorStore


class TestTiDBVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tidb_url: str) -> Iterator[VectorStore]:  # type: ignore[override]
        store = TiDBVectorStore(
            self.get_embeddings(),
            connection_string=tidb_url,
            table_name=f"lc_std_{uuid.uuid4().hex[:12]}",
        )
        try:
            yield store
        finally:
            store.drop_table()
            store.close()
