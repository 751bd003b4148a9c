"""LocalTiDB lifecycle and its command line (a real tidb-server each time)."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers.servers import is_loopback, listening_addresses

from langchain_tidb_bedrock.local import LocalTiDB, LocalTiDBError, find_tidb_server
from langchain_tidb_bedrock.local.__main__ import main as local_main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie still answers kill(0): look at its state.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_data_dir_persists_across_restarts(tmp_path: Path) -> None:
    with LocalTiDB(data_dir=tmp_path) as first:
        engine = sa.create_engine(first.url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE kept (id INT PRIMARY KEY, v VECTOR(2))"))
            conn.execute(sa.text("INSERT INTO kept VALUES (1, '[1,2]')"))
        engine.dispose()
        pid = first.pid
    assert pid is not None
    assert not _alive(pid)
    with LocalTiDB(data_dir=tmp_path) as second:
        engine = sa.create_engine(second.url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT v FROM kept")).scalar() == "[1,2]"
        engine.dispose()
    assert (tmp_path / "tidb.log").exists()
    assert not (Path.cwd() / "tidb-slow.log").exists()


def test_temp_dir_is_removed_and_ports_are_loopback_only() -> None:
    server = LocalTiDB().start()
    try:
        work = server.log_file.parent
        assert work.exists()
        assert server.pid is not None
        # What the running process listens on, as the kernel reports it (not the URL we built).
        listening = listening_addresses(server.pid)
        assert {port for _, port in listening} >= {server.port, server.status_port}, listening
        assert all(is_loopback(host) for host, _ in listening), listening
    finally:
        server.stop()
    assert not work.exists()


def test_missing_binary_says_how_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDB_SERVER_BIN", "/nonexistent/tidb-server")
    with pytest.raises(LocalTiDBError, match="tidb build"):
        LocalTiDB().start()


def test_cli_start_status_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = find_tidb_server()
    assert binary is not None
    monkeypatch.setenv("TIDB_SERVER_BIN", str(binary))
    monkeypatch.setenv("LTB_CACHE_DIR", str(tmp_path))  # state file and data live here
    port, status = _free_port(), _free_port()
    args = ["tidb", "start", "--port", str(port), "--status-port", str(status)]
    try:
        assert local_main(args) == 0
        assert capsys.readouterr().out.strip() == f"mysql+pymysql://root@127.0.0.1:{port}/test"
        assert local_main(["tidb", "status"]) == 0
        assert "running" in capsys.readouterr().out
        state = (tmp_path / "local-tidb" / "server.json").read_text()
        pid = int(state.split('"pid": ')[1].split(",")[0])
        assert _alive(pid)
        assert local_main(["tidb", "start", "--port", str(port)]) == 0  # idempotent
        assert "already running" in capsys.readouterr().out
        # Other settings for the running server are an error, never silently ignored.
        assert local_main(["tidb", "start", "--port", str(port + 1), "--tiflash"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: a local tidb-server is already running")
        assert "--port, --tiflash" in err
    finally:
        assert local_main(["tidb", "stop"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert not _alive(pid)
    assert local_main(["tidb", "status"]) == 1
    if _alive(pid):  # pragma: no cover - never leave a server behind
        os.kill(pid, signal.SIGKILL)


def test_server_started_from_a_worker_thread_outlives_the_thread() -> None:
    import threading
    import time

    box: list[LocalTiDB] = []
    worker = threading.Thread(target=lambda: box.append(LocalTiDB().start()))
    worker.start()
    worker.join()
    server = box[0]
    try:
        time.sleep(1.0)  # a parent-death signal tied to the thread would have fired by now
        engine = sa.create_engine(server.url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        engine.dispose()
    finally:
        server.stop()
