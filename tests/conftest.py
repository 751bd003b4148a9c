"""Shared fixtures: one real TiDB for the session, and the local Bedrock stand-in.

``TIDB_URL`` points the whole suite at another TiDB (TiDB Cloud, a full cluster); otherwise a
LocalTiDB (tidb-server, unistore) is started once for the session and stopped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from langchain_tidb_bedrock.local import LocalTiDB


def _has_tiflash(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM INFORMATION_SCHEMA.CLUSTER_INFO WHERE TYPE = 'tiflash'"
                )
            ).scalar()
        return bool(n)
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def tidb_url() -> Iterator[str]:
    """URL of a real TiDB: ``TIDB_URL`` if set, else a LocalTiDB for this session."""
    url = os.environ.get("TIDB_URL")
    if url:
        yield url
        return
    with LocalTiDB() as server:
        yield server.url


@pytest.fixture(scope="session")
def tidb_has_tiflash(tidb_url: str) -> bool:
    """Whether the server has a TiFlash store (vector indexes, full-text search)."""
    return _has_tiflash(tidb_url)


@pytest.fixture(autouse=True)
def _skip_without_tiflash(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("tiflash") is None:
        return
    if not request.getfixturevalue("tidb_has_tiflash"):
        pytest.skip(
            "needs TiFlash (vector index / full-text search); this TiDB has no TiFlash store. "
            "Set TIDB_URL to a TiDB Cloud or TiFlash-enabled cluster to run it."
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


@pytest.fixture(autouse=True)
def _aws_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fake credentials keep boto3 from probing IMDS; a bearer token would force HTTPS.
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
