"""The shared body of ``TiDBByteStore`` and ``TiDBDocStore``: a ``BaseStore`` on one TiDB table.

Subclasses say how a value becomes bytes and back; everything else (validation, batching,
upsert, prefix scans, sync and async) lives here once.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from langchain_core.stores import BaseStore
from sqlalchemy.engine import URL

from langchain_tidb_bedrock.db.component import (
    TiDBComponent,
    encode_key,
    encode_keys,
    encode_namespace,
)
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.identifiers import validate_identifier
from langchain_tidb_bedrock.db.runner import Op
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.storage import _table
from langchain_tidb_bedrock.storage._table import (
    DEFAULT_MAX_VALUE_BYTES,
    MAX_KEY_BYTES,
    MAX_NAMESPACE_BYTES,
    KeyValueTable,
)

__all__ = ["TiDBKeyValueStore"]

V = TypeVar("V")
# The largest value the server accepts at all (TiDB's txn-entry-size-limit tops out at 120 MiB).
_MAX_ENTRY_LIMIT = 120 * 1024 * 1024


class TiDBKeyValueStore(TiDBComponent, BaseStore[str, V], Generic[V]):
    """A ``BaseStore[str, V]`` on a TiDB table; see :class:`TiDBByteStore` for the details."""

    _default_table: str = "langchain_key_value"

    def __init__(
        self,
        *,
        engine: TiDBEngine | sa.Engine | None = None,
        connection_string: str | URL | None = None,
        table_name: str | None = None,
        namespace: str = "default",
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        tls: bool | None = None,
        ca_path: str | None = None,
        engine_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the store; no database call happens here.

        Args:
            engine: a shared :class:`TiDBEngine` (or SQLAlchemy engine).
            connection_string: a TiDB URL for a private engine (closed by :meth:`close`).
            table_name: the table, created on the first write (or by :meth:`create_table`).
            namespace: keys of one namespace are separate from another's in the same table.
            max_value_bytes: the largest stored value; the default fits TiDB's default
                ``txn-entry-size-limit`` (6 MiB per row). Raise it only with that limit.
            tls: force TLS on or off for a private engine (default on for remote hosts).
            ca_path: CA bundle for a private engine's TLS.
            engine_args: extra ``create_engine`` arguments for a private engine.
        """
        self._ns = encode_namespace(namespace, max_bytes=MAX_NAMESPACE_BYTES)
        if (
            isinstance(max_value_bytes, bool)
            or not isinstance(max_value_bytes, int)
            or not 0 < max_value_bytes <= _MAX_ENTRY_LIMIT
        ):
            msg = (
                f"max_value_bytes must be an integer in 1..{_MAX_ENTRY_LIMIT}, "
                f"got {max_value_bytes!r}"
            )
            raise InvalidInputError(msg)
        self.table_name = validate_identifier(table_name or self._default_table)
        self.namespace = namespace
        self.max_value_bytes = max_value_bytes
        self._table = KeyValueTable(self.table_name)
        super().__init__(
            engine=engine,
            connection_string=connection_string,
            tls=tls,
            ca_path=ca_path,
            engine_args=engine_args,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(table_name={self.table_name!r}, namespace={self.namespace!r})"
        )

    # ------------------------------------------------------------------ values

    @abstractmethod
    def _encode(self, value: V, position: int) -> bytes:
        """The bytes stored for ``value``; raise InvalidInputError naming ``position``."""

    @abstractmethod
    def _decode(self, raw: bytes) -> V:
        """The value back from its stored bytes."""

    # ------------------------------------------------------------------ operations

    def _op_get(self, keys: Sequence[str]) -> Op[list[V | None]]:
        encoded = encode_keys(keys, what="key", max_bytes=MAX_KEY_BYTES, call="mget()")
        if not encoded:
            return []
        found = yield from self._table.op_get(self._ns, encoded)
        return [self._decode(found[k]) if k in found else None for k in encoded]

    def _op_set(self, key_value_pairs: Sequence[tuple[str, V]]) -> Op[None]:
        if isinstance(key_value_pairs, (str, bytes, Mapping)) or not hasattr(
            key_value_pairs, "__iter__"
        ):
            msg = f"mset() takes a list of (key, value) pairs, got {type(key_value_pairs).__name__}"
            raise InvalidInputError(msg)
        rows: list[tuple[bytes, bytes]] = []
        for position, pair in enumerate(key_value_pairs):
            if not isinstance(pair, tuple) or len(pair) != 2:
                msg = f"the item at position {position} is not a (key, value) pair"
                raise InvalidInputError(msg)
            key = encode_key(pair[0], what="key", max_bytes=MAX_KEY_BYTES, position=position)
            raw = self._encode(pair[1], position)
            if len(raw) > self.max_value_bytes:
                msg = (
                    f"the value at position {position} is {len(raw):,} bytes; at most "
                    f"{self.max_value_bytes:,} fit in one row (TiDB's txn-entry-size-limit); "
                    "nothing was written"
                )
                raise InvalidInputError(msg)
            rows.append((key, raw))
        if rows:
            yield from self._table.op_set(self._ns, rows)
        return None

    def _op_delete(self, keys: Sequence[str]) -> Op[None]:
        encoded = encode_keys(keys, what="key", max_bytes=MAX_KEY_BYTES, call="mdelete()")
        if encoded:
            yield from self._table.op_delete(self._ns, encoded)
        return None

    def _prefix(self, prefix: str | None) -> bytes | None:
        if prefix is None:
            return None
        return encode_key(prefix, what="prefix", max_bytes=MAX_KEY_BYTES)

    # ------------------------------------------------------------------ sync

    def create_table(self) -> None:
        """Create the table if it does not exist (the first write does it too)."""
        self._run(self._table.op_create())

    def mget(self, keys: Sequence[str]) -> list[V | None]:
        """The values of these keys, in order (None where missing)."""
        return self._run(self._op_get(keys))

    def mset(self, key_value_pairs: Sequence[tuple[str, V]]) -> None:
        """Store the pairs, replacing existing values (one transaction up to 64 MiB).

        Raises:
            InvalidInputError: a key is not a string or longer than 1,024 bytes, or a value
                is of the wrong type or over ``max_value_bytes``; nothing is written.
        """
        self._run(self._op_set(key_value_pairs))

    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete these keys (missing keys are ignored)."""
        self._run(self._op_delete(keys))

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """Every key (those starting with ``prefix`` when given), in key order, paged."""
        wanted = self._prefix(prefix)
        after: bytes | None = None
        while True:
            page = self._run(self._table.op_page(self._ns, wanted, after))
            for key in page:
                yield key.decode()
            if len(page) < _table.PAGE:
                return
            after = page[-1]

    # ------------------------------------------------------------------ async

    async def acreate_table(self) -> None:
        """Create the table if it does not exist (the first write does it too)."""
        await self._arun(self._table.op_create())

    async def amget(self, keys: Sequence[str]) -> list[V | None]:
        """The values of these keys, in order (None where missing)."""
        return await self._arun(self._op_get(keys))

    async def amset(self, key_value_pairs: Sequence[tuple[str, V]]) -> None:
        """Store the pairs, replacing existing values (see :meth:`mset`)."""
        await self._arun(self._op_set(key_value_pairs))

    async def amdelete(self, keys: Sequence[str]) -> None:
        """Delete these keys (missing keys are ignored)."""
        await self._arun(self._op_delete(keys))

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        """Every key (those starting with ``prefix`` when given), in key order, paged."""
        wanted = self._prefix(prefix)
        after: bytes | None = None
        while True:
            page = await self._arun(self._table.op_page(self._ns, wanted, after))
            for key in page:
                yield key.decode()
            if len(page) < _table.PAGE:
                return
            after = page[-1]
