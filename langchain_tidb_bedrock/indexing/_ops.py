"""The record manager's statements and operations (one definition for sync and async).

Keys, group ids and the namespace are stored as UTF-8 bytes in ``VARBINARY`` columns: binary
comparison, so ``"a"`` and ``"a "`` (equal under TiDB's PAD SPACE collations) stay apart and
case matters, as in ``InMemoryRecordManager``.
"""

from __future__ import annotations

from langchain_tidb_bedrock.db.component import in_list
from langchain_tidb_bedrock.db.identifiers import quote_identifier
from langchain_tidb_bedrock.db.runner import Op, WriteStep, read
from langchain_tidb_bedrock.db.tables import (
    op_create,
    op_delete_namespaced,
    read_or_none,
    write_creating,
)

__all__ = [
    "MAX_GROUP_BYTES",
    "MAX_KEY_BYTES",
    "MAX_NAMESPACE_BYTES",
    "RecordTable",
]

MAX_NAMESPACE_BYTES = 255
MAX_KEY_BYTES = 1024
MAX_GROUP_BYTES = 2048
# Rows per statement: index() sends 100 keys per call (one statement); bigger calls are split
# so no statement grows past a few MB.
CHUNK = 1000

# The server's clock: every row of one statement gets the statement's NOW(6).
SERVER_TIME = "SELECT UNIX_TIMESTAMP(NOW(6))"


class RecordTable:
    """The statements for one record table (its name validated once)."""

    def __init__(self, table_name: str) -> None:
        self.name = table_name
        t = quote_identifier(table_name)
        self.ddl = (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            f"namespace VARBINARY({MAX_NAMESPACE_BYTES}) NOT NULL, "
            f"`key` VARBINARY({MAX_KEY_BYTES}) NOT NULL, "
            f"group_id VARBINARY({MAX_GROUP_BYTES}) NULL, "
            "updated_at DOUBLE NOT NULL, "
            "PRIMARY KEY (namespace, `key`), "
            "KEY idx_updated (namespace, updated_at), "
            "KEY idx_group (namespace, group_id, updated_at))"
        )
        self._t = t

    # ------------------------------------------------------------------ operations

    def op_create(self) -> Op[None]:
        """Create the table if it does not exist."""
        return op_create(self.ddl)

    def op_server_time(self) -> Op[float]:
        """The server's clock, as a UNIX timestamp with microseconds."""
        rows = yield from read(SERVER_TIME)
        return float(rows[0][0])

    def op_update(
        self, namespace: bytes, keys: list[bytes], groups: list[bytes | None], floor: float
    ) -> Op[None]:
        """Upsert the keys with the server's time (never below ``floor``), one transaction."""
        steps: list[WriteStep] = []
        for start in range(0, len(keys), CHUNK):
            chunk = range(start, min(start + CHUNK, len(keys)))
            # GREATEST: on a cluster whose TiDB nodes' clocks differ, a node behind the one that
            # answered get_time() still stamps rows at or after index()'s start, so its cleanup
            # (``before=start``) never deletes what this run just wrote.
            rows = ", ".join(["(%s, %s, %s, GREATEST(UNIX_TIMESTAMP(NOW(6)), %s))"] * len(chunk))
            params = tuple(v for i in chunk for v in (namespace, keys[i], groups[i], floor))
            sql = (
                f"INSERT INTO {self._t} (namespace, `key`, group_id, updated_at) VALUES {rows} "
                "ON DUPLICATE KEY UPDATE group_id = VALUES(group_id), "
                "updated_at = VALUES(updated_at)"
            )
            steps.append((sql, [params]))
        # The first write creates the table, so index() works without create_schema().
        yield from write_creating(self.ddl, *steps)
        return None

    def op_exists(self, namespace: bytes, keys: list[bytes]) -> Op[list[bool]]:
        """Which keys are recorded, in input order."""
        found: set[bytes] = set()
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), CHUNK):
            params: dict[str, object] = {"ns": namespace}
            marks = in_list("k", wanted[start : start + CHUNK], params)
            sql = f"SELECT `key` FROM {self._t} WHERE namespace = %(ns)s AND `key` IN ({marks})"
            rows = yield from read_or_none(sql, params)  # None: no table, no records
            found.update(bytes(r[0]) for r in rows or [])
        return [k in found for k in keys]

    def op_list(
        self,
        namespace: bytes,
        *,
        before: float | None,
        after: float | None,
        groups: list[bytes | None] | None,
        limit: int | None,
    ) -> Op[list[bytes]]:
        """Keys updated in the time window and groups given, oldest first."""
        params: dict[str, object] = {"ns": namespace}
        where = ["namespace = %(ns)s"]
        if before:
            where.append("updated_at < %(before)s")
            params["before"] = float(before)
        if after:
            where.append("updated_at > %(after)s")
            params["after"] = float(after)
        if groups:
            named = [g for g in groups if g is not None]
            either = [f"group_id IN ({in_list('g', named, params)})"] if named else []
            if len(named) < len(groups):
                either.append("group_id IS NULL")
            where.append(f"({' OR '.join(either)})")
        sql = f"SELECT `key` FROM {self._t} WHERE {' AND '.join(where)} ORDER BY updated_at, `key`"
        if limit:
            sql += " LIMIT %(limit)s"
            params["limit"] = int(limit)
        rows = yield from read_or_none(sql, params)
        return [bytes(r[0]) for r in rows or []]

    def op_delete(self, namespace: bytes, keys: list[bytes]) -> Op[None]:
        """Delete the keys (missing ones are no error), one transaction."""
        return op_delete_namespaced(self._t, namespace, keys)
