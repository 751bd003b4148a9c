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
                # A lower bound only: a busy machine makes it slower, never faster. That each
                # exchange is delayed once, not per chunk, is the next test's job.
                assert elapsed >= n * RTT


def test_a_large_response_is_one_round_trip_delayed_once(local_tidb: LocalTiDB) -> None:
    rtt = 0.2
    with LatencyProxy(local_tidb.port, rtt=rtt) as proxy:
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
    assert elapsed >= rtt
    # 4 MB arrive in at least 62 reads of 64 KiB: delaying each read in turn would take over
    # 12 s; one delay for the exchange takes about 0.2 s. The bound sits far from both.
    assert elapsed < 10 * rtt


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


def test_a_byte_cut_forwards_that_many_bytes_then_cuts(local_tidb: LocalTiDB) -> None:
    with LatencyProxy(local_tidb.port) as proxy:
        conn = pymysql.connect(
            host="127.0.0.1", port=proxy.port, user="root", database="test", autocommit=True
        )
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS proxy_cut (n INT PRIMARY KEY)")
            cur.execute("DELETE FROM proxy_cut")
            # 3 bytes: part of the next request's header; the server never sees the request.
            proxy.cut_at_byte = 3
            with pytest.raises(pymysql.err.OperationalError):
                cur.execute("INSERT INTO proxy_cut VALUES (1)")
        assert (proxy.cut_at_byte, proxy.cuts_made) == (None, 1)
        # The whole request (4-byte header + command byte + SQL) and 2 bytes of the reply:
        # the server ran it, the client lost the answer.
        sql = b"INSERT INTO proxy_cut VALUES (2)"
        conn = pymysql.connect(
            host="127.0.0.1", port=proxy.port, user="root", database="test", autocommit=True
        )
        with conn.cursor() as cur:
            proxy.cut_at_byte = 4 + 1 + len(sql) + 2
            with pytest.raises(pymysql.err.OperationalError):
                cur.execute(sql.decode())
        assert proxy.cuts_made == 2
        conn = _connect(proxy.port)  # later connections are not cut
        with conn, conn.cursor() as cur:
            cur.execute("SELECT n FROM test.proxy_cut")
            assert cur.fetchall() == ((2,),)
            cur.execute("DROP TABLE test.proxy_cut")
