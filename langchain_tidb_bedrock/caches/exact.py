"""``TiDBCache``: LangChain's exact LLM cache (prompt + llm_string) on a TiDB table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from langchain_core.caches import RETURN_VAL_TYPE
from sqlalchemy.engine import URL

from langchain_tidb_bedrock.caches._codec import decode_generations, encode_generations, key_hash
from langchain_tidb_bedrock.caches._table import check_size
from langchain_tidb_bedrock.caches.base import TiDBCacheBase
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.runner import Op

__all__ = ["TiDBCache"]


class TiDBCache(TiDBCacheBase):
    """Exact LLM cache on TiDB: a repeated prompt to the same model is answered from the table.

    Setup:
        Point it at TiDB like the vector store (``engine=`` to share one, ``connection_string=``,
        or the ``TIDB_*`` environment), then install it for every model:

        ```python
        from langchain_core.globals import set_llm_cache

        from langchain_tidb_bedrock import TiDBCache, TiDBEngine

        set_llm_cache(TiDBCache(engine=TiDBEngine.from_env()))
        ```

    Key init args:
        engine: TiDBEngine | None
            A shared engine (never closed by the cache).
        connection_string: str | None
            A TiDB URL for a private engine; defaults to the ``TIDB_*`` environment.
        table_name: str
            The table (default ``langchain_llm_cache``), created on the first update.
        ttl: float | timedelta | None
            How long an entry answers (seconds); None keeps entries until cleared. Expired rows
            are skipped at once and deleted later by TiDB's TTL job.

    Instantiate:
        ```python
        from langchain_tidb_bedrock import TiDBCache, create_llama3_chat

        llm = create_llama3_chat(cache=TiDBCache(ttl=3600))  # this model only
        llm.invoke("What is TiDB?")  # Bedrock
        llm.invoke("What is TiDB?")  # the cache, no Bedrock call
        ```

    Keys:
        An entry is keyed by SHA-256 of the prompt and of the ``llm_string`` (the model and its
        parameters), so another model or temperature never reads it. ``update`` upserts.

    Clear:
        ```python
        cache.clear()  # everything
        cache.clear(llm_string=llm_string)  # one model configuration
        ```

    Async:
        ``alookup``, ``aupdate`` and ``aclear`` run natively on the async driver.
    """

    def __init__(
        self,
        *,
        engine: TiDBEngine | sa.Engine | None = None,
        connection_string: str | URL | None = None,
        table_name: str = "langchain_llm_cache",
        ttl: float | timedelta | None = None,
        tls: bool | None = None,
        ca_path: str | None = None,
        engine_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the cache; no database call happens here.

        Args:
            engine: a shared :class:`TiDBEngine` (or SQLAlchemy engine).
            connection_string: a TiDB URL for a private engine (closed by :meth:`close`).
            table_name: the cache table.
            ttl: seconds (or a timedelta) an entry stays valid; None for no expiry.
            tls: force TLS on or off for a private engine (default on for remote hosts).
            ca_path: CA bundle for a private engine's TLS.
            engine_args: extra ``create_engine`` arguments for a private engine.
        """
        super().__init__(
            table_name=table_name,
            ttl=ttl,
            columns=[],
            engine=engine,
            connection_string=connection_string,
            tls=tls,
            ca_path=ca_path,
            engine_args=engine_args,
        )

    def __repr__(self) -> str:
        return f"TiDBCache(table_name={self.table_name!r})"

    # ------------------------------------------------------------------ operations

    def _op_lookup(self, prompt: str, llm_string: str) -> Op[RETURN_VAL_TYPE | None]:
        rows = yield from self._op_exact(key_hash(llm_string, "llm_string"), prompt)
        return decode_generations(bytes(rows[0][0])) if rows else None

    def _op_update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> Op[None]:
        row = (
            key_hash(llm_string, "llm_string"),
            key_hash(prompt, "prompt"),
            check_size(encode_generations(return_val)),
        )
        yield from self._table.op_write((self._update_sql, [row]))
        return None
