"""Nothing secret or private in a message, a log or a file left behind (issue #19, item 6).

Each finding is checked through real processes: the CLI as a subprocess, the local tidb-server's
own log, and a writer killed with SIGKILL in the middle of a bulk load.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.db import bulk
from langchain_tidb_bedrock.local.shared_server import acquire_local_tidb
from tests.helpers.env import offline_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "langchain_tidb_bedrock", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# ------------------------------------------------------------------------------- messages


@pytest.mark.parametrize("how", ["option", "env"])
def test_cli_bad_port_never_prints_the_password(tmp_path: Path, how: str) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    url = f"mysql+pymysql://root:{password}@127.0.0.1:40x0/test"
    env = offline_env(tmp_path / "data", tmp_path)
    args = ["ask", "hi", "-v"]  # -v: not even a traceback may show it
    if how == "env":
        env["TIDB_URL"] = url
    else:
        args += ["--tidb-url", url]
    proc = _cli(args, env)
    assert proc.returncode in (1, 2), proc
    assert "port" in proc.stderr
    assert password not in proc.stdout + proc.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_cli_unencoded_at_in_the_password_prints_no_part_of_it(
    tmp_path: Path, verbose: bool
) -> None:
    # SQLAlchemy splits "head@tail" at the first '@': the password's tail lands in the host,
    # which the driver's "Can't connect to ... on 'tail@127.0.0.1'" used to quote.
    head, tail = f"h{uuid.uuid4().hex[:10]}", f"t{uuid.uuid4().hex[:10]}"
    url = f"mysql+pymysql://root:{head}@{tail}@127.0.0.1:{_free_port()}/test"
    proc = _cli(
        ["ask", "hi", "--tidb-url", url, *(["-v"] if verbose else [])],
        offline_env(tmp_path / "data", tmp_path),
    )
    assert proc.returncode == 1, proc
    out = proc.stdout + proc.stderr
    assert "%40" in out
    assert head not in out
    assert tail not in out


# ------------------------------------------------------------------------------- server log


def test_local_server_log_keeps_no_statement_text(tmp_path: Path) -> None:
    """The CLI's persistent local server: failed INSERTs leave no document text in its files.

    A log from an earlier run (written when statements were logged) is removed at start.
    """
    data_dir = tmp_path / "cli-data"
    data_dir.mkdir()
    old = f"old-{uuid.uuid4().hex}"
    (data_dir / "tidb.log").write_text(f'["parse SQL failed"] [SQL="INSERT ... {old}"]\n')
    text = f"private-{uuid.uuid4().hex}"
    lease = acquire_local_tidb(data_dir)
    try:
        u = sa.engine.make_url(lease.url)
        conn = pymysql.connect(host=u.host, port=u.port, user="root", database="test")
        cur = conn.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS t_secret (id INT PRIMARY KEY, doc TEXT)")
        failing = [
            ("INSERT INTO t_secret VALUES (1, %s", (text,)),  # parse error
            ("INSERT INTO t_no_such_table VALUES (1, %s)", (text,)),  # compile error
            ("INSERT INTO t_secret VALUES (%s, %s)", ("not a number", text)),  # run error
        ]
        for sql, args in failing:
            with pytest.raises(pymysql.MySQLError):
                cur.execute(sql, args)
        conn.close()
    finally:
        assert lease.release()  # stops the server: its log is complete
    logs = sorted(p for p in data_dir.rglob("*") if p.is_file() and ".log" in p.name)
    assert data_dir / "tidb.log" in logs
    for log in logs:
        content = log.read_text(errors="replace")
        assert text not in content, log
        assert old not in content, log


# ------------------------------------------------------------------------------- spill files


_WRITER = textwrap.dedent(
    """
    import sys
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_tidb_bedrock import TiDBVectorStore

    url, table, text = sys.argv[1:4]
    store = TiDBVectorStore(
        DeterministicFakeEmbedding(size=4), connection_string=url, table_name=table
    )
    store.add_texts([text, text + " two"], ids=["locked", "free"])
    store.close()
    """
)


def _spill_dirs() -> set[str]:
    return {d for d in (bulk._TMP_DIR, tempfile.gettempdir()) if d}


def _spill_files_with(marker: str) -> list[Path]:
    found = []
    for directory in _spill_dirs():
        for path in Path(directory).glob("ltb-load-*"):
            try:
                if marker.encode() in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def _writer(url: str, table: str, text: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, "-c", _WRITER, url, table, text],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_load(cur: pymysql.cursors.Cursor, table: str, proc: subprocess.Popen[str]) -> None:
    """Until the writer's LOAD DATA into ``table`` is running (blocked on our row lock)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE %s",
            (f"LOAD DATA%{table}%",),
        )
        row = cur.fetchone()
        if row is not None and row[0]:
            return
        time.sleep(0.05)
    pytest.fail("the writer never started its LOAD DATA")


@pytest.fixture
def planted() -> Iterator[list[Path]]:
    """Spill files as an earlier version left them: one stale, one that may still be in use."""
    directory = Path(sorted(_spill_dirs())[0])
    marker = uuid.uuid4().hex
    stale = directory / f"ltb-load-{marker}-stale.tsv"
    fresh = directory / f"ltb-load-{marker}-fresh.tsv"
    for path in (stale, fresh):
        path.write_text(f"id\t[1,2]\tdocument {marker}\t{{}}\n")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    yield [stale, fresh]
    for path in (stale, fresh):
        path.unlink(missing_ok=True)


def test_kill_9_mid_bulk_write_leaves_no_spill_file(
    tidb_url: str, table_name: str, planted: list[Path]
) -> None:
    text = f"private-{uuid.uuid4().hex}"
    store = TiDBVectorStore(
        DeterministicFakeEmbedding(size=4), connection_string=tidb_url, table_name=table_name
    )
    try:
        store.add_texts(["seed"], ids=["locked"])  # the table, and the row we will lock
        u = sa.engine.make_url(tidb_url)
        holder = pymysql.connect(
            host=u.host, port=u.port, user=u.username or "root", password=u.password or "",
            database=u.database,
        )  # fmt: skip
        cur = holder.cursor()
        cur.execute("BEGIN PESSIMISTIC")
        cur.execute(f"SELECT id FROM `{table_name}` WHERE id = 'locked' FOR UPDATE")
        proc = _writer(tidb_url, table_name, text)
        try:
            _wait_for_load(cur, table_name, proc)
            # The rows have left the writer: on disk they would be now, if anywhere.
            assert _spill_files_with(text) == []
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            holder.rollback()
            holder.close()
        assert proc.returncode == -signal.SIGKILL

        # The next start: a new writer runs to the end, and spill files of dead loads are gone.
        again = _writer(tidb_url, table_name, text)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert _spill_files_with(text) == []
        stale, fresh = planted
        assert not stale.exists()  # an earlier version's leftover, swept
        assert fresh.exists()  # young enough to belong to a live load: left alone
        assert [d.page_content for d in store.get_by_ids(["free"])] == [text + " two"]
    finally:
        store.drop_table()
        store.close()
