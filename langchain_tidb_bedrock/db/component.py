"""``TiDBComponent``: how a component finds its :class:`TiDBEngine`, and who closes it.

A component takes ``engine=`` (shared; never closed by the component) or ``connection_string=``
(sugar for a private engine the component owns and closes); with neither, the engine comes
from the ``TIDB_*`` environment (:meth:`TiDBEngine.from_env`). Every operation then runs
through that engine, so the one connection policy (pools, TLS, retries) applies everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL
from typing_extensions import Self

from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.runner import Op
from langchain_tidb_bedrock.db.unavailable import driver_code
from langchain_tidb_bedrock.errors import ConnectionConfigError, InvalidInputError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "TiDBComponent",
    "check_limit",
    "db_error_code",
    "encode_key",
    "encode_keys",
    "encode_namespace",
    "in_list",
    "is_missing_table",
]

T = TypeVar("T")


def db_error_code(exc: BaseException) -> int | None:
    """The server's error number behind a driver error (e.g. 1146 for a missing table)."""
    return driver_code(getattr(exc, "orig", None))


def is_missing_table(exc: BaseException) -> bool:
    """Whether ``exc`` is TiDB's "table doesn't exist" (1146)."""
    return isinstance(exc, sa.exc.DBAPIError) and db_error_code(exc) == 1146


def encode_keys(keys: object, *, what: str, max_bytes: int, call: str) -> list[bytes]:
    """Check a list of string keys and encode them as UTF-8 (how they are stored and compared).

    Raises:
        InvalidInputError: ``keys`` is one string or not a sequence, or a key is not a string,
            not encodable or longer than ``max_bytes``; the message names its position.
    """
    if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
        msg = f"{call} takes a list of {what}s, got {type(keys).__name__}"
        raise InvalidInputError(msg)
    out: list[bytes] = []
    for position, key in enumerate(keys):
        out.append(encode_key(key, what=what, max_bytes=max_bytes, position=position))
    return out


def encode_key(key: object, *, what: str, max_bytes: int, position: int | None = None) -> bytes:
    """One key as UTF-8, checked like :func:`encode_keys`."""
    where = "" if position is None else f" at position {position}"
    if not isinstance(key, str):
        msg = f"the {what}{where} is a {type(key).__name__}, not a string"
        raise InvalidInputError(msg)
    try:
        raw = key.encode()
    except UnicodeEncodeError:
        msg = f"the {what}{where} is not valid Unicode (a lone surrogate)"
        raise InvalidInputError(msg) from None
    if len(raw) > max_bytes:
        msg = f"the {what}{where} is {len(raw):,} bytes in UTF-8; at most {max_bytes:,} fit"
        raise InvalidInputError(msg)
    return raw


def encode_namespace(namespace: object, *, max_bytes: int) -> bytes:
    """A namespace (a non-blank string) as UTF-8, checked like :func:`encode_keys`."""
    if not isinstance(namespace, str) or not namespace.strip():
        msg = f"namespace must be a non-blank string, got {namespace!r}"
        raise InvalidInputError(msg)
    return encode_key(namespace, what="namespace", max_bytes=max_bytes)


def check_limit(limit: object) -> int | None:
    """A ``limit`` argument: a non-negative integer, or None for no limit."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        msg = f"limit must be a non-negative integer or None, got {limit!r}"
        raise InvalidInputError(msg)
    return limit


def in_list(name: str, values: list[Any], params: dict[str, Any]) -> str:
    """``%(name0)s, %(name1)s, ...`` for an IN list, binding each value into ``params``."""
    marks = []
    for i, value in enumerate(values):
        params[f"{name}{i}"] = value
        marks.append(f"%({name}{i})s")
    return ", ".join(marks)


class TiDBComponent:
    """Base class: resolves the engine once, runs operations on it, closes it when owned."""

    def __init__(
        self,
        *,
        engine: TiDBEngine | sa.Engine | None = None,
        connection_string: str | URL | None = None,
        tls: bool | None = None,
        ca_path: str | None = None,
        engine_args: Mapping[str, Any] | None = None,
        async_engine: AsyncEngine | None = None,
    ) -> None:
        """Pick the engine; no connection is made here.

        Args:
            engine: a shared :class:`TiDBEngine` (or a SQLAlchemy engine, used as given).
            connection_string: a TiDB URL for a private engine this component closes.
            tls: force TLS on or off for a private engine (default: on for remote hosts).
            ca_path: CA bundle for a private engine's TLS.
            engine_args: extra ``create_engine`` arguments for a private engine.
            async_engine: an aiomysql engine for a private engine's async path.
        """
        options: dict[str, Any] = {
            "tls": tls,
            "ca_path": ca_path,
            "engine_args": engine_args,
            "async_engine": async_engine,
        }
        if isinstance(engine, TiDBEngine):
            given = {"connection_string": connection_string, **options}
            clash = [name for name, value in given.items() if value is not None]
            if clash:
                msg = (
                    f"{', '.join(clash)} cannot be combined with a TiDBEngine: the engine "
                    "holds the connection settings"
                )
                raise ConnectionConfigError(msg)
            self._tidb, self._owns_engine = engine, False
        elif engine is not None or connection_string is not None:
            if engine is not None and not isinstance(engine, sa.Engine):
                msg = f"engine must be a TiDBEngine or a SQLAlchemy Engine, got {type(engine)}"
                raise ConnectionConfigError(msg)
            self._tidb = TiDBEngine(connection_string, engine=engine, **options)
            self._owns_engine = True
        else:  # TIDB_* from the environment, else the local tidb-server (announced)
            self._tidb = TiDBEngine.from_env(**options)
            self._owns_engine = True

    @property
    def tidb_engine(self) -> TiDBEngine:
        """The :class:`TiDBEngine` this component runs on (share it with other components)."""
        return self._tidb

    def _run(self, op: Op[T], embeddings: Embeddings | None = None) -> T:
        return self._tidb.run(op, embeddings)

    async def _arun(self, op: Op[T], embeddings: Embeddings | None = None) -> T:
        return await self._tidb.arun(op, embeddings)

    def close(self) -> None:
        """Release pooled connections, unless the engine is shared (its owner closes it)."""
        if self._owns_engine:
            self._tidb.close()

    async def aclose(self) -> None:
        """Release this loop's async connections, then the sync ones (unless shared)."""
        if self._owns_engine:
            await self._tidb.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
