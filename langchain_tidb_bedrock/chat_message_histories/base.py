"""``TiDBChatMessageHistory``: LangChain chat history in a TiDB table."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage
from sqlalchemy.engine import URL
from sqlalchemy.util import greenlet_spawn

from langchain_tidb_bedrock.chat_message_histories.messages import (
    check_session_id,
    decode_message,
    encode_messages,
)
from langchain_tidb_bedrock.chat_message_histories.table import Layout, TableRef, table_changed
from langchain_tidb_bedrock.db.component import TiDBComponent, check_limit, db_error_code
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.identifiers import validate_identifier
from langchain_tidb_bedrock.db.retry import DUPLICATE_KEY, is_write_conflict
from langchain_tidb_bedrock.db.runner import Op, WriteStep, read, write
from langchain_tidb_bedrock.db.tables import ttl_microseconds
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = ["DEFAULT_TABLE", "TiDBChatMessageHistory"]

DEFAULT_TABLE = "langchain_message_store"  # langchain-community's default, so its table opens
T = TypeVar("T")

# A write that another writer got in the way of stored nothing and runs again: a write
# conflict or deadlock (db/retry.py), or a duplicate key (two appends numbered alike).
_ATTEMPTS = 40


def _conflict(exc: BaseException) -> bool:
    return is_write_conflict(exc, duplicate_key=True)


def _backoff(attempt: int) -> float:
    return random.uniform(0, min(0.05, 0.001 * 2**attempt))  # noqa: S311 - jitter only


class TiDBChatMessageHistory(TiDBComponent, BaseChatMessageHistory):
    """Chat message history stored in TiDB, one row per message.

    Setup:
        Install the package and point it at TiDB (TiDB Cloud Starter or self-managed):

        ```bash
        pip install -U langchain-tidb-bedrock
        export TIDB_HOST=gateway01.us-west-2.prod.aws.tidbcloud.com TIDB_PORT=4000
        export TIDB_USER=xxxx.root TIDB_PASSWORD=... TIDB_DB_NAME=test
        ```

    Key init args:
        session_id: str
            The conversation (1-255 characters, no surrounding whitespace).
        engine: TiDBEngine | None
            A shared engine (never closed by the history); or ``connection_string``; with
            neither, ``TiDBEngine.from_env()``.
        table_name: str
            Created on the first write. A table made by langchain-community's
            ``TiDBChatMessageHistory`` is used as it is.
        ttl: float | timedelta | None
            Messages expire this long after they were added: hidden from reads at once, and
            deleted later by TiDB's TTL job.

    Instantiate:
        ```python
        from langchain_tidb_bedrock import TiDBChatMessageHistory, TiDBEngine

        engine = TiDBEngine.from_env()
        history = TiDBChatMessageHistory("user-42:chat-7", engine=engine)
        ```

    Add and read messages:
        ```python
        from langchain_core.messages import AIMessage, HumanMessage

        history.add_messages([HumanMessage("What is TiDB?"), AIMessage("A SQL database.")])
        history.messages
        ```

        ```python
        [HumanMessage(content='What is TiDB?', ...), AIMessage(content='A SQL database.', ...)]
        ```

    Sessions:
        ```python
        history.list_sessions(prefix="user-42:")  # ['user-42:chat-7']
        history.delete_session("user-42:chat-6")
        history.clear()  # this session
        ```

    Async:
        ```python
        await history.aadd_messages([HumanMessage("hi")])
        messages = await history.aget_messages()
        await history.aclear()
        ```

    Use with a chain:
        ```python
        from langchain_core.runnables.history import RunnableWithMessageHistory

        chat = RunnableWithMessageHistory(
            create_rag_chain(store, llm),
            lambda session_id: TiDBChatMessageHistory(session_id, engine=engine),
            input_messages_key="question",
            history_messages_key="chat_history",
            output_messages_key="answer",
        )
        chat.invoke({"question": "And its vector search?"},
                    config={"configurable": {"session_id": "user-42:chat-7"}})
        ```

    Guarantees: each ``add_messages`` call is one statement (all of its messages or none);
    messages come back in the order they were added, also when several processes append to
    one session through different TiDB servers (the order is a per-session sequence, never
    AUTO_INCREMENT: an append is numbered from the last message this history read or wrote,
    and when another writer took that number the INSERT fails whole on the key and runs again
    numbered inside the statement); every read goes to TiDB, so another process's messages
    show on the next read; errors are raised, never logged and swallowed.
    """

    def __init__(
        self,
        session_id: str,
        *,
        engine: TiDBEngine | sa.Engine | None = None,
        connection_string: str | URL | None = None,
        table_name: str = DEFAULT_TABLE,
        ttl: float | timedelta | None = None,
        tls: bool | None = None,
        ca_path: str | None = None,
        engine_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Describe the history; no connection is made until the first read or write.

        Args:
            session_id: the conversation this history reads and writes.
            engine: a shared :class:`TiDBEngine` (or a SQLAlchemy engine, used as it is).
            connection_string: a TiDB URL, for a private engine that :meth:`close` releases.
            table_name: the message table (created on the first write when missing).
            ttl: seconds (or a timedelta) after which each message expires; None: never.
            tls: force TLS on or off for a private engine (default on for remote hosts).
            ca_path: CA bundle for a private engine's TLS.
            engine_args: extra ``create_engine`` arguments for a private engine.

        Raises:
            InvalidInputError: a blank or over-long ``session_id``, a bad ``table_name`` or
                ``ttl``.
            ConnectionConfigError: connection settings that clash (a TiDBEngine with
                ``connection_string``, ``tls``, ...).
        """
        self.session_id = check_session_id(session_id)
        self.table_name = validate_identifier(table_name)
        self.ttl = ttl
        self._ttl_us = ttl_microseconds(ttl)
        TiDBComponent.__init__(
            self,
            engine=engine,
            connection_string=connection_string,
            tls=tls,
            ca_path=ca_path,
            engine_args=engine_args,
        )
        self._table = TableRef(self._tidb, self.table_name, ttl=self._ttl_us is not None)
        # The session's last sequence number as this history last read or wrote it: the next
        # append is numbered from it (a plain INSERT), and renumbered in SQL if it collides.
        self._last_seq: int | None = None

    def __repr__(self) -> str:
        return (
            f"TiDBChatMessageHistory(session_id={self.session_id!r}, "
            f"table_name={self.table_name!r}, engine={self._tidb!r})"
        )

    # ------------------------------------------------------------------ operations

    def _op_messages(self) -> Op[list[BaseMessage]]:
        layout = yield from self._table.op_layout(create=False)
        if layout is None:
            return []
        try:
            rows = yield from read(layout.select(self.session_id, self._ttl_us))
        except sa.exc.DBAPIError as exc:
            if not table_changed(exc):
                raise
            self._table.forget()  # dropped (or replaced) since we looked: look again
            layout = yield from self._table.op_layout(create=False)
            if layout is None:
                return []
            rows = yield from read(layout.select(self.session_id, self._ttl_us))
        if not layout.community:
            self._last_seq = int(rows[-1][0]) if rows else 0  # ordered by seq: the last is max
        return [decode_message(r.message) for r in rows]

    def _op_write(self, steps: Any) -> Op[int]:
        """Run ``steps(layout)`` as one transaction on the table (created when missing)."""
        layout = yield from self._table.op_layout(create=True)
        assert layout is not None  # noqa: S101 - create=True returns the table it made
        try:
            return (yield from write(*steps(layout)))
        except sa.exc.DBAPIError as exc:
            if not table_changed(exc):
                raise
            self._table.forget()
            layout = yield from self._table.op_layout(create=True)
            assert layout is not None  # noqa: S101
            return (yield from write(*steps(layout)))

    def _op_delete(self, session_id: str) -> Op[int]:
        layout = yield from self._table.op_layout(create=False)
        if layout is None:
            return 0
        try:
            return (yield from write(layout.delete(session_id)))
        except sa.exc.DBAPIError as exc:
            if not table_changed(exc):
                raise
            self._table.forget()
            return 0

    def _op_sessions(self, prefix: str | None, limit: int | None) -> Op[list[str]]:
        layout = yield from self._table.op_layout(create=False)
        if layout is None or limit == 0:
            return []
        rows = yield from read(layout.sessions(prefix, limit, self._ttl_us))
        return [str(r[0]) for r in rows]

    def _retrying(self, call: Callable[[], int]) -> int:
        for attempt in range(_ATTEMPTS):
            try:
                return call()
            except sa.exc.DBAPIError as exc:
                if not _conflict(exc) or attempt == _ATTEMPTS - 1:
                    raise
            time.sleep(_backoff(attempt))
        raise AssertionError  # pragma: no cover - the loop returns or raises

    async def _aretrying(self, call: Callable[[], Awaitable[int]]) -> int:
        for attempt in range(_ATTEMPTS):
            try:
                return await call()
            except sa.exc.DBAPIError as exc:
                if not _conflict(exc) or attempt == _ATTEMPTS - 1:
                    raise
            await asyncio.sleep(_backoff(attempt))
        raise AssertionError  # pragma: no cover

    def _write(self, make_op: Callable[[], Op[int]]) -> int:
        return self._retrying(lambda: int(self._run(make_op())))

    async def _awrite(self, make_op: Callable[[], Op[int]]) -> int:
        async def call() -> int:
            return int(await self._arun(make_op()))

        return await self._aretrying(call)

    # An append is one statement, so it runs in autocommit on the engine's read pool: one
    # round trip, where a transaction adds a COMMIT (and, in pessimistic mode, a lock round)
    # for nothing: measured about half the write time on a local server.

    def _appended(self, after: int | None, count: int) -> None:
        """After an append: numbered from ``after``, the last number is known; else not."""
        self._last_seq = None if after is None else after + count

    def _failed(self, after: int | None, exc: sa.exc.DBAPIError) -> None:
        """An append failed: a collision forgets the number (the retry numbers in SQL)."""
        if after is not None and db_error_code(exc) == DUPLICATE_KEY:
            self._last_seq = None
        if table_changed(exc):
            self._table.forget()  # dropped or replaced since we looked: once more
            raise _Changed from exc

    def _append(self, payloads: list[str]) -> int:
        def attempt() -> int:
            layout = self._run(self._table.op_layout(create=True))
            assert layout is not None  # noqa: S101 - create=True returns the table it made
            after = None if layout.community else self._last_seq
            statement = layout.append(self.session_id, payloads, self._ttl_us, after=after)
            try:
                count = _execute_alone(self._tidb.sync_read, statement)
            except sa.exc.DBAPIError as exc:
                self._failed(after, exc)
                raise
            self._appended(after, len(payloads))
            return count

        return self._retrying(lambda: _once_more_if_changed(attempt))

    async def _aappend(self, payloads: list[str]) -> int:
        async def attempt() -> int:
            layout = await self._arun(self._table.op_layout(create=True))
            assert layout is not None  # noqa: S101
            after = None if layout.community else self._last_seq
            statement = layout.append(self.session_id, payloads, self._ttl_us, after=after)
            read_engine = await self._tidb.async_read_engine()  # the autocommit pool
            try:
                call = greenlet_spawn(_execute_alone, read_engine.sync_engine, statement)
                timeout = self._tidb.read_timeout
                count = int(await (call if timeout is None else asyncio.wait_for(call, timeout)))
            except sa.exc.DBAPIError as exc:
                self._failed(after, exc)
                raise
            self._appended(after, len(payloads))
            return count

        async def call() -> int:
            try:
                return await attempt()
            except _Changed:
                try:
                    return await attempt()
                except _Changed as again:
                    raise again.__cause__ from None  # type: ignore[misc]

        return await self._aretrying(call)

    # ------------------------------------------------------------------ LangChain API

    @property
    def messages(self) -> list[BaseMessage]:
        """The session's messages, oldest first (expired ones left out)."""
        return self._run(self._op_messages())

    @messages.setter
    def messages(self, messages: Sequence[BaseMessage]) -> None:
        """Replace the session's messages, in one transaction."""
        payloads = encode_messages(messages)
        session_id = self.session_id

        def steps(layout: Layout) -> list[WriteStep]:
            replace: list[WriteStep] = [layout.delete(session_id)]
            if payloads:
                replace.append(layout.append(session_id, payloads, self._ttl_us))
            return replace

        self._write(lambda: self._op_write(steps))

    async def aget_messages(self) -> list[BaseMessage]:
        """The session's messages, oldest first (expired ones left out)."""
        return await self._arun(self._op_messages())

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one statement (all of them or none).

        Raises:
            InvalidInputError: ``messages`` is not a list of messages, or one cannot be
                stored as JSON (the error names its position; nothing is written).
            sqlalchemy.exc.SQLAlchemyError: TiDB refused the write.
        """
        payloads = encode_messages(messages)
        if payloads:
            self._append(payloads)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one statement (all of them or none)."""
        payloads = encode_messages(messages)
        if payloads:
            await self._aappend(payloads)

    def clear(self) -> None:
        """Delete this session's messages."""
        self._write(lambda: self._op_delete(self.session_id))

    async def aclear(self) -> None:
        """Delete this session's messages."""
        await self._awrite(lambda: self._op_delete(self.session_id))

    # ------------------------------------------------------------------ sessions

    def list_sessions(self, prefix: str | None = None, limit: int | None = None) -> list[str]:
        """Ids of the sessions in the table with a live message, sorted.

        Args:
            prefix: only ids starting with this text (``%`` and ``_`` match themselves).
            limit: at most this many ids; None: all.
        """
        return self._run(self._op_sessions(_check_prefix(prefix), check_limit(limit)))

    async def alist_sessions(
        self, prefix: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Ids of the sessions in the table with a live message, sorted."""
        op = self._op_sessions(_check_prefix(prefix), check_limit(limit))
        return await self._arun(op)

    def delete_session(self, session_id: str) -> int:
        """Delete every message of ``session_id``; returns how many rows were deleted."""
        sid = check_session_id(session_id)
        return self._write(lambda: self._op_delete(sid))

    async def adelete_session(self, session_id: str) -> int:
        """Delete every message of ``session_id``; returns how many rows were deleted."""
        sid = check_session_id(session_id)
        return await self._awrite(lambda: self._op_delete(sid))


class _Changed(Exception):  # noqa: N818 - internal signal, never raised to callers
    """The table changed under a cached layout: look it up again and run once more."""


def _once_more_if_changed(attempt: Callable[[], int]) -> int:
    try:
        return attempt()
    except _Changed:
        try:
            return attempt()
        except _Changed as again:
            raise again.__cause__ from None  # type: ignore[misc]


def _execute_alone(engine: sa.Engine, statement: sa.Executable) -> int:
    """Run one statement by itself; in autocommit unless the pool is a caller's own."""
    with engine.connect() as conn:
        count = conn.execute(statement).rowcount
        if not conn.connection.dbapi_connection.get_autocommit():  # type: ignore[union-attr]
            conn.commit()  # a caller's engine (TiDBEngine(engine=...)): not autocommit
        return int(count)


def _check_prefix(prefix: object) -> str | None:
    if prefix is None or (isinstance(prefix, str) and prefix == ""):
        return None
    if not isinstance(prefix, str):
        msg = f"prefix must be a string or None, got {type(prefix).__name__}"
        raise InvalidInputError(msg)
    return prefix
