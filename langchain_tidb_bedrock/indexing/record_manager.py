"""``TiDBRecordManager``: LangChain's record manager (for ``index()``) on a TiDB table."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from langchain_core.indexing import RecordManager
from sqlalchemy.engine import URL

from langchain_tidb_bedrock.db.component import (
    TiDBComponent,
    check_limit,
    encode_key,
    encode_keys,
    encode_namespace,
)
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.identifiers import validate_identifier
from langchain_tidb_bedrock.db.runner import Op
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.indexing._ops import (
    MAX_GROUP_BYTES,
    MAX_KEY_BYTES,
    MAX_NAMESPACE_BYTES,
    RecordTable,
)

__all__ = ["TiDBRecordManager"]


def _encode_groups(group_ids: Sequence[object]) -> list[bytes | None]:
    return [
        None if g is None else encode_key(g, what="group id", max_bytes=MAX_GROUP_BYTES, position=i)
        for i, g in enumerate(group_ids)
    ]


def _groups(group_ids: object, count: int) -> list[bytes | None]:
    if not group_ids:  # None or empty: no groups, as in InMemoryRecordManager
        return [None] * count
    if isinstance(group_ids, (str, bytes)) or not isinstance(group_ids, Sequence):
        msg = f"group_ids must be a list of strings (or None), got {type(group_ids).__name__}"
        raise InvalidInputError(msg)
    if len(group_ids) != count:
        msg = f"got {count} keys but {len(group_ids)} group_ids: the lengths must match"
        raise InvalidInputError(msg)
    return _encode_groups(group_ids)


def _time(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{name} must be a UNIX timestamp (a number), got {value!r}"
        raise InvalidInputError(msg)
    return float(value)


class TiDBRecordManager(TiDBComponent, RecordManager):
    """Record manager on TiDB for LangChain's ``index()`` (incremental re-ingestion).

    ``SQLRecordManager`` supports only SQLite and PostgreSQL (its ``get_time`` and ``update``
    raise on MySQL/TiDB); this one stores the records in a TiDB table next to your vectors.

    Setup:
        Point it at TiDB like the vector store (``engine=`` to share one, ``connection_string=``,
        or the ``TIDB_*`` environment):

        ```bash
        pip install -U langchain-tidb-bedrock
        export TIDB_HOST=gateway01.us-west-2.prod.aws.tidbcloud.com TIDB_PORT=4000
        export TIDB_USER=xxxx.root TIDB_PASSWORD=... TIDB_DB_NAME=test
        ```

    Key init args:
        namespace: str
            Records of one namespace are separate from another's (use one per vector table).
        engine: TiDBEngine | None
            A shared engine (never closed by the record manager).
        connection_string: str | None
            A TiDB URL for a private engine; defaults to the ``TIDB_*`` environment.
        table_name: str
            The records table (default ``langchain_record_manager``), created by
            :meth:`create_schema` or on the first :meth:`update`.

    Instantiate:
        ```python
        from langchain_tidb_bedrock import TiDBEngine, TiDBRecordManager, TiDBVectorStore

        engine = TiDBEngine.from_env()
        store = TiDBVectorStore(embeddings, engine=engine, table_name="docs")
        record_manager = TiDBRecordManager("tidb/docs", engine=engine)
        record_manager.create_schema()
        ```

    Index:
        ```python
        from langchain_core.indexing import index

        result = index(docs, record_manager, store, cleanup="incremental", source_id_key="source")
        # {'num_added': 4, 'num_updated': 0, 'num_skipped': 0, 'num_deleted': 0}
        ```

    Clock:
        Times come from TiDB (``UNIX_TIMESTAMP(NOW(6))``), never from the client, so clients with
        skewed clocks agree. ``get_time`` never goes backwards for one record manager, and rows
        written with ``time_at_least=t`` are stamped at ``t`` or later even when the TiDB node
        that writes them runs behind the one that answered ``get_time`` (a multi-node cluster):
        ``index()``'s cleanup therefore never deletes what the same run wrote.

    Statements:
        One statement per call for up to 1,000 keys (``update`` is one multi-row
        ``INSERT ... ON DUPLICATE KEY UPDATE``); larger calls are split, in one transaction.

    Async:
        ``acreate_schema``, ``aget_time``, ``aupdate``, ``aexists``, ``alist_keys`` and
        ``adelete_keys`` run natively on the async driver.

    Limits:
        Keys up to 1,024 bytes and group ids up to 2,048 bytes (UTF-8), compared exactly
        (case and trailing spaces matter). Bad input raises ``InvalidInputError`` naming the
        argument and position, before anything is written.
    """

    def __init__(
        self,
        namespace: str,
        *,
        engine: TiDBEngine | sa.Engine | None = None,
        connection_string: str | URL | None = None,
        table_name: str = "langchain_record_manager",
        tls: bool | None = None,
        ca_path: str | None = None,
        engine_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the record manager; no database call happens here.

        Args:
            namespace: the namespace of these records (non-blank, up to 255 bytes).
            engine: a shared :class:`TiDBEngine` (or SQLAlchemy engine).
            connection_string: a TiDB URL for a private engine (closed by :meth:`close`).
            table_name: the records table.
            tls: force TLS on or off for a private engine (default on for remote hosts).
            ca_path: CA bundle for a private engine's TLS.
            engine_args: extra ``create_engine`` arguments for a private engine.
        """
        self._ns = encode_namespace(namespace, max_bytes=MAX_NAMESPACE_BYTES)
        self._table = RecordTable(validate_identifier(table_name))
        TiDBComponent.__init__(
            self,
            engine=engine,
            connection_string=connection_string,
            tls=tls,
            ca_path=ca_path,
            engine_args=engine_args,
        )
        RecordManager.__init__(self, namespace)
        self.table_name = table_name
        self._seen = 0.0  # the latest server time this instance has read
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TiDBRecordManager({self.namespace!r}, table_name={self.table_name!r})"

    # ------------------------------------------------------------------ operations

    def _saw(self, server_time: float) -> float:
        with self._lock:
            self._seen = max(self._seen, server_time)
            return self._seen

    def _op_time(self) -> Op[float]:
        now = yield from self._table.op_server_time()
        return self._saw(now)

    def _op_update(
        self, keys: Sequence[str], group_ids: Sequence[str | None] | None, time_at_least: object
    ) -> Op[None]:
        encoded = encode_keys(keys, what="key", max_bytes=MAX_KEY_BYTES, call="update()")
        groups = _groups(group_ids, len(encoded))
        floor = _time(time_at_least, "time_at_least")
        if not encoded:
            return None
        if floor and floor > self._seen:
            now = yield from self._op_time()
            if floor > now:
                msg = (
                    f"time_at_least={floor:.6f} is ahead of the TiDB server's clock "
                    f"({now:.6f}); nothing was written"
                )
                raise InvalidInputError(msg)
        yield from self._table.op_update(self._ns, encoded, groups, floor or 0.0)
        return None

    def _op_exists(self, keys: Sequence[str]) -> Op[list[bool]]:
        encoded = encode_keys(keys, what="key", max_bytes=MAX_KEY_BYTES, call="exists()")
        if not encoded:
            return []
        return (yield from self._table.op_exists(self._ns, encoded))

    def _op_list(
        self, before: object, after: object, group_ids: object, limit: object
    ) -> Op[list[str]]:
        groups: list[bytes | None] | None = None
        if group_ids:
            if isinstance(group_ids, (str, bytes)) or not isinstance(group_ids, Sequence):
                msg = f"group_ids must be a list of strings, got {type(group_ids).__name__}"
                raise InvalidInputError(msg)
            groups = _encode_groups(group_ids)
        keys = yield from self._table.op_list(
            self._ns,
            before=_time(before, "before"),
            after=_time(after, "after"),
            groups=groups,
            limit=check_limit(limit),
        )
        return [k.decode() for k in keys]

    def _op_delete(self, keys: Sequence[str]) -> Op[None]:
        encoded = encode_keys(keys, what="key", max_bytes=MAX_KEY_BYTES, call="delete_keys()")
        if encoded:
            yield from self._table.op_delete(self._ns, encoded)
        return None

    # ------------------------------------------------------------------ sync

    def create_schema(self) -> None:
        """Create the records table if it does not exist."""
        self._run(self._table.op_create())

    def get_time(self) -> float:
        """The TiDB server's time (UNIX seconds, microsecond precision), never decreasing."""
        return self._run(self._op_time())

    def update(
        self,
        keys: Sequence[str],
        *,
        group_ids: Sequence[str | None] | None = None,
        time_at_least: float | None = None,
    ) -> None:
        """Upsert records, stamped with the server's time (at least ``time_at_least``).

        Raises:
            InvalidInputError: a key or group id is not a string or too long, the lengths of
                ``keys`` and ``group_ids`` differ, or ``time_at_least`` is ahead of the
                server's clock; nothing is written.
        """
        self._run(self._op_update(keys, group_ids, time_at_least))

    def exists(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key is recorded, in input order."""
        return self._run(self._op_exists(keys))

    def list_keys(
        self,
        *,
        before: float | None = None,
        after: float | None = None,
        group_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Keys updated before/after the given times and in the given groups, oldest first.

        As in ``InMemoryRecordManager``, a falsy ``before``/``after``/``group_ids``/``limit``
        means no such filter.
        """
        return self._run(self._op_list(before, after, group_ids, limit))

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete records (missing keys are ignored)."""
        self._run(self._op_delete(keys))

    # ------------------------------------------------------------------ async

    async def acreate_schema(self) -> None:
        """Create the records table if it does not exist."""
        await self._arun(self._table.op_create())

    async def aget_time(self) -> float:
        """The TiDB server's time (UNIX seconds, microsecond precision), never decreasing."""
        return await self._arun(self._op_time())

    async def aupdate(
        self,
        keys: Sequence[str],
        *,
        group_ids: Sequence[str | None] | None = None,
        time_at_least: float | None = None,
    ) -> None:
        """Upsert records, stamped with the server's time (see :meth:`update`)."""
        await self._arun(self._op_update(keys, group_ids, time_at_least))

    async def aexists(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key is recorded, in input order."""
        return await self._arun(self._op_exists(keys))

    async def alist_keys(
        self,
        *,
        before: float | None = None,
        after: float | None = None,
        group_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        """Keys updated before/after the given times and in the given groups, oldest first."""
        return await self._arun(self._op_list(before, after, group_ids, limit))

    async def adelete_keys(self, keys: Sequence[str]) -> None:
        """Delete records (missing keys are ignored)."""
        await self._arun(self._op_delete(keys))
