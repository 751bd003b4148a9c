"""``TiDBConnectionError``: TiDB unreachable, or a connection lost outside a COMMIT.

Defined here rather than in ``errors.py`` because it is also a SQLAlchemy ``OperationalError``
(code that caught the driver's error keeps working) and ``errors.py`` must import without
SQLAlchemy (the CLI's start-up); ``errors.py`` re-exports it lazily.
"""

from __future__ import annotations

import ssl
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.errors import TiDBBedrockError

# MySQL client errors that mean "no usable connection": can't connect (local socket, TCP),
# server gone away, lost during a query (also a read timeout), lost at handshake, SSL failure.
_CONNECTION_CODES = frozenset({2002, 2003, 2006, 2013, 2026, 2055})


def driver_code(orig: BaseException | None) -> int | None:
    """The MySQL error number a driver exception carries (``(code, message)`` args), if any."""
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short; the bound guards against cycles
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError) or driver_code(seen) == 2026:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


class TiDBConnectionError(TiDBBedrockError, sa.exc.OperationalError):
    """TiDB could not be reached, or the connection was lost before anything was committed.

    Raised after the one retry on a fresh connection. The call changed nothing (a lost COMMIT is
    :class:`~langchain_tidb_bedrock.errors.CommitUnknownError` instead); rerun it once the server
    answers. Also a SQLAlchemy ``OperationalError`` with the driver's error as ``orig``, so code
    written against the driver's error still catches it. The message carries the driver's
    words, never the statement's parameters (document text) or a password.
    """

    @classmethod
    def from_error(cls, exc: sa.exc.DBAPIError) -> TiDBConnectionError:
        """The named error for ``exc`` (its statement kept, its parameters hidden)."""
        return cls(
            exc.statement,
            exc.params,
            exc.orig,  # type: ignore[arg-type]
            hide_parameters=True,
            connection_invalidated=exc.connection_invalidated,
        )

    def __str__(self) -> str:
        code = driver_code(self.orig)
        args: tuple[Any, ...] = tuple(getattr(self.orig, "args", ()))
        detail = str(args[1]) if len(args) > 1 else str(self.orig)
        said = f"client error {code}: {detail}" if code is not None else detail
        if _tls_failure(self):
            return (
                f"the TLS connection to TiDB failed ({said}); check the server's certificate "
                "and TIDB_CA_PATH (or ca_path=); nothing was changed"
            )
        return (
            f"TiDB is unreachable or closed the connection ({said}); nothing was changed by "
            "this call: rerun it when the server answers"
        )


def connection_failure(exc: BaseException) -> TiDBConnectionError | None:
    """The named error when ``exc`` means "no usable connection to TiDB", else None."""
    if not isinstance(exc, sa.exc.DBAPIError) or isinstance(exc, TiDBConnectionError):
        return None
    if exc.connection_invalidated or driver_code(exc.orig) in _CONNECTION_CODES:
        return TiDBConnectionError.from_error(exc)
    return None
