"""``TiDBLoader``: documents from a SQL query, streamed from TiDB."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document
from sqlalchemy.engine import URL

from langchain_tidb_bedrock.db.component import TiDBComponent
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.document_loaders.values import json_safe, text_of
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = ["DEFAULT_FETCH_SIZE", "TiDBLoader"]

DEFAULT_FETCH_SIZE = 1000
"""Rows read from the server per round: memory stays flat in the size of the result."""


def _columns(value: object, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        msg = f"{what} must be a list of column names, got {type(value).__name__}"
        if isinstance(value, str):
            msg += f": write [{value!r}]"
        raise InvalidInputError(msg)
    names = list(value)
    for position, name in enumerate(names):
        if not isinstance(name, str) or not name:
            msg = f"{what}[{position}] must be a column name, got {name!r}"
            raise InvalidInputError(msg)
    return names


class TiDBLoader(TiDBComponent, BaseLoader):
    """Load documents from the rows of a TiDB query, streamed with a server-side cursor.

    Setup:
        Install the package and point it at TiDB (``TIDB_*`` variables, a URL or an engine):

        ```bash
        pip install -U langchain-tidb-bedrock
        ```

    Key init args:
        query: str | sqlalchemy.Executable
            The query; values go in ``params`` and are bound (``:name`` placeholders).
        params: Mapping[str, Any] | None
            Bound parameter values.
        engine: TiDBEngine | None
            A shared engine (never closed by the loader); or ``connection_string``; with
            neither, ``TiDBEngine.from_env()``.
        page_content_columns: list[str] | None
            Columns written to ``page_content`` as ``"name: value"`` lines (default: all).
        metadata_columns: list[str] | None
            Columns copied to ``metadata``, made JSON-safe (default: none).
        id_column: str | None
            Column that becomes ``Document.id``.

    Instantiate:
        ```python
        from langchain_tidb_bedrock import TiDBEngine, TiDBLoader

        loader = TiDBLoader(
            "SELECT id, title, body, price, updated_at FROM articles WHERE lang = :lang",
            params={"lang": "en"},
            engine=TiDBEngine.from_env(),
            page_content_columns=["title", "body"],
            metadata_columns=["price", "updated_at"],
            id_column="id",
        )
        ```

    Load:
        ```python
        for doc in loader.lazy_load():  # rows stream in rounds of fetch_size
            print(doc.id, doc.metadata)
        ```

        ```python
        42 {'price': 9.5, 'updated_at': '2026-11-30T08:15:00'}
        ```

    Async load:
        ```python
        async for doc in loader.alazy_load():
            ...
        ```

    Metadata values are JSON-safe: ``Decimal`` becomes an int, a float or text (whichever is
    exact), dates and times ISO 8601 text, ``TIME`` ``HH:MM:SS``, bytes UTF-8 text (base64 when
    not UTF-8). A column named in the arguments but missing from the result raises
    ``InvalidInputError`` before the first document.
    """

    def __init__(
        self,
        query: str | sa.Executable,
        *,
        params: Mapping[str, Any] | None = None,
        engine: TiDBEngine | sa.Engine | None = None,
        connection_string: str | URL | None = None,
        page_content_columns: Sequence[str] | None = None,
        metadata_columns: Sequence[str] | None = None,
        id_column: str | None = None,
        fetch_size: int = DEFAULT_FETCH_SIZE,
        tls: bool | None = None,
        ca_path: str | None = None,
        engine_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Describe the load; no connection is made until the first document is asked for.

        Args:
            query: a SELECT with ``:name`` placeholders, or a SQLAlchemy statement.
            params: the placeholders' values (always bound, never put into the SQL text).
            engine: a shared :class:`TiDBEngine` (or a SQLAlchemy engine, used as it is).
            connection_string: a TiDB URL, for a private engine released after each load.
            page_content_columns: columns of ``page_content``; None: every column.
            metadata_columns: columns of ``metadata``; None: none.
            id_column: column for ``Document.id`` (its value as text); None: no ids.
            fetch_size: rows fetched from the server per round.
            tls: force TLS on or off for a private engine (default on for remote hosts).
            ca_path: CA bundle for a private engine's TLS.
            engine_args: extra ``create_engine`` arguments for a private engine.

        Raises:
            InvalidInputError: a blank query, params that are not a mapping, column arguments
                that are not lists of names, or a fetch_size below 1.
            ConnectionConfigError: connection settings that clash (a TiDBEngine with
                ``connection_string``, ``tls``, ...).
        """
        if isinstance(query, str):
            if not query.strip():
                msg = "query must not be blank"
                raise InvalidInputError(msg)
            self._statement: sa.Executable = sa.text(query)
        elif isinstance(query, sa.Executable):
            self._statement = query
        else:
            msg = f"query must be SQL text or a SQLAlchemy statement, got {type(query).__name__}"
            raise InvalidInputError(msg)
        if params is not None and not isinstance(params, Mapping):
            msg = (
                f"params must be a mapping of placeholder names to values, got "
                f"{type(params).__name__} (write :name in the query and pass {{'name': value}})"
            )
            raise InvalidInputError(msg)
        if id_column is not None and (not isinstance(id_column, str) or not id_column):
            msg = f"id_column must be a column name, got {id_column!r}"
            raise InvalidInputError(msg)
        if isinstance(fetch_size, bool) or not isinstance(fetch_size, int) or fetch_size < 1:
            msg = f"fetch_size must be a positive integer, got {fetch_size!r}"
            raise InvalidInputError(msg)
        self.query = query
        self.params = dict(params or {})
        self.page_content_columns = _columns(page_content_columns, "page_content_columns")
        self.metadata_columns = _columns(metadata_columns, "metadata_columns") or []
        self.id_column = id_column
        self.fetch_size = fetch_size
        TiDBComponent.__init__(
            self,
            engine=engine,
            connection_string=connection_string,
            tls=tls,
            ca_path=ca_path,
            engine_args=engine_args,
        )

    # ------------------------------------------------------------------ rows -> documents

    def _plan(self, keys: Sequence[str]) -> _Plan:
        """Where each wanted column sits in the result; a missing one fails before any row."""
        position: dict[str, int] = {}
        for index, key in enumerate(keys):
            position.setdefault(key, index)  # a repeated name: its first column
        wanted = [*(self.page_content_columns or []), *self.metadata_columns]
        if self.id_column is not None:
            wanted.append(self.id_column)
        missing = [name for name in dict.fromkeys(wanted) if name not in position]
        if missing:
            msg = (
                f"the query's result has no column {', '.join(map(repr, missing))}; "
                f"it has {list(keys)}"
            )
            raise InvalidInputError(msg)
        content = self.page_content_columns
        if content is None:
            content = list(dict.fromkeys(keys))
        return _Plan(
            [(name, position[name]) for name in content],
            [(name, position[name]) for name in self.metadata_columns],
            None if self.id_column is None else position[self.id_column],
        )

    # ------------------------------------------------------------------ loading

    def _stream_options(self) -> dict[str, Any]:
        # A server-side cursor (PyMySQL/aiomysql SSCursor) read in rounds of fetch_size; the
        # buffer never grows past it (text() statements ignore yield_per, not max_row_buffer).
        return {"stream_results": True, "max_row_buffer": self.fetch_size}

    def lazy_load(self) -> Iterator[Document]:
        """Documents one by one, read from the server ``fetch_size`` rows at a time."""
        try:
            with self._tidb.sync_read.connect() as conn:
                result = conn.execution_options(**self._stream_options()).execute(
                    self._statement, self.params
                )
                result = result.yield_per(self.fetch_size)
                finished = False
                try:
                    plan = self._plan(list(result.keys()))
                    for row in result:
                        yield plan.document(row)
                    finished = True
                finally:
                    if not finished:
                        # Stopped early: drop the connection rather than read the rest of the
                        # result off the wire (a server-side cursor must be drained to reuse).
                        _forget_unread_rows(conn.connection.dbapi_connection)
                        conn.invalidate()
        finally:
            if self._owns_engine:
                self._tidb.close()

    async def alazy_load(self) -> AsyncIterator[Document]:
        """Documents one by one on the event loop, ``fetch_size`` rows per round."""
        timeout = self._tidb.read_timeout
        try:
            # The engine's async read pool for this loop (TLS and pool policy included).
            read_engine = await self._tidb.async_read_engine()
            async with read_engine.connect() as conn:
                result = await conn.stream(
                    self._statement, self.params, execution_options=self._stream_options()
                )
                result = result.yield_per(self.fetch_size)
                finished = False
                try:
                    plan = self._plan(list(result.keys()))
                    while True:
                        rows = await asyncio.wait_for(result.fetchmany(self.fetch_size), timeout)
                        if not rows:
                            break
                        for row in rows:
                            yield plan.document(row)
                    finished = True
                finally:
                    if not finished:
                        raw = await conn.get_raw_connection()
                        _forget_unread_rows(raw.dbapi_connection)
                        await conn.invalidate()
        finally:
            if self._owns_engine:
                await self._tidb.aclose()


class _Plan(NamedTuple):
    """Which result columns make a document's content, metadata and id."""

    content: list[tuple[str, int]]
    metadata: list[tuple[str, int]]
    id_index: int | None

    def document(self, row: Sequence[Any]) -> Document:
        page_content = "\n".join(f"{name}: {text_of(row[i])}" for name, i in self.content)
        doc_id = None
        if self.id_index is not None and row[self.id_index] is not None:
            doc_id = text_of(row[self.id_index])
        return Document(
            id=doc_id,
            page_content=page_content,
            metadata={name: json_safe(row[i]) for name, i in self.metadata},
        )


def _forget_unread_rows(dbapi_connection: Any) -> None:
    """Let the driver drop a half-read result without reading the rest of it.

    Closing an unbuffered (server-side) result reads it to the end; the connection is about to
    be discarded instead, so mark the result finished (PyMySQL, and aiomysql behind
    SQLAlchemy's adapter, keep it in ``_result``).
    """
    raw = getattr(dbapi_connection, "_connection", dbapi_connection)
    pending: Any = getattr(raw, "_result", None)
    if pending is not None and getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False
