"""Run one store operation with the sync or the async engine, from a single definition.

An operation is a generator that yields requests (a read, a write transaction, an embedding
call) and receives their results. ``run_sync`` and ``run_async`` execute the same generator, so
the store's logic, validation and SQL exist once while both APIs stay native.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from langchain_tidb_bedrock.vectorstores.bulk import LoadRows, load_rows, supports_load_data

if TYPE_CHECKING:  # at run time it would pull in the callbacks, tracers and splitters
    from langchain_core.embeddings import Embeddings

__all__ = ["EmbedDocs", "EmbedQuery", "Op", "Read", "Write", "run_async", "run_sync"]

T = TypeVar("T")


@dataclass(frozen=True)
class Read:
    """Run one SELECT (or EXPLAIN); the result is the list of rows."""

    statement: sa.Executable | str
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class Write:
    """Run statements in one transaction; the result is the total rowcount.

    A step is a Core statement, or driver SQL with a list of parameter tuples (executemany).
    """

    steps: Sequence[sa.Executable | tuple[str, list[tuple[Any, ...]]] | LoadRows] = field(
        default_factory=list
    )


@dataclass(frozen=True)
class EmbedDocs:
    """Embed texts with the store's embedding model."""

    texts: list[str]


@dataclass(frozen=True)
class EmbedQuery:
    """Embed one query text."""

    text: str


Request = Read | Write | EmbedDocs | EmbedQuery
Op = Generator[Request, Any, T]


def _drive(op: Op[T], handle: Callable[[Request], Any]) -> T:
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = op.throw(error) if error is not None else op.send(send)
        except StopIteration as stop:
            return stop.value
        try:
            send, error = handle(request), None
        except Exception as exc:  # handed to the operation, which may recover or re-raise
            send, error = None, exc


def run_sync(op: Op[T], engine: sa.Engine, embeddings: Embeddings | None) -> T:
    """Execute ``op`` with blocking calls."""

    def handle(request: Request) -> Any:
        if isinstance(request, Read):
            with engine.connect() as conn:
                if isinstance(request.statement, str):
                    return conn.exec_driver_sql(request.statement, request.params or {}).all()
                return conn.execute(request.statement, request.params or {}).all()
        if isinstance(request, Write):
            total = 0
            with engine.begin() as conn:
                for step in request.steps:
                    if isinstance(step, LoadRows):
                        raw = conn.connection.dbapi_connection
                        if supports_load_data(raw):
                            total += load_rows(raw, step.table, step.rows)
                        else:
                            total += conn.exec_driver_sql(step.fallback_sql, step.rows).rowcount
                    elif isinstance(step, tuple):
                        total += conn.exec_driver_sql(step[0], step[1]).rowcount
                    else:
                        total += conn.execute(step).rowcount
            return total
        if embeddings is None:
            msg = "this store has no embedding model; pass vectors (add_embeddings, *_by_vector)"
            raise ValueError(msg)
        if isinstance(request, EmbedDocs):
            return embeddings.embed_documents(request.texts)
        return embeddings.embed_query(request.text)

    return _drive(op, handle)


async def run_async(op: Op[T], engine: AsyncEngine, embeddings: Embeddings | None) -> T:
    """Execute ``op`` on the event loop with the async driver."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = op.throw(error) if error is not None else op.send(send)
        except StopIteration as stop:
            return stop.value
        try:
            send, error = await _ahandle(request, engine, embeddings), None
        except Exception as exc:
            send, error = None, exc


async def _ahandle(request: Request, engine: AsyncEngine, embeddings: Embeddings | None) -> Any:
    if isinstance(request, Read):
        async with engine.connect() as conn:
            if isinstance(request.statement, str):
                res = await conn.exec_driver_sql(request.statement, request.params or {})
            else:
                res = await conn.execute(request.statement, request.params or {})
            return res.all()
    if isinstance(request, Write):
        total = 0
        async with engine.begin() as conn:
            for step in request.steps:
                if isinstance(step, LoadRows):
                    step = (step.fallback_sql, step.rows)  # noqa: PLW2901 - aiomysql: INSERT
                if isinstance(step, tuple):
                    total += (await conn.exec_driver_sql(step[0], step[1])).rowcount
                else:
                    total += (await conn.execute(step)).rowcount
        return total
    if embeddings is None:
        msg = "this store has no embedding model; pass vectors (add_embeddings, *_by_vector)"
        raise ValueError(msg)
    if isinstance(request, EmbedDocs):
        return await embeddings.aembed_documents(request.texts)
    return await embeddings.aembed_query(request.text)
