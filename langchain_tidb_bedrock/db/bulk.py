"""Bulk upserts with ``LOAD DATA LOCAL INFILE ... REPLACE``, TiDB's fastest ingest path.

TiDB parses a multi-row INSERT as one huge SQL statement; ``LOAD DATA`` skips the SQL parser and
reads the rows as tab-separated fields, roughly twice as fast here. ``REPLACE`` gives the same
end state as our ``INSERT ... ON DUPLICATE KEY UPDATE`` (every column is rewritten).

Safety: the client capability is negotiated at connect time, but PyMySQL's permission flag stays
off except while our own statement runs, and during it a guard sends only the rows we hold: a
server that asks for any other file (``~/.aws/credentials``...) gets a refusal, never its bytes.

Any table: a :class:`LoadRows` step names its columns (the store's four by default; the keyword
index loads its postings and document rows the same way).

No file: the rows go from memory to the socket under a one-time name, so a process killed
mid-load (``kill -9`` runs no cleanup) leaves no ids, vectors or text on disk. Earlier versions
wrote ``ltb-load-*.tsv`` spill files; the first bulk-loading engine sweeps old ones away.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_tidb_bedrock.db.identifiers import quote_identifier
from langchain_tidb_bedrock.errors import LoadDataWarningError

__all__ = [
    "STORE_COLUMNS",
    "LoadRows",
    "enable_local_infile_capability",
    "load_rows",
    "supports_load_data",
]

_CLIENT_LOCAL_FILES = 128  # pymysql.constants.CLIENT.LOCAL_FILES
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})
_NEEDS_ESCAPE = re.compile("[\\\\\t\n\r\0]")
# Where earlier versions wrote their spill files (a RAM-backed directory where there is one).
_SHM = "/dev/shm"  # noqa: S108
_TMP_DIR = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None
# A spill file lived for one statement: one this old belongs to a process that died mid-load.
_STALE_SPILL_AGE = 3600.0  # seconds
_SEND_CHUNK = 64 * 1024  # bytes per LOCAL INFILE data packet


STORE_COLUMNS = ("id", "embedding", "document", "meta")
"""A vector store table's columns, in the order of its rows (id, vector text, text, JSON)."""


@dataclass(frozen=True)
class LoadRows:
    """A write step: upsert ``rows`` into ``table``, one value per name in ``columns``.

    ``fallback_sql`` is the equivalent INSERT (``%s`` per column) for drivers that cannot
    LOAD DATA. Values are ``str``, ``int`` or None; the store's rows (the default columns) are
    (id, vector text, document, metadata JSON).
    """

    table: str
    rows: list[tuple[Any, ...]]
    fallback_sql: str
    columns: tuple[str, ...] = STORE_COLUMNS

    def as_insert(self) -> tuple[str, list[tuple[Any, ...]]]:
        """The same write as an ``executemany`` step (the fallback)."""
        return (self.fallback_sql, self.rows)


# ER_NOT_ALLOWED_COMMAND, ER_SPECIFIC_ACCESS_DENIED, CR_LOAD_DATA_LOCAL_INFILE_REJECTED
_REFUSED_CODES = frozenset({1148, 1227, 2068})


def is_load_data_refused(exc: BaseException) -> bool:
    """Whether the server or driver refuses LOAD DATA LOCAL itself (not a passing fault)."""
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    if args and args[0] in _REFUSED_CODES:
        return True
    return "local_infile" in str(orig).lower() or "load data local" in str(orig).lower()


def load_data_sql(table: str, columns: Sequence[str] = STORE_COLUMNS) -> str:
    """The statement; the file name is bound, the table and columns validated identifiers."""
    names = ", ".join(quote_identifier(c) for c in columns)
    return (
        f"LOAD DATA LOCAL INFILE %s REPLACE INTO TABLE {quote_identifier(table)} "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
        f"LINES TERMINATED BY '\\n' ({names})"
    )


def _install_guard() -> bool:
    """Wrap PyMySQL's LOCAL INFILE sender so our connections send only the file we loaded.

    PyMySQL opens whatever file name the server's request names. Our connections (marked by
    ``lock_local_infile``) are held to the one path ``load_rows`` wrote; other PyMySQL
    connections in the process are left exactly as they were.
    """
    try:
        from pymysql import connections as pm
    except ImportError:  # pragma: no cover - PyMySQL is a dependency
        return False
    original = getattr(pm, "_send_local_file", None)
    if original is None:
        return False  # unknown PyMySQL internals: no bulk path, INSERT only
    if getattr(original, "_ltb_guard", False):
        return True

    def guarded(filename: Any, conn: Any) -> Any:
        if getattr(conn, "_ltb_owned", False):
            name = filename.decode() if isinstance(filename, bytes) else str(filename)
            data = getattr(conn, "_ltb_load_data", None)
            if data is None or name != getattr(conn, "_ltb_load_file", None):
                msg = f"refused the server's request for local file {name!r}"
                raise PermissionError(msg)
            _send_from_memory(conn, data)
            return None
        return original(filename, conn)

    guarded._ltb_guard = True  # type: ignore[attr-defined]
    setattr(pm, "_send_local_file", guarded)  # noqa: B010 - private, may be absent
    return True


# Installed with the first bulk-loading engine, not at import: a process that never bulk-loads
# keeps PyMySQL exactly as it was.
_GUARDED = False


def _send_from_memory(conn: Any, data: bytes) -> None:
    # PyMySQL's sender reads a file in packets; these are the same packets, from memory.
    size = max(1, min(int(getattr(conn, "max_allowed_packet", _SEND_CHUNK)), _SEND_CHUNK))
    view = memoryview(data)
    for start in range(0, len(view), size):
        conn.write_packet(view[start : start + size])


def sweep_stale_spill_files(now: float | None = None) -> int:
    """Remove ``ltb-load-*.tsv`` files that earlier versions left behind; returns how many.

    Only this user's files, and only ones older than any load could still be reading.
    """
    now = time.time() if now is None else now
    removed = 0
    for directory in {d for d in (_TMP_DIR, tempfile.gettempdir()) if d}:
        with contextlib.suppress(OSError):
            for path in Path(directory).glob("ltb-load-*.tsv"):
                with contextlib.suppress(OSError):
                    info = path.lstat()
                    if info.st_uid == os.getuid() and now - info.st_mtime > _STALE_SPILL_AGE:
                        path.unlink()
                        removed += 1
    return removed


def enable_local_infile_capability(connect_args: dict[str, Any]) -> None:
    """Ask PyMySQL to negotiate LOCAL INFILE (the per-statement permission stays off)."""
    global _GUARDED  # noqa: PLW0603 - one process-wide patch, installed once
    if not _GUARDED:
        _GUARDED = _install_guard()
        sweep_stale_spill_files()  # once per process, with the first bulk-loading engine
    connect_args.setdefault("local_infile", True)


def lock_local_infile(dbapi_connection: Any, *_: Any) -> None:
    """SQLAlchemy ``connect`` listener: keep PyMySQL's LOCAL INFILE permission off by default."""
    if hasattr(dbapi_connection, "_local_infile"):
        dbapi_connection._local_infile = False  # PyMySQL's only switch
        dbapi_connection._ltb_owned = True  # held to one file by the guard


def supports_load_data(dbapi_connection: Any) -> bool:
    """A PyMySQL connection that negotiated the LOCAL INFILE capability."""
    flag = getattr(dbapi_connection, "client_flag", 0)
    return (
        _GUARDED
        and getattr(dbapi_connection, "_ltb_owned", False)
        and bool(flag & _CLIENT_LOCAL_FILES)
    )


def _tsv(rows: Sequence[tuple[Any, ...]]) -> str:
    # Vector text is digits, signs, dots, commas and brackets: nothing to escape.
    return "".join(
        f"{r[0].translate(_ESCAPES)}\t{r[1]}\t{r[2].translate(_ESCAPES)}\t"
        f"{r[3].translate(_ESCAPES)}\n"
        for r in rows
    )


def _field(value: Any) -> str:
    if isinstance(value, str):
        # Most values (JSON postings, ids) have nothing to escape: a C-speed scan skips them.
        return value.translate(_ESCAPES) if _NEEDS_ESCAPE.search(value) else value
    if value is None:
        return "\\N"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    msg = f"LOAD DATA takes str, int or None values, got {type(value).__name__}"
    raise TypeError(msg)


def _tsv_any(rows: Sequence[tuple[Any, ...]]) -> str:
    return "".join("\t".join(map(_field, row)) + "\n" for row in rows)


def load_rows(
    dbapi_connection: Any,
    table: str,
    rows: Sequence[tuple[Any, ...]],
    columns: Sequence[str] = STORE_COLUMNS,
) -> int:
    """Run one ``LOAD DATA LOCAL ... REPLACE`` on a raw PyMySQL connection; returns rowcount.

    The rows are sent from memory under a one-time name (no file is written); each row has
    one value per name in ``columns``.
    Raises LoadDataWarningError when TiDB reports warnings, so the caller's transaction rolls back.
    """
    if not supports_load_data(dbapi_connection):
        msg = "this connection cannot LOAD DATA LOCAL from memory; use the INSERT fallback"
        raise RuntimeError(msg)
    name = f"ltb-load-{secrets.token_hex(8)}.tsv"  # a name the guard answers, not a path
    cursor = dbapi_connection.cursor()
    dbapi_connection._ltb_load_file = name  # the only name it may send
    tsv = _tsv(rows) if tuple(columns) == STORE_COLUMNS else _tsv_any(rows)
    dbapi_connection._ltb_load_data = tsv.encode("utf-8")
    dbapi_connection._local_infile = True  # only for this statement
    try:
        cursor.execute(load_data_sql(table, columns), (name,))
    finally:
        dbapi_connection._local_infile = False
        dbapi_connection._ltb_load_file = None
        dbapi_connection._ltb_load_data = None
    if cursor.warning_count:
        cursor.execute("SHOW WARNINGS LIMIT 3")
        detail = "; ".join(str(w[2]) for w in cursor.fetchall())
        msg = f"LOAD DATA into {table!r} reported warnings: {detail}"
        raise LoadDataWarningError(msg)
    return int(cursor.rowcount)
