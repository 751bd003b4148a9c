"""The key-value table behind the stores: statements and operations (sync and async alike).

Keys and the namespace are UTF-8 bytes in ``VARBINARY`` columns (exact, case-sensitive
comparison; ``"a"`` and ``"a "`` are different keys), values ``LONGBLOB``.
"""

from __future__ import annotations

import sqlalchemy as sa

from langchain_tidb_bedrock.db.component import db_error_code, in_list
from langchain_tidb_bedrock.db.identifiers import quote_identifier
from langchain_tidb_bedrock.db.runner import Op
from langchain_tidb_bedrock.db.tables import (
    op_create,
    op_delete_namespaced,
    read_or_none,
    write_creating,
)
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "MAX_KEY_BYTES",
    "MAX_NAMESPACE_BYTES",
    "KeyValueTable",
    "like_prefix",
]

MAX_NAMESPACE_BYTES = 255
MAX_KEY_BYTES = 1024
# TiDB refuses a row whose key and value together exceed txn-entry-size-limit (6 MiB by
# default); the headroom covers the row key (namespace + key) and the row's encoding.
DEFAULT_MAX_VALUE_BYTES = 6 * 1024 * 1024 - 4096
# Values per transaction: TiDB's txn-total-size-limit is 100 MiB by default.
TXN_BYTES = 64 * 1024 * 1024
GET_CHUNK = 500  # keys per SELECT
PAGE = 1000  # keys per page of yield_keys
_ENTRY_TOO_LARGE = 8025


def like_prefix(prefix: bytes) -> bytes:
    """A LIKE pattern matching ``prefix`` literally (``!`` escapes ``!``, ``%`` and ``_``).

    ``!`` rather than backslash: its meaning does not depend on the NO_BACKSLASH_ESCAPES mode.
    """
    escaped = prefix.replace(b"!", b"!!").replace(b"%", b"!%").replace(b"_", b"!_")
    return escaped + b"%"


class KeyValueTable:
    """The statements for one key-value table (its name validated once)."""

    def __init__(self, table_name: str) -> None:
        self.name = table_name
        t = quote_identifier(table_name)
        self.ddl = (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            f"namespace VARBINARY({MAX_NAMESPACE_BYTES}) NOT NULL, "
            f"`key` VARBINARY({MAX_KEY_BYTES}) NOT NULL, "
            "value LONGBLOB NOT NULL, "
            "PRIMARY KEY (namespace, `key`))"
        )
        self._t = t
        self._upsert = (
            f"INSERT INTO {t} (namespace, `key`, value) VALUES (%s, %s, %s) "
            "ON DUPLICATE KEY UPDATE value = VALUES(value)"
        )

    def op_create(self) -> Op[None]:
        """Create the table if it does not exist."""
        return op_create(self.ddl)

    def op_get(self, namespace: bytes, keys: list[bytes]) -> Op[dict[bytes, bytes]]:
        """The stored values of these keys (missing keys absent)."""
        found: dict[bytes, bytes] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), GET_CHUNK):
            params: dict[str, object] = {"ns": namespace}
            marks = in_list("k", wanted[start : start + GET_CHUNK], params)
            sql = (
                f"SELECT `key`, value FROM {self._t} "
                f"WHERE namespace = %(ns)s AND `key` IN ({marks})"
            )
            rows = yield from read_or_none(sql, params)
            if rows is None:  # the table is not created yet
                return {}
            found.update((bytes(k), bytes(v)) for k, v in map(tuple, rows))
        return found

    def op_set(self, namespace: bytes, pairs: list[tuple[bytes, bytes]]) -> Op[None]:
        """Upsert the pairs: one transaction per 64 MiB of values (usually one in all).

        PyMySQL and aiomysql pack the rows into multi-row INSERTs of about 1 MB each.
        """
        batch: list[tuple[bytes, bytes, bytes]] = []
        size = 0
        for key, value in pairs:
            if batch and size + len(value) > TXN_BYTES:
                yield from self._write_rows(batch)
                batch, size = [], 0
            batch.append((namespace, key, value))
            size += len(value)
        if batch:
            yield from self._write_rows(batch)
        return None

    def _write_rows(self, rows: list[tuple[bytes, bytes, bytes]]) -> Op[None]:
        try:
            yield from write_creating(self.ddl, (self._upsert, list(rows)))
        except sa.exc.DBAPIError as exc:
            if db_error_code(exc) == _ENTRY_TOO_LARGE:
                msg = (
                    "TiDB refused a value as too large for one row (the server's "
                    "txn-entry-size-limit is below this store's max_value_bytes): nothing of "
                    "this transaction was written; lower max_value_bytes"
                )
                raise InvalidInputError(msg) from None
            raise
        return None

    def op_delete(self, namespace: bytes, keys: list[bytes]) -> Op[None]:
        """Delete the keys (missing ones are no error), in one transaction."""
        return op_delete_namespaced(self._t, namespace, keys)

    def op_page(
        self, namespace: bytes, prefix: bytes | None, after: bytes | None
    ) -> Op[list[bytes]]:
        """Up to ``PAGE`` keys in key order, after ``after`` (keyset paging), with the prefix."""
        params: dict[str, object] = {"ns": namespace, "n": PAGE}  # read at call time (tests)
        where = ["namespace = %(ns)s"]
        if prefix:
            where.append("`key` LIKE %(p)s ESCAPE '!'")
            params["p"] = like_prefix(prefix)
        if after is not None:
            where.append("`key` > %(after)s")
            params["after"] = after
        sql = f"SELECT `key` FROM {self._t} WHERE {' AND '.join(where)} ORDER BY `key` LIMIT %(n)s"
        rows = yield from read_or_none(sql, params)
        return [bytes(r[0]) for r in rows or []]
