"""The command line, in-process against the session TiDB and LocalBedrock, plus one real
``python -m langchain_tidb_bedrock demo`` run with nothing configured."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers.env import offline_env

from langchain_tidb_bedrock.cli import main as cli
from langchain_tidb_bedrock.ingest import chunk_id, split_file
from langchain_tidb_bedrock.local.bedrock import LocalBedrock

SECTION = (
    "TiDB Vector Search stores embeddings in VECTOR columns. It ranks rows with "
    "VEC_COSINE_DISTANCE or VEC_L2_DISTANCE, and an HNSW index makes large searches fast. "
)
FILLER = " ".join(f"Note {n} about tuning batch size {n * 8}." for n in range(12))


@pytest.fixture
def args(tidb_url: str, bedrock: LocalBedrock, table_name: str) -> list[str]:
    return [
        "--tidb-url",
        tidb_url,
        "--bedrock-endpoint-url",
        bedrock.endpoint_url,
        "--table",
        table_name,
    ]


@pytest.fixture
def docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "docs"
    (folder / "nested").mkdir(parents=True)
    (folder / "guide.md").write_text(
        "# Vector search\n\n"
        + SECTION
        + FILLER
        + "\n\n## Bedrock\n\n"
        + "Amazon Bedrock serves Meta Llama 3 through the Converse API. " * 6
        + "\n\n## Serverless\n\n"
        + "TiDB Serverless is a managed deployment with a free tier. " * 6
    )
    (folder / "notes.txt").write_text("Paris is the capital of France.\n")
    (folder / "nested" / "htap.md").write_text("TiDB supports HTAP workloads with TiFlash.\n")
    (folder / "slides.pdf").write_bytes(b"%PDF-1.4")
    (folder / ".hidden.md").write_text("never ingested")
    return folder


def _titan(bedrock: LocalBedrock) -> list[str]:
    return [r.body["inputText"] for r in bedrock.requests if r.op == "InvokeModel"]


def _stored(engine: sa.Engine, table: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, JSON_UNQUOTE(meta->'$.source') FROM `{table}`"))
        return {row[0]: row[1] for row in rows}


def _src(path: Path) -> str:
    """The source ``ingest docs`` records: ``docs/`` + the path inside, whatever the cwd."""
    full = path.resolve().as_posix()
    return full[full.rindex("/docs/") + 1 :]


def _expected_chunks(path: Path, source: str | None = None) -> list[str]:
    # split_file has its own tests (tests/unit_tests/test_ingest_split.py).
    source = source or _src(path)
    return [d.id or "" for d in split_file(path, source, chunk_size=300, chunk_overlap=50)]


def _stored_chunks(engine: sa.Engine, table: str, source: str) -> list[str]:
    """The texts stored for ``source``, each checked against its id (sha256 of source NUL text)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT id, document FROM `{table}` WHERE meta->>'$.source' = :s"
                " ORDER BY CAST(meta->'$.chunk' AS UNSIGNED)"
            ),
            {"s": source},
        ).all()
    for doc_id, text in rows:
        assert doc_id == hashlib.sha256(f"{source}\0{text}".encode()).hexdigest()[:32]
    return [text for _, text in rows]


def _ingest(args: list[str]) -> int:
    return cli.main(
        ["ingest", "docs", *args, "--no-progress", "--chunk-size", "300", "--chunk-overlap", "50"]
    )


def test_ingest_is_idempotent(
    docs: Path,
    args: list[str],
    bedrock: LocalBedrock,
    tidb_engine: sa.Engine,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _ingest(args) == 0
    out, err = capsys.readouterr()
    expected = {
        *_expected_chunks(docs / "guide.md"),
        *_expected_chunks(docs / "notes.txt"),
        *_expected_chunks(docs / "nested" / "htap.md"),
    }
    assert len(expected) > 3  # the guide really was split
    assert f"3 files, {len(expected)} chunks: {len(expected)} embedded, 0 unchanged" in out
    assert "note: skipping 1 file that is not .txt/.md/.markdown/.rst: docs/slides.pdf" in err
    stored = _stored(tidb_engine, table_name)
    assert set(stored) == expected
    assert set(stored.values()) == {
        _src(docs / "guide.md"),
        _src(docs / "notes.txt"),
        _src(docs / "nested" / "htap.md"),
    }
    assert len(_titan(bedrock)) == len(expected)
    # Independently of the splitter: the guide's chunks fit the size and start with their
    # heading path.
    guide = _stored_chunks(tidb_engine, table_name, _src(docs / "guide.md"))
    assert len(guide) > 3
    assert all(len(c) <= 300 for c in guide), guide
    headings = ("Vector search", "Vector search > Bedrock", "Vector search > Serverless")
    assert all(c.split("\n\n", 1)[0] in headings for c in guide), guide
    # The first section's sentences are all different (the others repeat one sentence, and a
    # repeated chunk is stored once): its bodies, in order, cover every character of it.
    text = (docs / "guide.md").read_text().split("## Bedrock")[0]
    covered = [line.startswith("#") for line in text.splitlines(keepends=True) for _ in line]
    cursor = 0
    for chunk in guide:
        heading, body = chunk.split("\n\n", 1)
        if heading != "Vector search":
            continue
        start = text.find(body, cursor)  # verbatim, after the previous chunk's start
        assert start >= 0, (body, text[cursor:])
        covered[start : start + len(body)] = [True] * len(body)
        cursor = start + 1
    missed = "".join(c for c, seen in zip(text, covered, strict=True) if not seen)
    assert not missed.strip(), missed  # every character but the heading and blank space
    assert _stored_chunks(tidb_engine, table_name, _src(docs / "notes.txt")) == [
        "Paris is the capital of France."
    ]

    bedrock.reset()
    assert _ingest(args) == 0
    out, _ = capsys.readouterr()
    assert _titan(bedrock) == []  # not a single embedding call the second time
    assert f"0 embedded, {len(expected)} unchanged, 0 stale deleted" in out
    assert set(_stored(tidb_engine, table_name)) == expected


def test_changed_file_embeds_only_new_chunks_and_deletes_stale(
    docs: Path,
    args: list[str],
    bedrock: LocalBedrock,
    tidb_engine: sa.Engine,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _ingest(args) == 0
    guide = docs / "guide.md"
    old = set(_expected_chunks(guide))
    # Add a section on top (later chunks move), drop the Serverless one, add one at the end.
    kept = guide.read_text().split("## Serverless")[0]
    guide.write_text(f"# Intro\n\nWelcome.\n\n{kept}## Pricing\n\nStorage is billed monthly.")
    new_order = _expected_chunks(guide)
    new = set(new_order)
    assert old & new  # some chunks survive the edit
    capsys.readouterr()
    bedrock.reset()

    assert _ingest(args) == 0
    out, _ = capsys.readouterr()
    embedded = _titan(bedrock)
    assert len(embedded) == len(new - old)
    assert "Storage is billed monthly." in "".join(embedded)
    assert f"{len(new - old)} embedded" in out
    assert f"{len(old - new)} stale deleted" in out
    stored = _stored(tidb_engine, table_name)
    assert {i for i, s in stored.items() if s == _src(guide)} == new
    # Chunks that moved were renumbered without being embedded again.
    with tidb_engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, meta->'$.chunk' FROM `{table_name}`"))
        positions = {row[0]: int(row[1]) for row in rows}
    assert [positions[i] for i in new_order] == list(range(len(new_order)))
    assert chunk_id(_src(docs / "notes.txt"), "Paris is the capital of France.") in stored


def test_failed_embedding_keeps_the_old_chunks_of_a_changed_file(
    docs: Path,
    args: list[str],
    bedrock: LocalBedrock,
    tidb_engine: sa.Engine,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _ingest(args) == 0
    guide = docs / "guide.md"
    old = set(_expected_chunks(guide))
    before = _stored(tidb_engine, table_name)
    guide.write_text("# Rewritten\n\nEverything about this guide changed. " * 3)
    capsys.readouterr()
    bedrock.reset()
    bedrock.fail_next(400, "ValidationException", "injected failure", times=100)

    assert _ingest(args) == 1
    _, err = capsys.readouterr()
    assert "ValidationException" in err
    # The stale chunks are deleted only after the new ones are stored: nothing was lost.
    assert _stored(tidb_engine, table_name) == before
    assert old <= set(before)

    bedrock.reset()
    assert _ingest(args) == 0  # the retry then replaces them
    out, _ = capsys.readouterr()
    assert f"{len(old)} stale deleted" in out
    stored = _stored(tidb_engine, table_name)
    assert {i for i, s in stored.items() if s == _src(guide)} == set(_expected_chunks(guide))


def test_ingest_from_another_directory_embeds_nothing_again(
    docs: Path,
    args: list[str],
    bedrock: LocalBedrock,
    tidb_engine: sa.Engine,
    table_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _ingest(args) == 0  # `ingest docs` from the folder above it
    first = _stored(tidb_engine, table_name)
    capsys.readouterr()
    bedrock.reset()

    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert (
        cli.main(
            [
                "ingest",
                "../../docs",
                *args,
                "--no-progress",
                "--chunk-size",
                "300",
                "--chunk-overlap",
                "50",
            ]
        )
        == 0
    )
    out, _ = capsys.readouterr()
    assert _titan(bedrock) == []  # same sources, same ids: nothing embedded again
    assert f"0 embedded, {len(first)} unchanged, 0 stale deleted" in out
    monkeypatch.chdir(docs / "nested")
    assert (
        cli.main(
            [
                "ingest",
                str(docs),
                *args,
                "--no-progress",
                "--chunk-size",
                "300",
                "--chunk-overlap",
                "50",
            ]
        )
        == 0
    )
    assert _titan(bedrock) == []
    assert _stored(tidb_engine, table_name) == first  # no duplicates


def test_ask_streams_a_grounded_answer_with_sources(
    docs: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ingest(args) == 0
    capsys.readouterr()
    assert cli.main(["ask", "Which distance ranks rows in TiDB Vector Search?", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    answer, sources = out.split("Sources:\n")
    assert answer.startswith("(LocalBedrock stand-in) ")
    assert "VEC_COSINE_DISTANCE" in answer
    lines = sources.strip().splitlines()
    assert len(lines) == 4  # default k
    assert re.fullmatch(rf"\[1\] {re.escape(_src(docs / 'guide.md'))} \(chunk \d+\)", lines[0])
    cited = [int(n) for n in re.findall(r"\[(\d+)\]", answer)]
    assert cited
    assert all(1 <= n <= len(lines) for n in cited)


def test_ask_with_k_and_source_filter(
    docs: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ingest(args) == 0
    capsys.readouterr()
    question = "What is the capital of France?"
    htap = _src(docs / "nested" / "htap.md")
    assert cli.main(["ask", question, *args, "--k", "2", "--source", htap]) == 0
    out, _ = capsys.readouterr()
    assert "I don't know" in out
    assert out.split("Sources:\n")[1].strip().splitlines() == [f"[1] {htap} (chunk 0)"]
    assert cli.main(["ask", question, *args, "--k", "1"]) == 0
    out, _ = capsys.readouterr()
    assert "Paris is the capital of France. [1]" in out
    assert f"[1] {_src(docs / 'notes.txt')} (chunk 0)" in out


def test_source_option_takes_the_path_as_typed(
    docs: Path, args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _ingest(args) == 0
    monkeypatch.chdir(docs)
    capsys.readouterr()
    question = "What is the capital of France?"
    assert cli.main(["ask", question, *args, "--k", "1", "--source", "notes.txt"]) == 0
    out, _ = capsys.readouterr()
    assert "Paris is the capital of France. [1]" in out
    assert out.split("Sources:\n")[1].strip().splitlines() == [
        f"[1] {_src(docs / 'notes.txt')} (chunk 0)"
    ]


def test_chat_keeps_history(
    docs: Path,
    args: list[str],
    bedrock: LocalBedrock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _ingest(args) == 0
    capsys.readouterr()
    bedrock.reset()
    monkeypatch.setattr(
        sys, "stdin", io.StringIO("Tell me about Amazon Bedrock\n\nWhich API serves it?\nexit\n")
    )
    assert cli.main(["chat", *args]) == 0
    out, _ = capsys.readouterr()
    assert out.count("bot> (LocalBedrock stand-in)") == 2
    assert "Converse API" in out
    prompts = [
        r.body["messages"][0]["content"][0]["text"]
        for r in bedrock.requests
        if r.op.startswith("Converse")
    ]
    assert len(prompts) == 3  # answer, rewrite, answer
    assert "Human: Tell me about Amazon Bedrock" in prompts[1]
    assert "Follow-up question: Which API serves it?" in prompts[1]
    # EOF ends the loop too.
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(["chat", *args]) == 0


def test_demo_is_grounded_and_idempotent(
    args: list[str],
    bedrock: LocalBedrock,
    tidb_engine: sa.Engine,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["demo", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f"Stored 5 facts in table {table_name} (5 embedded, 0 already there)." in out
    assert "Question: What is TiDB?" in out
    assert "Retrieved 3 passages (vector search):" in out
    block = out.split("(vector search):\n")[1].split("\n\nAnswer:")[0]
    retrieved = re.findall(r"^  \[\d\] (.+)$", block, re.MULTILINE)
    assert len(retrieved) == 3
    assert all(r in cli.DEMO_FACTS for r in retrieved)
    assert retrieved[0] == cli.DEMO_FACTS[0]  # the definition of TiDB comes first
    answer = out.split("Answer:\n")[1].split("Sources:")[0].strip()
    assert answer.startswith("(LocalBedrock stand-in) TiDB")
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    assert cited
    assert cited <= {1, 2, 3}
    for n in cited:  # the cited passage's sentence is in the answer
        assert retrieved[n - 1] in answer
    assert re.search(r"Sources:\n\[1\] tidb-bedrock-tutorial \(chunk \d\)\n", out)
    assert len(_titan(bedrock)) == 6  # five facts + the question

    bedrock.reset()
    assert cli.main(["demo", *args]) == 0
    out, _ = capsys.readouterr()
    assert "(0 embedded, 5 already there)" in out
    assert _titan(bedrock) == ["What is TiDB?"]
    assert len(_stored(tidb_engine, table_name)) == 5


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_error_bad_path(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ingest", "/no/such/folder", *args]) == 2
    _, err = capsys.readouterr()
    assert _one_error_line(err) == "error: no such file or directory: /no/such/folder"


def test_error_unreachable_tidb(bedrock: LocalBedrock, capsys: pytest.CaptureFixture[str]) -> None:
    url = "mysql+pymysql://root@127.0.0.1:1/test"
    code = cli.main(
        ["ask", "What is TiDB?", "--tidb-url", url, "--bedrock-endpoint-url", bedrock.endpoint_url]
    )
    assert code == 1
    _, err = capsys.readouterr()
    line = _one_error_line(err)
    assert line.startswith(f"error: cannot connect to TiDB at {url}: ")
    assert "Connection refused" in line or "Can't connect" in line


def test_error_missing_aws_credentials(
    tidb_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    code = cli.main(["ask", "What is TiDB?", "--tidb-url", tidb_url, "--region", "us-east-1"])
    assert code == 1
    _, err = capsys.readouterr()
    assert "No AWS credentials found for Amazon Bedrock" in _one_error_line(err)


def test_error_bad_arguments(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ask", "q", *args, "--filter", "{not json"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: argument --filter: not valid JSON")
    assert cli.main(["ask", "q", *args, "--filter", '{"source": {"$regex": "x"}}']) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: argument --filter: unknown operator '$regex'")
    assert cli.main([]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == (
        "error: the following arguments are required: COMMAND (see tidb-bedrock --help)"
    )


def _tidb_servers_using(data_dir: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "tidb-server" in cmdline and str(data_dir) in cmdline:
            pids.append(int(proc.name))
    return pids


def test_demo_subprocess_with_nothing_configured(tmp_path: Path) -> None:
    data_dir = tmp_path / "cli-data"
    env = offline_env(data_dir, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "langchain_tidb_bedrock", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (note,) = proc.stderr.strip().splitlines()
    assert note == (
        "note: using a local TiDB and LocalBedrock (a stand-in, not a model); -v for details"
    )
    assert len(note) <= 100
    answer = proc.stdout.split("Answer:\n")[1]
    assert answer.startswith("(LocalBedrock stand-in) TiDB")
    assert re.search(r"\[[123]\]", answer)
    assert "Sources:\n[1] tidb-bedrock-tutorial (chunk" in proc.stdout
    assert (data_dir / "store").is_dir()  # the data persists for the next run
    assert _tidb_servers_using(data_dir) == []


def test_ingest_overlapping_paths_and_undecodable_text(
    docs: Path,
    args: list[str],
    tidb_engine: sa.Engine,
    table_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (docs / "binary.txt").write_bytes(b"\xff\xfe\x00not utf-8")
    code = cli.main(
        ["ingest", "docs", "docs/notes.txt", "./docs/notes.txt", *args, "--no-progress"]
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert "note: skipped 1 file that is not UTF-8 text: docs/binary.txt" in err
    assert "Ingested into table" in out
    assert "3 files" in out  # notes.txt once, binary.txt skipped
    assert sorted(set(_stored(tidb_engine, table_name).values())) == [
        _src(docs / "guide.md"),
        _src(docs / "nested" / "htap.md"),
        _src(docs / "notes.txt"),
    ]
