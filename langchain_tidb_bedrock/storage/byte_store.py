"""``TiDBByteStore``: LangChain's ``ByteStore`` (``BaseStore[str, bytes]``) on a TiDB table."""

from __future__ import annotations

from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.storage.base import TiDBKeyValueStore

__all__ = ["TiDBByteStore"]


class TiDBByteStore(TiDBKeyValueStore[bytes]):
    """Key-value store of bytes on TiDB (a ``ByteStore`` for retrievers and embedding caches).

    Setup:
        Point it at TiDB like the vector store (``engine=`` to share one, ``connection_string=``,
        or the ``TIDB_*`` environment):

        ```bash
        pip install -U langchain-tidb-bedrock
        export TIDB_HOST=gateway01.us-west-2.prod.aws.tidbcloud.com TIDB_PORT=4000
        export TIDB_USER=xxxx.root TIDB_PASSWORD=... TIDB_DB_NAME=test
        ```

    Key init args:
        engine: TiDBEngine | None
            A shared engine (never closed by the store).
        connection_string: str | None
            A TiDB URL for a private engine; defaults to the ``TIDB_*`` environment.
        table_name: str
            The table (default ``langchain_byte_store``), created on the first write.
        namespace: str
            Several stores can share a table, one namespace each (default ``"default"``).
        max_value_bytes: int
            The largest value, by default just under TiDB's 6 MiB row limit
            (``txn-entry-size-limit``); values are ``LONGBLOB``, not 64 KB ``BLOB``.

    Instantiate:
        ```python
        from langchain_tidb_bedrock import TiDBByteStore, TiDBEngine

        store = TiDBByteStore(engine=TiDBEngine.from_env(), namespace="parents")
        ```

    Set, get, delete:
        ```python
        store.mset([("k1", b"v1"), ("k2", b"v2")])
        store.mget(["k1", "missing"])  # [b'v1', None]
        store.mdelete(["k1"])
        ```

    Keys:
        ```python
        list(store.yield_keys(prefix="k"))  # ['k2'], in key order
        ```

        Keys are compared exactly (case and trailing spaces matter), up to 1,024 bytes of
        UTF-8; ``prefix`` is matched literally (``%`` and ``_`` are no wildcards).

    Async:
        ``amget``, ``amset``, ``amdelete`` and ``ayield_keys`` run natively on the async driver.

    Writes:
        ``mset`` upserts (``INSERT ... ON DUPLICATE KEY UPDATE``) in one transaction (split
        per 64 MiB of values); bad input (a key that is not a string, a value that is not
        bytes or over ``max_value_bytes``) raises ``InvalidInputError`` naming its position,
        and nothing is written.
    """

    _default_table = "langchain_byte_store"

    def _encode(self, value: bytes, position: int) -> bytes:
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if not isinstance(value, bytes):
            msg = f"the value at position {position} is a {type(value).__name__}, not bytes"
            raise InvalidInputError(msg)
        return value

    def _decode(self, raw: bytes) -> bytes:
        return raw
