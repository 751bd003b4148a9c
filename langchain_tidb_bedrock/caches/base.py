"""The shared body of ``TiDBCache`` and ``TiDBSemanticCache``: a ``BaseCache`` on one TiDB table.

Subclasses say how a lookup and an update run; the table, the exact-key read, clearing and
the sync and async ``BaseCache`` methods live here once.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from sqlalchemy.engine import URL

from langchain_tidb_bedrock.caches._codec import key_hash
from langchain_tidb_bedrock.caches._table import CacheTable
from langchain_tidb_bedrock.db.component import TiDBComponent
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.identifiers import validate_identifier
from langchain_tidb_bedrock.db.runner import Op, Rows
from langchain_tidb_bedrock.db.tables import NOT_EXPIRED, read_or_none, ttl_microseconds

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

__all__ = ["TiDBCacheBase"]


class TiDBCacheBase(TiDBComponent, BaseCache):
    """An LLM cache on a TiDB table; see :class:`TiDBCache` for the details."""

    def __init__(
        self,
        *,
        table_name: str,
        ttl: float | timedelta | None,
        columns: Sequence[str],
        engine: TiDBEngine | sa.Engine | None,
        connection_string: str | URL | None,
        tls: bool | None,
        ca_path: str | None,
        engine_args: Mapping[str, Any] | None,
    ) -> None:
        """Check the table name and ttl, then pick the engine (no database call)."""
        self.table_name = validate_identifier(table_name)
        self._ttl_us = ttl_microseconds(ttl)
        self._table = CacheTable(self.table_name, columns)
        super().__init__(
            engine=engine,
            connection_string=connection_string,
            tls=tls,
            ca_path=ca_path,
            engine_args=engine_args,
        )
        self._exact_sql = (
            f"SELECT generations FROM {self._table.t} "
            f"WHERE llm_hash = %(l)s AND prompt_hash = %(p)s AND {NOT_EXPIRED}"
        )
        self._update_sql = self._table.upsert_sql(self._ttl_us)

    # ------------------------------------------------------------------ operations

    @property
    def _embeddings(self) -> Embeddings | None:
        """The embedding model the operations call (none for the exact cache)."""
        return None

    @abstractmethod
    def _op_lookup(self, prompt: str, llm_string: str) -> Op[RETURN_VAL_TYPE | None]: ...

    @abstractmethod
    def _op_update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> Op[None]: ...

    def _op_exact(self, llm_hash: bytes, prompt: str) -> Op[Rows | None]:
        """The live row of this exact prompt and configuration; None when there is no table."""
        params = {"l": llm_hash, "p": key_hash(prompt, "prompt")}
        return read_or_none(self._exact_sql, params)

    def _op_clear(self, kwargs: dict[str, Any]) -> Op[None]:
        llm_string = kwargs.get("llm_string")
        yield from self._table.op_clear(
            None if llm_string is None else key_hash(llm_string, "llm_string")
        )
        return None

    # ------------------------------------------------------------------ BaseCache

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The generations cached for this prompt (or a semantic cache's nearest), or None."""
        return self._run(self._op_lookup(prompt, llm_string), self._embeddings)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store (or replace) the generations for this prompt and model configuration."""
        self._run(self._op_update(prompt, llm_string, return_val), self._embeddings)

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry, or only those of ``llm_string=...`` when given."""
        self._run(self._op_clear(kwargs))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The generations cached for this prompt (or a semantic cache's nearest), or None."""
        return await self._arun(self._op_lookup(prompt, llm_string), self._embeddings)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store (or replace) the generations for this prompt and model configuration."""
        await self._arun(self._op_update(prompt, llm_string, return_val), self._embeddings)

    async def aclear(self, **kwargs: Any) -> None:
        """Delete every entry, or only those of ``llm_string=...`` when given."""
        await self._arun(self._op_clear(kwargs))
