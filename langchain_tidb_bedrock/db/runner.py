"""Run one store operation with the sync or the async engine, from a single definition.

An operation is a generator that yields requests (a read, a write transaction, an embedding
call) and receives their results. Operations use the typed helpers (``rows = yield from
read(stmt)``) so mypy checks what each request returns. ``drive`` runs an operation against any
handler: the sync and async engines (see ``engines.py``), or a scripted one in unit tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from langchain_tidb_bedrock.db.bulk import LoadRows
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = [
    "EmbedDocs",
    "EmbedQuery",
    "Op",
    "Read",
    "Request",
    "Rows",
    "Write",
    "WriteStep",
    "adrive",
    "drive",
    "embed_documents",
    "embed_query",
    "read",
    "write",
]

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

T = TypeVar("T")
Rows = list[sa.Row[Any]]
WriteStep = sa.Executable | tuple[str, list[tuple[Any, ...]]] | LoadRows


@dataclass(frozen=True)
class Read:
    """Run one SELECT (or EXPLAIN); the result is the list of rows."""

    statement: sa.Executable | str
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class Write:
    """Run statements in one transaction; the result is the total rowcount.

    A step is a Core statement, driver SQL with a list of parameter tuples (executemany), or
    rows to bulk-load (``LOAD DATA LOCAL`` where the driver allows it, else its INSERT).
    """

    steps: Sequence[WriteStep] = field(default_factory=list)


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


def read(statement: sa.Executable | str, params: dict[str, Any] | None = None) -> Op[Rows]:
    """Yield one read; returns its rows."""
    rows: Rows = yield Read(statement, params)
    return rows


def write(*steps: WriteStep) -> Op[int]:
    """Yield one transaction; returns the total rowcount."""
    count: int = yield Write(list(steps))
    return count


def embed_documents(texts: list[str]) -> Op[list[list[float]]]:
    """Yield one embedding call for documents; returns one vector per text."""
    vectors: list[list[float]] = yield EmbedDocs(texts)
    return vectors


def embed_query(text: str) -> Op[list[float]]:
    """Yield one embedding call for a query; returns its vector."""
    vector: list[float] = yield EmbedQuery(text)
    return vector


def drive(op: Op[T], handle: Callable[[Request], Any]) -> T:
    """Run ``op``, answering each request with ``handle``; errors go back into the operation."""
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


async def adrive(op: Op[T], handle: Callable[[Request], Awaitable[Any]]) -> T:
    """:func:`drive` with an async handler."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            request = op.throw(error) if error is not None else op.send(send)
        except StopIteration as stop:
            return stop.value
        try:
            send, error = await handle(request), None
        except Exception as exc:
            send, error = None, exc


def no_embeddings() -> ValueError:
    """The error for an embedding request on a store built without a model."""
    return InvalidInputError(
        "this store has no embedding model; pass vectors (add_embeddings, *_by_vector)"
    )


def embed(request: EmbedDocs | EmbedQuery, embeddings: Embeddings | None) -> Any:
    """Answer an embedding request with blocking calls."""
    if embeddings is None:
        raise no_embeddings()
    if isinstance(request, EmbedDocs):
        return embeddings.embed_documents(request.texts)
    return embeddings.embed_query(request.text)


async def aembed(request: EmbedDocs | EmbedQuery, embeddings: Embeddings | None) -> Any:
    """Answer an embedding request on the event loop."""
    if embeddings is None:
        raise no_embeddings()
    if isinstance(request, EmbedDocs):
        return await embeddings.aembed_documents(request.texts)
    return await embeddings.aembed_query(request.text)
