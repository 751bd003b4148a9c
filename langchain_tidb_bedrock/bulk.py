"""Bulk upserts with ``LOAD DATA LOCAL INFILE ... REPLACE``, TiDB's fastest ingest path.

TiDB parses a multi-row INSERT as one huge SQL statement; ``LOAD DATA`` skips the SQL parser and
reads the rows as tab-separated fields, roughly twice as fast here. ``REPLACE`` gives the same
end state as our ``INSERT ... ON DUPLICATE KEY UPDATE`` (every column is rewritten).

Safety: the client capability is negotiated at connect time, but PyMySQL's permission flag stays
off except while our own statement runs, so a server can never pull a file at any other moment.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_tidb_bedrock.schema import quote_identifier

__all__ = ["LoadRows", "enable_local_infile_capability", "load_rows", "supports_load_data"]

_CLIENT_LOCAL_FILES = 128  # pymysql.constants.CLIENT.LOCAL_FILES
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})
# A RAM-backed directory where there is one: the file lives for one statement.
# mkstemp creates it 0600 with a random name, so a shared directory is safe.
_SHM = "/dev/shm"  # noqa: S108
_TMP_DIR = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None


@dataclass(frozen=True)
class LoadRows:
    """A write step: upsert ``rows`` (id, vector text, document, metadata JSON) into ``table``.

    ``fallback_sql`` is the equivalent INSERT for drivers that cannot LOAD DATA.
    """

    table: str
    rows: list[tuple[str, str, str, str]]
    fallback_sql: str


def load_data_sql(table: str) -> str:
    """The statement; the file name is bound, the table a validated identifier."""
    return (
        f"LOAD DATA LOCAL INFILE %s REPLACE INTO TABLE {quote_identifier(table)} "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
        "LINES TERMINATED BY '\\n' (`id`, `embedding`, `document`, `meta`)"
    )


def enable_local_infile_capability(connect_args: dict[str, Any]) -> None:
    """Ask PyMySQL to negotiate LOCAL INFILE (the per-statement permission stays off)."""
    connect_args.setdefault("local_infile", True)


def lock_local_infile(dbapi_connection: Any, *_: Any) -> None:
    """SQLAlchemy ``connect`` listener: keep PyMySQL's LOCAL INFILE permission off by default."""
    if hasattr(dbapi_connection, "_local_infile"):
        dbapi_connection._local_infile = False


def supports_load_data(dbapi_connection: Any) -> bool:
    """A PyMySQL connection that negotiated the LOCAL INFILE capability."""
    flag = getattr(dbapi_connection, "client_flag", 0)
    return hasattr(dbapi_connection, "_local_infile") and bool(flag & _CLIENT_LOCAL_FILES)


def _tsv(rows: Sequence[tuple[str, str, str, str]]) -> str:
    # Vector text is digits, signs, dots, commas and brackets: nothing to escape.
    return "".join(
        f"{r[0].translate(_ESCAPES)}\t{r[1]}\t{r[2].translate(_ESCAPES)}\t"
        f"{r[3].translate(_ESCAPES)}\n"
        for r in rows
    )


class LoadDataWarningError(RuntimeError):
    """TiDB accepted the rows with warnings (it would have altered data): nothing is kept."""


def load_rows(dbapi_connection: Any, table: str, rows: Sequence[tuple[str, str, str, str]]) -> int:
    """Run one ``LOAD DATA LOCAL ... REPLACE`` on a raw PyMySQL connection; returns rowcount.

    Raises LoadDataWarningError when TiDB reports warnings, so the caller's transaction rolls back.
    """
    fd, path = tempfile.mkstemp(prefix="ltb-load-", suffix=".tsv", dir=_TMP_DIR)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(_tsv(rows))
        cursor = dbapi_connection.cursor()
        dbapi_connection._local_infile = True
        try:
            cursor.execute(load_data_sql(table), (path,))
        finally:
            dbapi_connection._local_infile = False
        if cursor.warning_count:
            cursor.execute("SHOW WARNINGS LIMIT 3")
            detail = "; ".join(str(w[2]) for w in cursor.fetchall())
            msg = f"LOAD DATA into {table!r} reported warnings: {detail}"
            raise LoadDataWarningError(msg)
        return int(cursor.rowcount)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
