"""The latency proxy used to count round trips: checked against a real local tidb-server."""

from __future__ import annotations

import time

import pymysql
import pytest
import sqlalchemy as sa
from helpers.latency_proxy import LatencyProxy

from langchain_tidb_bedrock.local import LocalTiDB

RTT = 0.05


def _connect(port: int) -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=port, user="root", ssl_disabled=True)


def test_select_1_costs_one_delayed_round_trip(local_tidb: LocalTiDB) -> None:
    with LatencyProxy(local_tidb.port, rtt=RTT) as proxy:
        start = time.monotonic()
        conn = _connect(proxy.port)
        connect_time = time.monotonic() - start
        # Greeting (no request before it, so no round trip) + the handshake response's OK.
        assert proxy.round_trips >= 1
        assert connect_time >= RTT
        with conn, conn.cursor() as cur:
            for n in (1, 2, 3):
                proxy.reset()
                start = time.monotonic()
                for _ in range(n):
                    cur.execute("SELECT 1")
                    assert cur.fetchone() == (1,)
                elapsed = time.monotonic() - start
                assert proxy.round_trips == n
                assert elapsed >= n * RTT
                assert elapsed < n * RTT + 1.0


def test_a_large_response_is_one_round_trip_delayed_once(local_tidb: LocalTiDB) -> None:
    with LatencyProxy(local_tidb.port, rtt=RTT) as proxy:
        conn = _connect(proxy.port)
        with conn, conn.cursor() as cur:
            proxy.reset()
            start = time.monotonic()
            cur.execute("SELECT REPEAT('x', 4000000)")
            row = cur.fetchone()
            elapsed = time.monotonic() - start
    assert row is not None
    assert len(row[0]) == 4_000_000  # dozens of socket reads of the proxy
    assert proxy.round_trips == 1
    assert RTT <= elapsed < 3 * RTT + 1.0


def test_without_delay_it_still_counts(local_tidb: LocalTiDB) -> None:
    with LatencyProxy(local_tidb.port) as proxy:
        engine = sa.create_engine(proxy.url(local_tidb.url), poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            proxy.reset()
            assert conn.execute(sa.text("SELECT 41 + 1")).scalar() == 42
            assert proxy.round_trips == 1
        engine.dispose()
    assert proxy.connections == 1


def test_it_is_bounded(local_tidb: LocalTiDB) -> None:
    with pytest.raises(ValueError, match="loopback only"):
        LatencyProxy(4000, target_host="192.0.2.1")
    with LatencyProxy(local_tidb.port, max_connections=1) as proxy:
        _connect(proxy.port).close()
        with pytest.raises(pymysql.err.OperationalError):
            _connect(proxy.port)
    proxy = LatencyProxy(local_tidb.port, lifetime=0.3).start()
    deadline = time.monotonic() + 5
    while proxy.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not proxy.running  # stopped by itself
    with pytest.raises(pymysql.err.OperationalError):
        _connect(proxy.port)
