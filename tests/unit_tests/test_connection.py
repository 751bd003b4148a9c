"""Connection settings: URL from the environment, TLS defaults, redaction (no server needed)."""

from __future__ import annotations

import ssl

import pytest

from langchain_tidb_bedrock.db.connection import (
    ConnectionConfigError,
    async_engine_kwargs,
    async_url,
    create_engine_async,
    engine_kwargs,
    is_loopback,
    redact,
    tidb_url_from_env,
)

CLOUD = "gateway01.us-west-2.prod.aws.tidbcloud.com"


def test_url_from_tidb_env_vars() -> None:
    url = tidb_url_from_env(
        {
            "TIDB_HOST": CLOUD,
            "TIDB_PORT": "4000",
            "TIDB_USER": "abc.root",
            "TIDB_PASSWORD": "p@ss:/word",
            "TIDB_DB_NAME": "rag",
        }
    )
    assert url is not None
    assert (url.host, url.port, url.username, url.password, url.database) == (
        CLOUD,
        4000,
        "abc.root",
        "p@ss:/word",
        "rag",
    )
    assert url.drivername == "mysql+pymysql"
    assert "p@ss" not in redact(url)


def test_tidb_url_wins_and_nothing_set_is_none() -> None:
    assert tidb_url_from_env({}) is None
    url = tidb_url_from_env({"TIDB_URL": "mysql+pymysql://root@127.0.0.1:4001/x", "TIDB_HOST": "h"})
    assert url is not None
    assert url.port == 4001


def test_bad_port_is_named() -> None:
    with pytest.raises(ConnectionConfigError, match="TIDB_PORT must be a number, got 'abc'"):
        tidb_url_from_env({"TIDB_HOST": "h", "TIDB_PORT": "abc"})


@pytest.mark.parametrize(
    ("host", "loop"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), (CLOUD, False), ("10.0.0.5", False)],
)
def test_loopback_detection(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_remote_hosts_get_verified_tls_by_default() -> None:
    _, kwargs = engine_kwargs(f"mysql+pymysql://u:p@{CLOUD}:4000/test")
    ctx = kwargs["connect_args"]["ssl"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert kwargs["pool_recycle"] == 300


def test_loopback_has_no_tls_and_user_choices_win() -> None:
    _, local = engine_kwargs("mysql+pymysql://root@127.0.0.1:4000/test")
    assert "ssl" not in local["connect_args"]
    _, off = engine_kwargs(f"mysql+pymysql://u@{CLOUD}:4000/test", tls=False)
    assert "ssl" not in off["connect_args"]
    _, in_url = engine_kwargs(f"mysql+pymysql://u@{CLOUD}:4000/test?ssl_ca=/x.pem")
    assert "ssl" not in in_url["connect_args"]
    _, mine = engine_kwargs(
        f"mysql+pymysql://u@{CLOUD}:4000/test",
        {"pool_recycle": 60, "pool_size": 3, "connect_args": {"connect_timeout": 5}},
    )
    assert mine["pool_recycle"] == 60
    assert mine["pool_size"] == 3
    assert mine["connect_args"]["connect_timeout"] == 5
    assert isinstance(mine["connect_args"]["ssl"], ssl.SSLContext)


@pytest.mark.parametrize(
    "query",
    [
        "?ssl_verify_cert=true&ssl_verify_identity=true",
        "?ssl_ca=/etc/ssl/certs/ca-certificates.crt",
        "",
    ],
)
def test_async_engine_never_downgrades_tls(query: str) -> None:
    for host in (CLOUD, "127.0.0.1"):
        url = f"mysql+pymysql://u:pw@{host}:4000/test{query}"
        u, kwargs = async_engine_kwargs(url)
        assert u.drivername == "mysql+aiomysql"
        assert not any(k.startswith("ssl") for k in u.query)  # aiomysql rejects them
        wants_tls = bool(query) or host == CLOUD
        ctx = kwargs["connect_args"].get("ssl")
        assert isinstance(ctx, ssl.SSLContext) is wants_tls, (host, query)
        if wants_tls:
            assert ctx.verify_mode is ssl.CERT_REQUIRED
            assert ctx.check_hostname is True
    _, off = async_engine_kwargs(f"mysql+pymysql://u@{CLOUD}/db?ssl_disabled=true", tls=False)
    assert "ssl" not in off["connect_args"]


def test_async_engine_gets_the_same_tls_and_args() -> None:
    engine = create_engine_async(f"mysql+pymysql://u:pw@{CLOUD}:4000/test", {"pool_size": 2})
    assert engine.url.drivername == "mysql+aiomysql"
    assert engine.sync_engine.pool.size() == 2  # type: ignore[attr-defined]
    assert async_url("mysql://u@h/db").drivername == "mysql+aiomysql"


def test_non_mysql_url_is_refused() -> None:
    with pytest.raises(ConnectionConfigError, match="expected a mysql:// URL"):
        engine_kwargs("postgresql://u:secret@h/db")
