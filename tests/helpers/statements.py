"""Count what a call sends to TiDB: every statement on both pools of a ``TiDBEngine``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa

from langchain_tidb_bedrock import TiDBEngine

T = TypeVar("T")


@contextlib.contextmanager
def recorded(engine: TiDBEngine) -> Iterator[list[str]]:
    """The SQL sent on the engine's read and write pools while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    pools = (engine.sync, engine.sync_read)
    for pool in pools:
        sa.event.listen(pool, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for pool in pools:
            sa.event.remove(pool, "before_cursor_execute", record)


def sent_by(engine: TiDBEngine, call: Callable[[], T]) -> tuple[T, list[str]]:
    """``call()``'s result and every statement it sent, on either pool of the engine."""
    with recorded(engine) as seen:
        result = call()
    return result, seen
