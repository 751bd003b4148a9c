"""Table and index administration for ``TiDBVectorStore``, sync and async.

A mixin so that ``base.py`` holds the LangChain ``VectorStore`` API; these are the store's own
operations on its table: create, drop, count, vector and metadata indexes, plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.runner import Op
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.vectorstores import documents, indexes
from langchain_tidb_bedrock.vectorstores.metadata_index import declare
from langchain_tidb_bedrock.vectorstores.models import vector_table
from langchain_tidb_bedrock.vectorstores.table import TableState

__all__ = ["TableAdmin"]

T = TypeVar("T")


class TableAdmin:
    """Operations on the store's table and its indexes (mixed into ``TiDBVectorStore``)."""

    table_name: str
    _table: TableState
    _tidb: TiDBEngine

    @property
    def engine(self) -> sa.Engine:  # pragma: no cover - provided by TiDBVectorStore
        """The sync SQLAlchemy engine."""
        raise NotImplementedError

    def _run(self, op: Op[T]) -> T:  # pragma: no cover - provided by TiDBVectorStore
        raise NotImplementedError

    async def _arun(self, op: Op[T]) -> T:  # pragma: no cover - provided by TiDBVectorStore
        raise NotImplementedError

    # ------------------------------------------------------------------ table

    def create_table(self, dimension: int | None = None) -> None:
        """Create the table now (with the vector index where the server allows) if missing.

        Adding documents creates it anyway; this is for setting up ahead of time.

        Args:
            dimension: the vector size; defaults to ``embedding_dimension`` or the table's.

        Raises:
            ValueError: no dimension known, or it differs from the existing table's.
        """
        self._run(self._table.op_ensure(self._dimension_for_create(dimension)))

    async def acreate_table(self, dimension: int | None = None) -> None:
        """Async :meth:`create_table`."""
        await self._arun(self._table.op_ensure(self._dimension_for_create(dimension)))

    def _dimension_for_create(self, dimension: int | None) -> int:
        dim = dimension or self._table.dimension
        if dim is None:
            msg = "create_table() needs a dimension: pass it or set embedding_dimension"
            raise InvalidInputError(msg)
        return int(dim)

    def drop_table(self) -> None:
        """Drop the table (``DROP TABLE IF EXISTS``)."""
        self._run(indexes.op_drop_table(self._table))

    async def adrop_table(self) -> None:
        """Async :meth:`drop_table`."""
        await self._arun(indexes.op_drop_table(self._table))

    def count(self) -> int:
        """Number of stored documents (0 when the table does not exist yet)."""
        return self._run(documents.op_count(self._table))

    async def acount(self) -> int:
        """Async :meth:`count`."""
        return await self._arun(documents.op_count(self._table))

    # ------------------------------------------------------------------ index operations

    def create_vector_index(self) -> None:
        """Add the HNSW index for the store's metric (handles the TiFlash replica).

        Raises:
            TiFlashUnavailableError: the server has no TiFlash store.
            ValueError: the metric has no index, or the table does not exist yet.
        """
        self._run(indexes.op_create_vector_index(self._table, self._tidb.host))

    async def acreate_vector_index(self) -> None:
        """Async :meth:`create_vector_index`."""
        await self._arun(indexes.op_create_vector_index(self._table, self._tidb.host))

    def create_metadata_index(self, key: str, type: Any) -> bool:
        """Index one metadata key of the existing table (see ``indexed_metadata``).

        Args:
            key: the metadata field, as filters name it (``"tenant"``, ``"a.b"``).
            type: str, int, float or list[str].

        Returns:
            True when the index was added, False when the table already had it.

        Raises:
            ValueError: a bad key or type, no table yet, the key already indexed with another
                type, or stored values TiDB cannot index (e.g. a list key holding numbers).
        """
        return self._run(self._table.op_create_metadata_index(declare(key, type)))

    async def acreate_metadata_index(self, key: str, type: Any) -> bool:
        """Async :meth:`create_metadata_index`."""
        return await self._arun(self._table.op_create_metadata_index(declare(key, type)))

    @property
    def indexed_metadata(self) -> dict[str, str]:
        """Indexed metadata keys known so far (declared or found on the table): key -> type."""
        found = {**self._table.declared, **self._table.metadata_indexes}
        return {idx.key: idx.type for idx in found.values()}

    def vector_index_status(self) -> list[dict[str, Any]]:
        """Build progress rows from ``INFORMATION_SCHEMA.TIFLASH_INDEXES`` for this table.

        Done when ``ROWS_STABLE_NOT_INDEXED`` is 0 on every row.
        """
        return self._run(indexes.op_index_status(self._table))

    async def avector_index_status(self) -> list[dict[str, Any]]:
        """Async :meth:`vector_index_status`."""
        return await self._arun(indexes.op_index_status(self._table))

    def explain(self, query: str | Sequence[float], k: int = 4) -> indexes.ExplainResult:
        """Ask TiDB's optimiser whether the kNN query for ``query`` uses the vector index."""
        return self._run(indexes.op_explain(self._table, query, k, self.engine.dialect))

    async def aexplain(self, query: str | Sequence[float], k: int = 4) -> indexes.ExplainResult:
        """Async :meth:`explain`."""
        return await self._arun(indexes.op_explain(self._table, query, k, self.engine.dialect))

    def sqlalchemy_table(self, metadata: sa.MetaData | None = None) -> sa.Table:
        """The table as a SQLAlchemy model (tidb-vector's ``VectorType``), for your own queries.

        ``sa.select(t.c.id).order_by(t.c.embedding.cosine_distance(q)).limit(5)`` runs on the
        store's ``engine``; vectors go in and come back as lists of floats. Call it after the
        table exists (or with ``embedding_dimension`` set) so the column carries its size.
        """
        return vector_table(self.table_name, self._table.dimension, metadata)

    def knn_sql(self, k: int = 4) -> str:
        """The kNN statement this store sends (query vector as a placeholder), for inspection."""
        compiled = self._table.queries.knn("[0]", k).compile(dialect=self.engine.dialect)
        return str(compiled)
