"""The command line on real folders, run as a real process (``python -m langchain_tidb_bedrock``):
mirror semantics (moved folders, ``--prune``), ``sources`` and ``delete``, ``--source`` typos,
early validation, cheap no-op re-ingest, non-English questions, and one local tidb-server shared
by concurrent commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa
from helpers.env import offline_env

from langchain_tidb_bedrock.cli import main as cli
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

GUIDE = (
    "# Vector search\n\nTiDB Vector Search stores embeddings in VECTOR columns and ranks rows "
    "with VEC_COSINE_DISTANCE.\n\n## Bedrock\n\nAmazon Bedrock serves Meta Llama 3 through the "
    "Converse API.\n"
)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def _cli(
    *argv: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, our module
        [sys.executable, "-m", "langchain_tidb_bedrock", *argv],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def services(tidb_url: str, local_bedrock: LocalBedrock, table_name: str) -> list[str]:
    local_bedrock.reset()
    return [
        "--tidb-url",
        tidb_url,
        "--bedrock-endpoint-url",
        local_bedrock.endpoint_url,
        "--table",
        table_name,
    ]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "nested").mkdir(parents=True)
    (folder / "guide.md").write_text(GUIDE)
    (folder / "notes.txt").write_text("Paris is the capital of France.\n")
    (folder / "nested" / "htap.md").write_text("TiDB supports HTAP workloads with TiFlash.\n")
    return folder


def _stored(engine: sa.Engine, table: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, meta FROM `{table}`"))
        return {row[0]: json.loads(row[1]) for row in rows}


def _sources(engine: sa.Engine, table: str) -> set[str]:
    return {m["source"] for m in _stored(engine, table).values()}


def _titan(bedrock: LocalBedrock) -> list[str]:
    return [r.body["inputText"] for r in bedrock.requests if r.op == "InvokeModel"]


def _summary(out: str) -> str:
    (line,) = [x for x in out.splitlines() if x.startswith("Ingested into table")]
    return line


def _main(*argv: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """The same CLI in this process: for the steps around the one each test runs for real."""
    monkeypatch.chdir(cwd)
    return cli.main([*argv])


def test_moved_folder_keeps_its_sources_and_prune_mirrors_deletions(
    docs: Path,
    services: list[str],
    local_bedrock: LocalBedrock,
    tidb_engine: sa.Engine,
    table_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        _main("ingest", "docs", *services, "--no-progress", cwd=tmp_path, monkeypatch=monkeypatch)
        == 0
    )
    first = _stored(tidb_engine, table_name)
    assert {m["source"] for m in first.values()} == {
        "docs/guide.md",
        "docs/notes.txt",
        "docs/nested/htap.md",
    }
    assert {m["path"] for m in first.values()} == {
        (docs / name).as_posix() for name in ("guide.md", "notes.txt", "nested/htap.md")
    }

    # Move the folder elsewhere and delete one file.
    moved = tmp_path / "archive" / "2024" / "docs"
    moved.parent.mkdir(parents=True)
    shutil.move(str(docs), str(moved))
    (moved / "notes.txt").unlink()
    local_bedrock.reset()
    capsys.readouterr()
    assert (
        _main(
            "ingest", str(moved), *services, "--no-progress", cwd=tmp_path, monkeypatch=monkeypatch
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert "0 embedded" in _summary(out)
    assert _titan(local_bedrock) == []  # same sources, same ids: nothing embedded again
    assert "note: 1 stored file under these paths no longer exists; --prune deletes" in err
    after = _stored(tidb_engine, table_name)
    assert set(after) == set(first)  # no duplicates; the deleted file is still there
    guide = next(m for m in after.values() if m["source"] == "docs/guide.md")
    assert guide["path"] == (moved / "guide.md").as_posix()  # updated without re-embedding

    out = _ok(_cli("ingest", "--prune", str(moved), *services, "--no-progress", cwd=tmp_path))
    notes = [i for i, m in first.items() if m["source"] == "docs/notes.txt"]
    assert len(notes) == 1
    assert "1 chunk of 1 file no longer there pruned" in _summary(out)
    assert _sources(tidb_engine, table_name) == {"docs/guide.md", "docs/nested/htap.md"}

    # A renamed folder keeps its sources with --name.
    renamed = moved.parent / "manual"
    moved.rename(renamed)
    local_bedrock.reset()
    argv = ["ingest", "manual", "--name", "docs", *services, "--no-progress"]
    assert _main(*argv, cwd=renamed.parent, monkeypatch=monkeypatch) == 0
    assert _titan(local_bedrock) == []
    assert _sources(tidb_engine, table_name) == {"docs/guide.md", "docs/nested/htap.md"}


def test_prune_replaces_sources_stored_as_absolute_paths(
    docs: Path,
    services: list[str],
    tidb_engine: sa.Engine,
    table_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Earlier versions used the absolute path as the source (and so in the chunk ids).
    assert (
        _main("ingest", "docs", *services, "--no-progress", cwd=tmp_path, monkeypatch=monkeypatch)
        == 0
    )
    legacy = (docs / "notes.txt").as_posix()
    with tidb_engine.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE `{table_name}` SET id = CONCAT('old-', id), meta = JSON_SET("
                "JSON_REMOVE(meta, '$.path'), '$.source', :legacy) "
                "WHERE meta->>'$.source' = 'docs/notes.txt'"
            ),
            {"legacy": legacy},
        )
    capsys.readouterr()
    argv = ["ingest", "docs", "--prune", *services, "--no-progress"]
    assert _main(*argv, cwd=tmp_path, monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert "1 embedded" in out
    assert "1 chunk of 1 file no longer there pruned" in out
    assert _sources(tidb_engine, table_name) == {
        "docs/guide.md",
        "docs/notes.txt",
        "docs/nested/htap.md",
    }


def test_sources_lists_and_delete_removes_a_source_or_a_folder(
    docs: Path,
    services: list[str],
    tidb_engine: sa.Engine,
    table_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        _main("ingest", "docs", *services, "--no-progress", cwd=tmp_path, monkeypatch=monkeypatch)
        == 0
    )
    counts: dict[str, int] = {}
    for meta in _stored(tidb_engine, table_name).values():
        counts[meta["source"]] = counts.get(meta["source"], 0) + 1
    (docs / "notes.txt").unlink()
    out = _ok(_cli("sources", *services, cwd=tmp_path))
    lines = out.strip().splitlines()
    assert re.fullmatch(r"SOURCE +CHUNKS  INGESTED \(UTC\)", lines[0])
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:-1]]
    assert [r[0] for r in rows] == ["docs/guide.md", "docs/nested/htap.md", "docs/notes.txt"]
    assert [int(r[1]) for r in rows] == [counts[r[0]] for r in rows]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[2]) for r in rows)
    assert rows[2][3] == "(file gone)"
    assert lines[-1] == f"3 sources, {sum(counts.values())} chunks in table {table_name}"

    out = _ok(_cli("delete", "--source", "docs/nested/", *services, cwd=tmp_path))
    assert out.strip() == "Deleted 1 chunk of 1 source: docs/nested/htap.md"
    capsys.readouterr()
    argv = ["delete", "--source", "docs/notes.txt", *services]
    assert _main(*argv, cwd=tmp_path, monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out.strip() == "Deleted 1 chunk of 1 source: docs/notes.txt"
    assert _sources(tidb_engine, table_name) == {"docs/guide.md"}

    argv = ["delete", "--source", "docs/gide.md", *services]
    assert _main(*argv, cwd=tmp_path, monkeypatch=monkeypatch) == 1
    assert capsys.readouterr().err.strip() == (
        "warning: --source 'docs/gide.md' matches no stored source; closest: docs/guide.md"
    )
    assert _sources(tidb_engine, table_name) == {"docs/guide.md"}
    # A path as typed, relative to where the command runs, names the stored file too.
    assert (
        _main("delete", "--source", "guide.md", *services, cwd=docs, monkeypatch=monkeypatch) == 0
    )
    assert "docs/guide.md" in capsys.readouterr().out
    assert _stored(tidb_engine, table_name) == {}
    assert _main("sources", *services, cwd=tmp_path, monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out.strip() == f"No sources stored in table {table_name}."


def test_source_typo_warns_with_the_closest_sources(
    docs: Path,
    services: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        _main("ingest", "docs", *services, "--no-progress", cwd=tmp_path, monkeypatch=monkeypatch)
        == 0
    )
    question = "What is the capital of France?"
    proc = _cli("ask", question, "--source", "docs/note.txt", *services, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""  # no answer from an empty selection
    assert proc.stderr.strip() == (
        "warning: --source 'docs/note.txt' matches no stored source; closest: docs/notes.txt"
    )
    # A folder selects everything under it; one typo among good values only warns.
    capsys.readouterr()
    argv = ["ask", question, "--source", "docs", "--source", "nope", "--k", "1", *services]
    assert _main(*argv, cwd=tmp_path, monkeypatch=monkeypatch) == 0
    out, err = capsys.readouterr()
    assert "Paris is the capital of France. [1]" in out
    assert err.startswith("warning: --source 'nope' matches no stored source")


BAD_INPUT = [
    (["ask", "   "], "argument QUESTION: must not be empty"),
    (["ask", "q", "--k", "0"], "argument --k: must be at least 1, got 0"),
    (["chat", "--k", "many"], "argument --k: expected a whole number, got 'many'"),
    (["ingest", "docs", "--chunk-size", "0"], "argument --chunk-size: must be at least 1, got 0"),
    (["ingest", "docs", "--batch-size", "-5"], "argument --batch-size: must be at least 1, got -5"),
    (
        ["ingest", "docs", "--chunk-size", "100", "--chunk-overlap", "100"],
        "argument --chunk-overlap: must be less than --chunk-size (100), got 100",
    ),
    (["ingest", "docs", "docs", "--name", "x"], "argument --name: applies to one PATH, got 2"),
    (["ask", "q", "--filter", "[1]"], "argument --filter: must be a JSON object"),
    (["ask", "q", "--table", "no-dash"], "argument --table: invalid table name 'no-dash'"),
    (
        ["sources", "--tidb-url", "postgresql://h/db"],
        "argument --tidb-url: --tidb-url uses the driver 'postgresql'",
    ),
    (["ask", "q", "--bedrock-endpoint-url", "localhost:8000"], "argument --bedrock-endpoint-url"),
    (["delete"], "the following arguments are required: --source"),
    (["ingest", "missing-folder"], "no such file or directory: missing-folder"),
]


def _offline(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> dict[str, str]:
    """Nothing configured: a server start would create ``data_dir``."""
    monkeypatch.setenv("LTB_DATA_DIR", str(data_dir))
    for name in [k for k in os.environ if k.startswith(("TIDB_", "AWS_"))]:
        if name != "TIDB_SERVER_BIN":
            monkeypatch.delenv(name)
    return dict(os.environ)


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUT)
def test_bad_input_fails_before_any_server_starts(
    argv: list[str],
    expected: str,
    docs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "cli-data"
    _offline(monkeypatch, data_dir)
    assert _main(*argv, cwd=tmp_path, monkeypatch=monkeypatch) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: {expected}")
    assert not data_dir.exists()


def test_bad_input_as_a_real_process(
    docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "cli-data"
    env = _offline(monkeypatch, data_dir)
    cases = [BAD_INPUT[1], BAD_INPUT[5]]
    procs = [
        subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", "langchain_tidb_bedrock", *argv],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv, _ in cases
    ]
    for proc, (argv, expected) in zip(procs, cases, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (argv, err)
        assert out == ""
        (line,) = err.strip().splitlines()
        assert line.startswith(f"error: {expected}"), (argv, line)
        assert line.endswith(f"(see tidb-bedrock {argv[0]} --help)")
    assert not data_dir.exists()


def test_no_op_reingest_reads_ids_and_metadata_only(
    docs: Path,
    services: list[str],
    tidb_engine: sa.Engine,
    table_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for n in range(40):
        (docs / f"page-{n:03d}.md").write_text(f"# Page {n}\n\nSection {n} says {n * 7}.\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["ingest", "docs", *services, "--no-progress"]) == 0
    chunks = len(_stored(tidb_engine, table_name))
    capsys.readouterr()
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    # The CLI builds its own engine: listen on every engine's statements in this process.
    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        assert cli.main(["ingest", "docs", *services, "--no-progress"]) == 0
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    assert f"0 embedded, {chunks} unchanged, 0 stale deleted" in capsys.readouterr().out
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    on_table = [s for s in reads if table_name in s]
    assert on_table  # the stored ids were read...
    assert not [s for s in on_table if "document" in s or "embedding" in s]  # ...not texts
    assert not [s for s in statements if s.lstrip().upper().startswith(("INSERT", "DELETE"))]


def test_no_op_reingest_costs_a_fraction_of_the_first(
    services: list[str],
    local_bedrock: LocalBedrock,
    table_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Counted, not timed: statements sent and embedding requests made, per run.
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(300):
        body = " ".join(f"Fact {n}.{k}: item {n * k} weighs {k + n} grams." for k in range(20))
        (folder / f"note-{n:04d}.md").write_text(f"# Note {n}\n\n{body}\n")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    summaries: list[str] = []
    sent: list[list[str]] = []
    embedded: list[int] = []
    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        for _ in range(2):
            statements.clear()
            local_bedrock.reset()
            assert (
                _main(
                    "ingest",
                    "many",
                    *services,
                    "--no-progress",
                    cwd=tmp_path,
                    monkeypatch=monkeypatch,
                )
                == 0
            )
            summaries.append(_summary(capsys.readouterr().out))
            sent.append(list(statements))
            embedded.append(len(_titan(local_bedrock)))
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    first, again = summaries
    chunks = int(first.split(" chunks:")[0].rsplit(" ", 1)[1])
    assert f"{chunks} embedded" in first
    assert f"0 embedded, {chunks} unchanged" in again
    assert embedded == [chunks, 0]  # the first run's main cost, not paid again
    # What is stored is read in a few statements, not one (or more) per file: 300 files here.
    assert any(table_name in s for s in sent[1]), sent[1]  # (the listener sees the CLI's reads)
    assert len(sent[1]) <= 10, sent[1]


def test_non_english_questions_retrieve_their_passages(
    services: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "zh.md").write_text("TiDB 是一个开源的分布式 SQL 数据库，支持混合事务和分析处理。\n")  # noqa: RUF001
    (folder / "ru.md").write_text("Париж — столица Франции и крупнейший город страны.\n")
    (folder / "ja.md").write_text("東京は日本の首都です。\n")
    (folder / "en.md").write_text("Amazon Bedrock serves foundation models through one API.\n")
    assert (
        _main("ingest", "docs", *services, "--no-progress", cwd=tmp_path, monkeypatch=monkeypatch)
        == 0
    )
    out = _ok(_cli("ask", "什么是分布式数据库？", "--k", "1", *services, cwd=tmp_path))  # noqa: RUF001
    assert out.split("Sources:\n")[1].strip() == "[1] docs/zh.md (chunk 0)"
    assert "分布式 SQL 数据库" in out.split("Sources:")[0]
    for question, source in (
        ("Какая столица Франции?", "docs/ru.md"),
        ("日本の首都はどこですか？", "docs/ja.md"),  # noqa: RUF001
    ):
        capsys.readouterr()
        assert (
            _main("ask", question, "--k", "1", *services, cwd=tmp_path, monkeypatch=monkeypatch)
            == 0
        )
        out = capsys.readouterr().out
        assert out.split("Sources:\n")[1].strip() == f"[1] {source} (chunk 0)", question


# ---------------------------------------------------------------- the shared local server


def _servers_on(data_dir: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if args and "tidb-server" in args[0] and f"-path={data_dir}/store" in args and state != "Z":
            found.append(int(proc.name))
    return found


def _read_until(stream: IO[str], marker: str, timeout: float = 240) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not seen in {''.join(seen)!r}")


@pytest.fixture
def chat_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", "langchain_tidb_bedrock", "chat", *extra],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_commands_share_the_local_server_and_recover_from_kills(
    docs: Path, tmp_path: Path, chat_factory: Any
) -> None:
    data_dir = tmp_path / "cli-data"
    env = offline_env(data_dir, tmp_path)
    # chat and ingest start together on a fresh data dir: one starts the server, the other
    # waits for it and joins.
    chat = chat_factory(env, "-v")
    ingest = _cli("ingest", "docs", "--no-progress", cwd=tmp_path, env=env)
    assert "3 files" in _summary(_ok(ingest))
    assert chat.stdout is not None
    assert chat.stdin is not None
    _read_until(chat.stdout, "Ask about your documents")
    (server,) = _servers_on(data_dir)
    # While chat is open, other commands use its server.
    listing = _cli("sources", "-v", cwd=tmp_path, env=env)
    assert "docs/guide.md" in _ok(listing)
    note, *details = listing.stderr.strip().splitlines()
    assert note == "note: using a local TiDB and LocalBedrock (a stand-in, not a model)"
    assert any(f"server pid {server}, shared with 1 other command(s)" in x for x in details)
    assert all(line.startswith("note: ") for line in details)
    chat.stdin.write("What is the capital of France?\nexit\n")
    chat.stdin.flush()
    out, err = chat.communicate(timeout=60)
    assert chat.returncode == 0, err
    assert "Paris is the capital of France." in out
    assert _servers_on(data_dir) == []  # the last one out stopped it
    assert not (data_dir / "server.json").exists()

    # A command killed outright leaves its server and its entry behind: the next command
    # joins that server and, as the last user, stops it.
    chat = chat_factory(env)
    _read_until(chat.stdout, "Ask about your documents")
    (server,) = _servers_on(data_dir)
    chat.send_signal(signal.SIGKILL)
    chat.wait()
    assert _servers_on(data_dir) == [server]
    listing = _cli("sources", "-v", cwd=tmp_path, env=env)
    assert f"server pid {server}, shared with 0 other command(s)" in listing.stderr
    assert _servers_on(data_dir) == []

    # A server killed hard (its record still names it, its data dir lock file remains) is
    # replaced by a fresh one.
    chat = chat_factory(env)
    _read_until(chat.stdout, "Ask about your documents")
    (server,) = _servers_on(data_dir)
    os.kill(server, signal.SIGKILL)
    chat.send_signal(signal.SIGKILL)
    chat.wait()
    assert "docs/guide.md" in _ok(_cli("sources", cwd=tmp_path, env=env))
    assert _servers_on(data_dir) == []
