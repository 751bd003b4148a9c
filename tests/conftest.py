"""Shared fixtures: real TiDB servers for the session, and the local Bedrock stand-in.

``TIDB_URL`` points the whole suite at another TiDB (TiDB Cloud, a full cluster). Otherwise a
LocalTiDB (tidb-server, unistore) is started once for the session, and tests marked ``tiflash``
get a second one, ``LocalTiDB(tiflash=True)`` with mock TiFlash stores, started on first use:
for them ``tidb_url``, ``tidb_engine`` and everything built on those point at that server.

A ``tiflash`` test on a server without TiFlash fails: the local mock-TiFlash server always has
it, so its absence means a broken build. Only with ``TIDB_URL`` set, outside CI and ``make
test`` (``helpers.servers.strict``), is it skipped. The run ends by saying which servers it used.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from helpers.servers import describe_url, has_tiflash, strict

from langchain_tidb_bedrock.local import LocalTiDB, find_tidb_server

# kind ("plain" or "tiflash") -> the server that kind of test ran on, for the run's last lines.
_SERVERS_USED: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _SERVERS_USED:
        return
    for kind, server in sorted(_SERVERS_USED.items()):
        terminalreporter.write_line(f"TiDB used by the {kind} tests: {server}")
    if strict():
        terminalreporter.write_line("(strict: CI or make test; a missing TiFlash fails)")


def _session_url(kind: str, request: pytest.FixtureRequest) -> str:
    url = os.environ.get("TIDB_URL")
    if url:
        _SERVERS_USED[kind] = f"TIDB_URL from the environment, {describe_url(url)}"
        return url
    server: LocalTiDB = request.getfixturevalue(
        f"local_tidb{'_tiflash' if kind == 'tiflash' else ''}"
    )
    binary = server.binary or find_tidb_server(tiflash=server.tiflash)
    variant = "mock-TiFlash " if server.tiflash else ""
    _SERVERS_USED[kind] = f"LocalTiDB {server.url} ({variant}binary {binary})"
    return server.url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Route tiflash-marked tests to the mock-TiFlash server by parametrizing the session-scoped
    # `tidb_kind`; pytest groups the tests of each kind, and both servers live for the session.
    if metafunc.definition.get_closest_marker("tiflash") and "tidb_kind" in metafunc.fixturenames:
        metafunc.parametrize("tidb_kind", ["tiflash"], indirect=True, scope="session")


@pytest.fixture(scope="session")
def local_tidb() -> Iterator[LocalTiDB]:
    """A stock LocalTiDB for the session (also when ``TIDB_URL`` is set), started on first use."""
    with LocalTiDB() as server:
        yield server


@pytest.fixture(scope="session")
def local_tidb_tiflash() -> Iterator[LocalTiDB]:
    """A ``LocalTiDB(tiflash=True)`` for the session, started on first use."""
    with LocalTiDB(tiflash=True) as server:
        yield server


@pytest.fixture(scope="session")
def plain_tidb_url(request: pytest.FixtureRequest) -> str:
    """``TIDB_URL`` if set, else the session's stock LocalTiDB."""
    return _session_url("plain", request)


@pytest.fixture(scope="session")
def tiflash_tidb_url(request: pytest.FixtureRequest) -> str:
    """``TIDB_URL`` if set (its TiFlash decides), else the session's mock-TiFlash LocalTiDB."""
    return _session_url("tiflash", request)


@pytest.fixture(scope="session")
def tidb_kind(request: pytest.FixtureRequest) -> str:
    """``"tiflash"`` for tests marked ``tiflash``, else ``"plain"``."""
    return str(getattr(request, "param", "plain"))


@pytest.fixture(scope="session")
def tidb_url(tidb_kind: str, request: pytest.FixtureRequest) -> str:
    """URL of the real TiDB this test runs on (see the module docstring)."""
    return str(request.getfixturevalue(f"{tidb_kind}_tidb_url"))


@pytest.fixture(scope="session")
def tidb_has_tiflash(tidb_url: str) -> bool:
    """Whether the server has a TiFlash store (vector indexes, full-text search).

    A failing probe is an error of the test, never "no TiFlash".
    """
    return has_tiflash(tidb_url)


@pytest.fixture(autouse=True)
def _require_tiflash(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("tiflash") is None:
        return
    if request.getfixturevalue("tidb_has_tiflash"):
        return
    url = request.getfixturevalue("tidb_url")
    if os.environ.get("TIDB_URL") and not strict():
        pytest.skip(
            f"needs TiFlash (vector index); TIDB_URL ({describe_url(url)}) has no TiFlash store. "
            "Unset TIDB_URL to run it on the local mock-TiFlash tidb-server."
        )
    origin = (
        "TIDB_URL"
        if os.environ.get("TIDB_URL")
        else "the local mock-TiFlash tidb-server (is the tidb-server-tiflash build broken?)"
    )
    pytest.fail(
        f"needs TiFlash, but {origin} at {describe_url(url)} reports no TiFlash store",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def tidb_engine(tidb_url: str) -> Iterator[sa.Engine]:
    """A SQLAlchemy engine on the session's TiDB."""
    engine = sa.create_engine(tidb_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture
def table_name(tidb_engine: sa.Engine) -> Iterator[str]:
    """A fresh table name, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS `{name}`"))


@pytest.fixture(scope="session")
def local_bedrock() -> Iterator[Any]:
    """One in-process LocalBedrock for the session (state reset per use by the tests)."""
    from langchain_tidb_bedrock.local import LocalBedrock

    with LocalBedrock() as server:
        yield server


@pytest.fixture
def bedrock(local_bedrock: Any) -> Iterator[Any]:
    """The session's LocalBedrock, reset before and after the test."""
    local_bedrock.reset()
    yield local_bedrock
    local_bedrock.reset()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """One LocalS3 (moto's server mode) for the session."""
    from langchain_tidb_bedrock.local import LocalS3

    with LocalS3() as server:
        yield server


@pytest.fixture(scope="session")
def batch_server(s3_server: Any) -> Iterator[Any]:
    """A LocalBedrock that runs batch inference jobs against ``s3_server``."""
    from langchain_tidb_bedrock.local import LocalBedrock

    with LocalBedrock(s3_endpoint_url=s3_server.endpoint_url) as server:
        yield server


@pytest.fixture
def batch_bedrock(batch_server: Any) -> Iterator[Any]:
    """``batch_server`` reset before the test; its jobs finish before the next test starts."""
    batch_server.reset()
    batch_server.batch_jobs.reset()
    yield batch_server
    batch_server.batch_jobs.wait()


@pytest.fixture(autouse=True)
def _aws_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fake credentials keep boto3 from probing IMDS; a bearer token would force HTTPS.
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
