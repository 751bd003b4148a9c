"""Connection settings for TiDB: URL from the environment, TLS defaults, pooled engines.

One place decides how every connection is made, so the same TLS and pool arguments reach the
sync engine, the async engine and any helper connection (a missing propagation is how other
TiDB clients end up with ``CERTIFICATE_VERIFY_FAILED`` on TiDB Cloud).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from langchain_tidb_bedrock.db import bulk
from langchain_tidb_bedrock.errors import ConnectionConfigError

if TYPE_CHECKING:
    # At run time only where an async engine is made: sqlalchemy.ext.asyncio loads the ORM.
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "ConnectionConfigError",
    "async_engine_kwargs",
    "async_url",
    "create_engine",
    "create_engine_async",
    "engine_kwargs",
    "is_loopback",
    "parse_url",
    "redact",
    "tidb_url_from_env",
]

_SYNC_DRIVER = "mysql+pymysql"
_ASYNC_DRIVER = "mysql+aiomysql"
# TiDB Cloud closes idle connections: recycle them after 5 minutes, and check a connection that
# sat idle in the pool before handing it out (see ping_idle_connections).
# hide_parameters: a failed statement's error text never carries the bound values (documents,
# vectors, metadata), so logs and the CLI's error line stay free of content.
_POOL_DEFAULTS: dict[str, Any] = {"pool_recycle": 300, "hide_parameters": True}
IDLE_PING_AFTER = 10.0  # seconds
_SSL_QUERY_KEYS = ("ssl", "ssl_ca", "ssl_verify_cert", "ssl_verify_identity", "ssl_disabled")


_DRIVERS = ("mysql", _SYNC_DRIVER, _ASYNC_DRIVER)
_URL_FORM = "mysql+pymysql://user:password@host:4000/database"
_PARTS = ("TIDB_PORT", "TIDB_USER", "TIDB_PASSWORD", "TIDB_DB_NAME")


def parse_url(value: str | URL, source: str = "url") -> URL:
    """Parse and check a TiDB URL; errors name ``source`` and the fix, never the password.

    Raises:
        ConnectionConfigError: not a URL, a port that is not a number, a driver other than
            PyMySQL/aiomysql (``mysql+pymsql`` is a typo, not a fallback), or no database.
    """
    if isinstance(value, URL):
        url = value
    else:
        try:
            url = make_url(value)
            url.port  # noqa: B018 - parsed lazily: a bad port raises here
        except (sa.exc.ArgumentError, ValueError):
            msg = f"{source} is not a valid TiDB URL: expected {_URL_FORM}"
            if ":" in str(value).rsplit("@", 1)[-1].split("/", 1)[0]:
                msg = f"{source} has a port that is not a number: expected {_URL_FORM}"
            raise ConnectionConfigError(msg) from None
    if url.drivername not in _DRIVERS:
        msg = (
            f"{source} uses the driver {url.drivername!r}; TiDB needs 'mysql+pymysql' (or "
            f"'mysql'), as in {_URL_FORM}"
        )
        raise ConnectionConfigError(msg)
    if not url.database:
        msg = f"{source} names no database: add one at the end, as in {_URL_FORM}"
        raise ConnectionConfigError(msg)
    return url


def tidb_url_from_env(env: Mapping[str, str] | None = None) -> URL | None:
    """Build a URL from ``TIDB_HOST``/``_PORT``/``_USER``/``_PASSWORD``/``_DB_NAME``.

    ``TIDB_URL`` (a full SQLAlchemy URL) wins when set. Returns None when nothing is set.

    Raises:
        ConnectionConfigError: a malformed value, or a partial set (``TIDB_USER`` without
            ``TIDB_HOST``, say): never a silent fall back to the local server.
    """
    env = os.environ if env is None else env
    if env.get("TIDB_URL"):
        return parse_url(env["TIDB_URL"], "TIDB_URL")
    host = env.get("TIDB_HOST")
    if not host:
        partial = [name for name in _PARTS if env.get(name)]
        if partial:
            msg = (
                f"{' and '.join(partial)} {'is' if len(partial) == 1 else 'are'} set but "
                "TIDB_HOST is not: set TIDB_HOST (or TIDB_URL), or unset them to use the local "
                "tidb-server"
            )
            raise ConnectionConfigError(msg)
        return None
    port_text = env.get("TIDB_PORT", "4000")
    try:
        port = int(port_text)
    except ValueError:
        msg = f"TIDB_PORT must be a number, got {port_text!r}"
        raise ConnectionConfigError(msg) from None
    return URL.create(
        _SYNC_DRIVER,
        username=env.get("TIDB_USER", "root"),
        password=env.get("TIDB_PASSWORD") or None,
        host=host,
        port=port,
        database=env.get("TIDB_DB_NAME", "test"),
    )


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine (no TLS needed there)."""
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact(url: URL | str) -> str:
    """The URL as text with the password hidden, for logs, reprs and errors.

    Never raises: a URL that does not parse (a bad port, say) shows only its scheme. A host
    holding ``@`` is the tail of a password with an unencoded ``@``: it is masked too.
    """
    try:
        u = make_url(url)
        u.port  # noqa: B018 - parsed lazily: a bad port raises here
    except (sa.exc.ArgumentError, ValueError, TypeError):
        scheme = str(url).split("://", 1)[0] if "://" in str(url) else ""
        return f"{scheme}://***" if scheme.replace("+", "").isalnum() else "***"
    if u.host and "@" in u.host:
        u = u.set(host="***@" + u.host.rsplit("@", 1)[1])
    return u.render_as_string(hide_password=True)


def _normalise(url: URL | str) -> URL:
    u = make_url(url)
    if u.get_backend_name() != "mysql":
        msg = f"expected a mysql:// URL for TiDB, got {redact(u)!r}"
        raise ConnectionConfigError(msg)
    return u.set(drivername=_SYNC_DRIVER)


def async_url(url: URL | str) -> URL:
    """The same URL for the async driver (aiomysql)."""
    return _normalise(url).set(drivername=_ASYNC_DRIVER)


def _tls_context(ca_path: str | None) -> ssl.SSLContext:
    # Verify the certificate chain and the host name; the system bundle covers TiDB Cloud
    # (Let's Encrypt). TIDB_CA_PATH points at another bundle when needed.
    ctx = ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def engine_kwargs(
    url: URL | str,
    engine_args: Mapping[str, Any] | None = None,
    *,
    tls: bool | None = None,
    ca_path: str | None = None,
) -> tuple[URL, dict[str, Any]]:
    """Resolve the URL and the keyword arguments for ``create_engine``.

    TLS with certificate and host verification is on by default for non-loopback hosts,
    unless the URL already carries ``ssl_*`` options or ``tls=False`` is passed.
    """
    u = _normalise(url)
    if u.host and "@" in u.host:
        # The driver would try the host "rest-of-password@host" and quote it in its error.
        msg = (
            f"the TiDB URL {redact(u)} has '@' in its host: percent-encode an '@' in the "
            "user name or password as %40"
        )
        raise ConnectionConfigError(msg)
    kwargs: dict[str, Any] = {**_POOL_DEFAULTS, **(engine_args or {})}
    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", None) or {})
    url_has_tls = any(k in u.query for k in _SSL_QUERY_KEYS)
    want_tls = (not is_loopback(u.host)) if tls is None else tls
    if want_tls and not url_has_tls and "ssl" not in connect_args:
        connect_args["ssl"] = _tls_context(ca_path or os.environ.get("TIDB_CA_PATH"))
    kwargs["connect_args"] = connect_args
    return u, kwargs


def create_engine(
    url: URL | str,
    engine_args: Mapping[str, Any] | None = None,
    *,
    tls: bool | None = None,
    ca_path: str | None = None,
    local_infile: bool = False,
    autocommit: bool = False,
) -> sa.Engine:
    """A pooled PyMySQL engine with the TLS and pool defaults above.

    ``local_infile`` negotiates LOAD DATA LOCAL for bulk writes (see bulk.py); the permission
    itself stays off on every connection except during the store's own LOAD statement.
    ``autocommit`` makes a read pool: no transaction, so no ROLLBACK round trip when a
    connection goes back to the pool, and every read sees the latest committed rows.
    """
    u, kwargs = engine_kwargs(url, engine_args, tls=tls, ca_path=ca_path)
    if autocommit:
        kwargs.update(isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)
    else:
        kwargs.setdefault("pool_reset_on_return", None)  # see rollback_unless_committed
    if local_infile:
        bulk.enable_local_infile_capability(kwargs["connect_args"])
    engine = sa.create_engine(u, **kwargs)
    if local_infile:
        sa.event.listen(engine, "connect", bulk.lock_local_infile)
    if "pool_pre_ping" not in kwargs:
        ping_idle_connections(engine)
    if kwargs.get("pool_reset_on_return", "rollback") is None:
        rollback_unless_committed(engine)
    return engine


COMMITTED = "ltb_committed"


def rollback_unless_committed(engine: sa.Engine) -> None:
    """Reset a returned connection with ROLLBACK, unless its transaction was just committed.

    SQLAlchemy's pool rolls back every connection that comes back, even right after a COMMIT:
    one wasted round trip per write. The store marks a connection whose transaction it
    committed (``record.info[COMMITTED]``); every other connection, including any a caller
    borrows from ``store.engine``, is still rolled back. For an async engine pass its sync_engine.
    """

    @sa.event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        committed = record.info.pop(COMMITTED, False) if record is not None else False
        if state.terminate_only or not state.asyncio_safe:
            return  # the pool discards this connection anyway
        if committed or state.transaction_was_reset:
            return
        dbapi_connection.rollback()


def ping_idle_connections(engine: sa.Engine) -> None:
    """Ping a pooled connection on checkout only if it sat idle longer than IDLE_PING_AFTER.

    ``pool_pre_ping`` pings on every checkout: one more round trip per query (an RTT to TiDB
    Cloud). A connection in steady use cannot have been idle-closed, so only idle ones are
    checked; a dead one is replaced transparently. For an async engine pass its sync_engine.
    """

    @sa.event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["ltb_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("ltb_idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_AFTER:
            return
        try:
            dbapi_connection.ping(False)
        except Exception as exc:  # any failure: let the pool reconnect
            raise sa.exc.DisconnectionError(str(exc)) from exc


def _aiomysql_binds_bytes() -> None:
    """Make aiomysql bind ``bytes`` parameters again under PyMySQL >= 1.2.

    aiomysql 0.3 escapes bytes with PyMySQL's ``escape_bytes_prefixed``, which PyMySQL 1.2
    replaced by a placeholder string ("DO NOT IMPORT THIS!!!"): every bytes parameter then fails
    with "'str' object is not callable". Bind them as PyMySQL 1.2 itself does (``X'...'``).
    """
    import aiomysql.connection
    from pymysql.converters import escape_bytes

    if not callable(getattr(aiomysql.connection, "escape_bytes_prefixed", None)):
        aiomysql.connection.escape_bytes_prefixed = escape_bytes


def create_engine_async(
    url: URL | str,
    engine_args: Mapping[str, Any] | None = None,
    *,
    tls: bool | None = None,
    ca_path: str | None = None,
    autocommit: bool = False,
) -> AsyncEngine:
    """A pooled aiomysql engine with exactly the same connection arguments.

    TLS, when asked for, is required as on the sync path: aiomysql alone would fall back to
    plaintext (and send the credentials) when the server offers no TLS.
    """
    from sqlalchemy.ext.asyncio import create_async_engine

    _aiomysql_binds_bytes()  # every component that binds bytes on the async path needs it
    u, kwargs = async_engine_kwargs(url, engine_args, tls=tls, ca_path=ca_path)
    if autocommit:
        kwargs.update(isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True)
    else:
        kwargs.setdefault("pool_reset_on_return", None)  # see rollback_unless_committed
    ssl_context = kwargs["connect_args"].get("ssl")
    if ssl_context is not None:
        from sqlalchemy.dialects.mysql.aiomysql import MySQLDialect_aiomysql

        _, cparams = MySQLDialect_aiomysql().create_connect_args(u)
        params = dict(cparams)
        params.update(kwargs["connect_args"])

        async def connect_requiring_tls() -> Any:
            return await _tls_required_connect(params)

        kwargs["async_creator"] = connect_requiring_tls
    engine = create_async_engine(u, **kwargs)
    if "pool_pre_ping" not in kwargs:
        ping_idle_connections(engine.sync_engine)
    if kwargs.get("pool_reset_on_return", "rollback") is None:
        rollback_unless_committed(engine.sync_engine)
    return engine


async def _tls_required_connect(params: dict[str, Any]) -> Any:
    import aiomysql
    from pymysql.constants import CLIENT

    class TLSRequiredConnection(aiomysql.Connection):
        async def _request_authentication(self) -> None:
            # The server's greeting is in; refuse before a byte of the login is sent.
            if not self.server_capabilities & CLIENT.SSL:
                self.close()
                msg = (
                    "TLS is required for this connection, but the TiDB server does not offer "
                    "TLS; refusing to send credentials in plaintext"
                )
                raise aiomysql.OperationalError(2026, msg)
            await super()._request_authentication()

    conn = TLSRequiredConnection(**params)
    try:
        await conn._connect()
    except aiomysql.OperationalError as exc:
        conn.close()
        cause = _tls_cause(exc)
        if cause is None:
            raise
        # aiomysql says only "Can't connect"; name the TLS failure as PyMySQL does.
        msg = f"Can't connect to MySQL server on {conn.host!r} ({cause})"
        raise aiomysql.OperationalError(exc.args[0], msg) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a driver error (certificate, host name, handshake), if any."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain; never loop on a cycle
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def async_engine_kwargs(
    url: URL | str,
    engine_args: Mapping[str, Any] | None = None,
    *,
    tls: bool | None = None,
    ca_path: str | None = None,
) -> tuple[URL, dict[str, Any]]:
    """The aiomysql URL and engine arguments matching :func:`engine_kwargs`.

    aiomysql understands none of PyMySQL's ``ssl_*`` URL options, so a TLS request in the URL
    becomes a verifying ``SSLContext`` (never a silent plaintext connection).
    """
    u, kwargs = engine_kwargs(url, engine_args, tls=tls, ca_path=ca_path)
    kwargs["connect_args"].pop("local_infile", None)  # bulk loads run on the sync engine
    # aiomysql has no socket timeouts: TiDBEngine bounds each async call with asyncio instead.
    kwargs["connect_args"].pop("read_timeout", None)
    kwargs["connect_args"].pop("write_timeout", None)
    ssl_opts = {k: v for k, v in u.query.items() if k in _SSL_QUERY_KEYS}
    disabled = str(ssl_opts.get("ssl_disabled", "")).lower() in ("1", "true", "yes")
    if ssl_opts and not disabled and "ssl" not in kwargs["connect_args"]:
        ca = ssl_opts.get("ssl_ca") or ca_path or os.environ.get("TIDB_CA_PATH")
        kwargs["connect_args"]["ssl"] = _tls_context(
            ca if isinstance(ca, str) or ca is None else ca[0]
        )
    query = {k: v for k, v in u.query.items() if k not in _SSL_QUERY_KEYS}
    return u.set(drivername=_ASYNC_DRIVER, query=query), kwargs
