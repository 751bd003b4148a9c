"""The message table: its layout (ours, or langchain-community's as it is), DDL and statements.

Order never comes from AUTO_INCREMENT (ids are only monotonic per TiDB server). Each append is
one ``INSERT ... SELECT`` that numbers its messages after the highest number already stored
(the session's ``seq`` in our table, the table's ``id`` in a langchain-community table). Two
writers that pick the same number collide on the primary key; the loser's statement stores
nothing and is run again (see ``base.py``), so order and count stay exact on any number of
processes and TiDB servers.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.db.component import db_error_code
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.identifiers import quote_identifier
from langchain_tidb_bedrock.db.runner import Op, read, write
from langchain_tidb_bedrock.db.tables import NOT_EXPIRED, TTL_CLAUSE
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = ["COMMUNITY_COLUMNS", "Layout", "TableRef", "table_changed"]

COMMUNITY_COLUMNS = frozenset({"id", "session_id", "message", "create_time"})
_OUR_COLUMNS = frozenset({"session_id", "seq", "message", "create_time", "expires_at"})
_TTL_CLAUSE = re.compile(r"TTL\s*=", re.IGNORECASE)

# TIMESTAMP (not DATETIME): stored in UTC, so expiry means the same instant for every client
# time zone and for TiDB's TTL job. The clustered key keeps a session's messages together.
_CREATE = """\
CREATE TABLE IF NOT EXISTS {table} (
  session_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  seq BIGINT NOT NULL,
  message JSON NOT NULL,
  create_time TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  expires_at TIMESTAMP(6) NULL DEFAULT NULL,
  PRIMARY KEY (session_id, seq) CLUSTERED
){ttl}"""
_TTL = f" {TTL_CLAUSE}"  # rows expire at their own expires_at; every read filters too

ER_NO_SUCH_TABLE = 1146
ER_BAD_FIELD = 1054


def table_changed(exc: BaseException) -> bool:
    """Whether ``exc`` says the table is gone or no longer has the columns we knew of."""
    return isinstance(exc, sa.exc.DBAPIError) and db_error_code(exc) in (
        ER_NO_SUCH_TABLE,
        ER_BAD_FIELD,
    )


def _expires(ttl_us: int | None, params: dict[str, Any]) -> str:
    """The ``expires_at`` value of an appended row (binding ``ttl_us`` into ``params``)."""
    if ttl_us is None:
        return "NULL"
    params["ttl_us"] = ttl_us
    return "NOW(6) + INTERVAL :ttl_us MICROSECOND"


@dataclass(frozen=True)
class Layout:
    """What the table looks like, and the statements for it."""

    table: str
    community: bool  # langchain-community's table: id AUTO_INCREMENT, no seq, no expires_at

    @property
    def _q(self) -> str:
        return quote_identifier(self.table)

    @property
    def _order(self) -> str:
        return "id" if self.community else "seq"

    def _live(self, ttl_us: int | None) -> tuple[str, dict[str, Any]]:
        """The read-side expiry filter: TiDB's TTL job runs late."""
        if not self.community:
            return f" AND {NOT_EXPIRED}", {}
        if ttl_us is None:
            return "", {}
        return " AND create_time > NOW(6) - INTERVAL :ttl_us MICROSECOND", {"ttl_us": ttl_us}

    def append(
        self,
        session_id: str,
        payloads: Sequence[str],
        ttl_us: int | None,
        *,
        after: int | None = None,
    ) -> sa.TextClause:
        """One statement that stores ``payloads`` after the session's last message.

        With ``after`` (the last sequence number this history read or wrote), a plain
        multi-row INSERT numbered from it: another writer's message in between holds one of
        those keys, so the INSERT fails whole on the duplicate key and runs again numbered in
        SQL. TiDB plans it at a third of the cost of the numbering INSERT ... SELECT.
        """
        if after is not None and not self.community:
            return self._append_after(session_id, payloads, ttl_us, after)
        params: dict[str, Any] = {"sid": session_id}
        rows = []
        for n, payload in enumerate(payloads):
            rows.append(f"SELECT {n + 1} AS k, :m{n} AS msg")
            params[f"m{n}"] = payload
        numbered = " UNION ALL ".join(rows)
        if self.community:
            # Numbered after the table's highest id: ids are the order langchain-community
            # reads, and its id column is the whole primary key.
            sql = (
                f"INSERT INTO {self._q} (id, session_id, message) "
                f"SELECT b.last + n.k, :sid, n.msg "
                f"FROM (SELECT COALESCE(MAX(id), 0) AS last FROM {self._q}) AS b "
                f"CROSS JOIN ({numbered}) AS n"
            )
        else:
            expires = _expires(ttl_us, params)
            sql = (
                f"INSERT INTO {self._q} (session_id, seq, message, expires_at) "
                f"SELECT :sid, b.last + n.k, n.msg, {expires} "
                f"FROM (SELECT COALESCE(MAX(seq), 0) AS last FROM {self._q} "
                f"WHERE session_id = :sid) AS b CROSS JOIN ({numbered}) AS n"
            )
        return sa.text(sql).bindparams(**params)

    def _append_after(
        self, session_id: str, payloads: Sequence[str], ttl_us: int | None, after: int
    ) -> sa.TextClause:
        params: dict[str, Any] = {"sid": session_id}
        expires = _expires(ttl_us, params)
        rows = []
        for n, payload in enumerate(payloads):
            rows.append(f"(:sid, :q{n}, :m{n}, {expires})")
            params[f"q{n}"] = after + n + 1
            params[f"m{n}"] = payload
        sql = (
            f"INSERT INTO {self._q} (session_id, seq, message, expires_at) VALUES {', '.join(rows)}"
        )
        return sa.text(sql).bindparams(**params)

    def select(self, session_id: str, ttl_us: int | None) -> sa.TextClause:
        """The session's live messages, oldest first: (sequence number or id, message)."""
        live, params = self._live(ttl_us)
        sql = (
            f"SELECT {self._order}, message FROM {self._q} "
            f"WHERE session_id = :sid{live} ORDER BY {self._order}"
        )
        return sa.text(sql).bindparams(sid=session_id, **params)

    def sessions(self, prefix: str | None, limit: int | None, ttl_us: int | None) -> sa.TextClause:
        """Session ids with at least one live message, in id order."""
        live, params = self._live(ttl_us)
        where = "1 = 1"
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where = "session_id LIKE :prefix"
            params["prefix"] = escaped + "%"
        sql = f"SELECT DISTINCT session_id FROM {self._q} WHERE {where}{live} ORDER BY session_id"
        if limit is not None:
            sql += " LIMIT :lim"
            params["lim"] = limit
        return sa.text(sql).bindparams(**params)

    def delete(self, session_id: str) -> sa.TextClause:
        """Every message of the session."""
        return sa.text(f"DELETE FROM {self._q} WHERE session_id = :sid").bindparams(sid=session_id)


# Layouts already read, per engine and table: a history built per call (as
# RunnableWithMessageHistory does) costs no extra round trip after the first.
_KNOWN: weakref.WeakKeyDictionary[TiDBEngine, dict[str, Layout]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class TableRef:
    """The table of one history: finds its layout once, creates it on first write."""

    def __init__(self, engine: TiDBEngine, table: str, *, ttl: bool) -> None:
        self.engine, self.table, self.ttl = engine, table, ttl

    def known(self) -> Layout | None:
        """The layout read earlier in this process, if any."""
        with _LOCK:
            return _KNOWN.get(self.engine, {}).get(self.table)

    def forget(self) -> None:
        """Drop what we knew (the table was dropped or replaced)."""
        with _LOCK:
            _KNOWN.get(self.engine, {}).pop(self.table, None)

    def _remember(self, layout: Layout) -> Layout:
        with _LOCK:
            _KNOWN.setdefault(self.engine, {})[self.table] = layout
        return layout

    def op_layout(self, *, create: bool) -> Op[Layout | None]:
        """The table's layout; with ``create``, the table is made first when missing."""
        layout = self.known()
        if layout is not None:
            return layout
        layout = yield from self._op_read_layout()
        if layout is None and create:
            ttl = _TTL if self.ttl else ""
            yield from write(sa.text(_CREATE.format(table=quote_identifier(self.table), ttl=ttl)))
            layout = yield from self._op_read_layout()
        if layout is not None and create and self.ttl and not layout.community:
            yield from self._op_enable_ttl()
        return self._remember(layout) if layout is not None else None

    def _op_read_layout(self) -> Op[Layout | None]:
        rows = yield from read(
            "SELECT LOWER(COLUMN_NAME) FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %(t)s",
            {"t": self.table},
        )
        columns = {str(r[0]) for r in rows}
        if not columns:
            return None
        if columns >= _OUR_COLUMNS:
            return Layout(self.table, community=False)
        if columns >= COMMUNITY_COLUMNS:
            return Layout(self.table, community=True)
        msg = (
            f"table {self.table!r} exists but is not a chat message table: it has columns "
            f"{sorted(columns)}, expected {sorted(_OUR_COLUMNS)} (or langchain-community's "
            f"{sorted(COMMUNITY_COLUMNS)}); pass another table_name"
        )
        raise InvalidInputError(msg)

    def _op_enable_ttl(self) -> Op[None]:
        # A table made without a TTL (by a history without ttl=) gets one when a history with
        # ttl= first writes to it; a TTL someone set, or switched off, is left as it is.
        rows = yield from read(f"SHOW CREATE TABLE {quote_identifier(self.table)}")
        if rows and not _TTL_CLAUSE.search(str(tuple(rows[0])[-1])):
            yield from write(sa.text(f"ALTER TABLE {quote_identifier(self.table)}{_TTL}"))
