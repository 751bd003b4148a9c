"""The command line on real folders: table dimensions, Ctrl-C during ingest, unreadable files
named, confirmation before deleting several sources, a --filter that matches nothing, .rst and
--glob, plurals. In-process against the session TiDB and LocalBedrock."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from langchain_tidb_bedrock import BedrockTitanEmbeddings, TiDBVectorStore
from langchain_tidb_bedrock.cli import main as cli
from langchain_tidb_bedrock.local.bedrock import LocalBedrock


@pytest.fixture
def args(tidb_url: str, bedrock: LocalBedrock, table_name: str) -> list[str]:
    return ["--tidb-url", tidb_url, "--bedrock-endpoint-url", bedrock.endpoint_url]


@pytest.fixture
def table(table_name: str) -> list[str]:
    return ["--table", table_name]


@pytest.fixture
def docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.md").write_text("# Guide\n\nTiDB stores vectors in VECTOR columns.\n")
    (folder / "notes.txt").write_text("Paris is the capital of France.\n")
    (folder / "htap.md").write_text("TiDB supports HTAP workloads with TiFlash.\n")
    return folder


@pytest.fixture
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _titan(bedrock: LocalBedrock) -> list[Any]:
    return [r for r in bedrock.requests if r.op == "InvokeModel"]


def _one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def _dimension(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        kind = conn.execute(
            sa.text(
                "SELECT COLUMN_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = "
                "DATABASE() AND TABLE_NAME = :t AND COLUMN_NAME = 'embedding'"
            ),
            {"t": table},
        ).scalar_one()
    match = re.fullmatch(r"vector\((\d+)\)", str(kind).lower())
    assert match, kind
    return int(match.group(1))


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM `{table}`")).scalar_one())


@pytest.fixture
def wide_table(tidb_url: str, bedrock: LocalBedrock, table_name: str) -> Iterator[TiDBVectorStore]:
    """A table the library made with its default Titan size (1024)."""
    titan = BedrockTitanEmbeddings(endpoint_url=bedrock.endpoint_url, region_name="us-east-1")
    store = TiDBVectorStore(titan, connection_string=tidb_url, table_name=table_name)
    store.add_texts(["TiDB is a distributed SQL database."], [{"source": "api"}], ids=["api"])
    bedrock.reset()
    yield store
    store.close()
    titan.close()


def test_ingest_uses_the_tables_dimension(
    docs: Path,
    args: list[str],
    table: list[str],
    wide_table: TiDBVectorStore,
    bedrock: LocalBedrock,
    tidb_engine: sa.Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["ingest", "docs", *args, *table, "--no-progress"]) == 0
    assert "3 embedded" in capsys.readouterr().out
    assert {r.body["dimensions"] for r in _titan(bedrock)} == {1024}
    assert _dimension(tidb_engine, wide_table.table_name) == 1024
    assert cli.main(["ask", "What is the capital of France?", *args, *table, "--k", "1"]) == 0
    assert "Paris is the capital of France. [1]" in capsys.readouterr().out


def test_a_dimension_the_table_cannot_store_fails_before_embedding(
    docs: Path,
    args: list[str],
    table: list[str],
    wide_table: TiDBVectorStore,
    bedrock: LocalBedrock,
    tidb_engine: sa.Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["ingest", "docs", *args, *table, "--no-progress", "--dimensions", "512"])
    assert code == 2
    line = _one_error(capsys.readouterr().err)
    assert f"table {wide_table.table_name!r} stores 1024-dimensional vectors" in line
    assert "512 dimensions were asked for (--dimensions)" in line
    assert _titan(bedrock) == []  # nothing was embedded (nor paid for)
    assert _count(tidb_engine, wide_table.table_name) == 1


def test_a_table_no_titan_size_fits_is_refused(
    docs: Path,
    args: list[str],
    table: list[str],
    table_name: str,
    tidb_url: str,
    bedrock: LocalBedrock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = TiDBVectorStore(None, connection_string=tidb_url, table_name=table_name)
    store.add_embeddings(["x"], [[0.5] * 8], ids=["x"])
    store.close()
    assert cli.main(["ingest", "docs", *args, *table, "--no-progress"]) == 2
    line = _one_error(capsys.readouterr().err)
    assert "stores 8-dimensional vectors; Titan Text Embeddings V2 makes 256, 512, 1024" in line
    assert _titan(bedrock) == []


def test_dimensions_option_sizes_a_new_table(
    docs: Path,
    args: list[str],
    table: list[str],
    table_name: str,
    tidb_engine: sa.Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["ingest", "docs", *args, *table, "--no-progress", "--dimensions", "256"]) == 0
    assert _dimension(tidb_engine, table_name) == 256
    assert cli.main(["ingest", "docs", *args, *table, "--no-progress", "--dimensions", "9"]) == 2
    assert "argument --dimensions: invalid choice: 9" in _one_error(capsys.readouterr().err)


def test_ctrl_c_during_ingest_says_what_was_stored_and_sources_shows_the_file_incomplete(
    tmp_path: Path,
    args: list[str],
    table: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book").mkdir()
    paragraphs = [f"Paragraph {n}: TiDB keeps vector number {n} beside its row." for n in range(33)]
    (tmp_path / "book" / "long.txt").write_text("\n\n".join(paragraphs))
    ingest = ["ingest", "book", *args, *table, "--no-progress", "--chunk-size", "70"]
    ingest += ["--chunk-overlap", "0", "--batch-size", "5"]
    real = BedrockTitanEmbeddings.embed_documents
    calls: list[int] = []

    def interrupted(self: BedrockTitanEmbeddings, texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third batch is embedded
        return real(self, texts)

    monkeypatch.setattr(BedrockTitanEmbeddings, "embed_documents", interrupted)
    assert cli.main(ingest) == 130
    err = capsys.readouterr().err
    assert err.strip() == (
        "interrupted: 10 of 33 new chunks stored; 1 file is incomplete; "
        "run the same ingest again to finish"
    )

    assert cli.main(["sources", *args, *table]) == 0
    out, err = capsys.readouterr()
    (row,) = [line for line in out.splitlines() if line.startswith("book/long.txt")]
    assert re.split(r"\s{2,}", row.strip())[1] == "10"
    assert row.endswith("(incomplete: 33 chunks in the file)")
    assert "note: 1 file is incomplete (an ingest was interrupted); ingest again to finish" in err

    monkeypatch.setattr(BedrockTitanEmbeddings, "embed_documents", real)
    assert cli.main(ingest) == 0
    assert "1 file, 33 chunks: 23 embedded, 10 unchanged" in capsys.readouterr().out
    assert cli.main(["sources", *args, *table]) == 0
    out, err = capsys.readouterr()
    assert "incomplete" not in out + err
    assert out.strip().splitlines()[-1].startswith("1 source, 33 chunks in table")


def test_unreadable_files_are_named(
    docs: Path, args: list[str], table: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(7):
        (docs / f"latin1-{n}.txt").write_bytes("caf\xe9".encode("latin-1"))
    assert cli.main(["ingest", "docs", *args, *table, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    (note,) = [line for line in err.splitlines() if "not UTF-8" in line]
    shown = ", ".join(f"docs/latin1-{n}.txt" for n in range(5))
    assert (
        note
        == f"note: skipped 7 files that are not UTF-8 text: {shown}, ... (2 more; -v lists all)"
    )
    assert "3 files, 3 chunks" in out
    assert cli.main(["ingest", "docs", *args, *table, "--no-progress", "-v"]) == 0
    (note,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("note: skipped")]
    assert note.endswith(", ".join(f"docs/latin1-{n}.txt" for n in range(7)))


def test_deleting_several_sources_asks_first(
    docs: Path,
    args: list[str],
    table: list[str],
    table_name: str,
    tidb_engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    no_terminal: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["ingest", "docs", *args, *table, "--no-progress"]) == 0
    capsys.readouterr()
    # No terminal to ask and no --yes: refused, nothing deleted.
    assert cli.main(["delete", "--source", "docs", *args, *table]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_error(err) == (
        "error: --source matches 3 sources (docs/guide.md, docs/htap.md, docs/notes.txt); "
        "pass --yes to delete them all (no terminal to ask)"
    )
    assert _count(tidb_engine, table_name) == 3
    # One source: no question.
    assert cli.main(["delete", "--source", "docs/htap.md", *args, *table]) == 0
    assert capsys.readouterr().out.strip() == "Deleted 1 chunk of 1 source: docs/htap.md"
    # On a terminal: "n" keeps them, "y" deletes them.
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    assert cli.main(["delete", "--source", "docs", *args, *table]) == 1
    out, err = capsys.readouterr()
    assert err == "Delete 2 chunks of 2 sources: docs/guide.md, docs/notes.txt? [y/N] "
    assert out.strip() == "Deleted nothing."
    assert _count(tidb_engine, table_name) == 2
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    assert cli.main(["delete", "--source", "docs", *args, *table]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == "Deleted 2 chunks of 2 sources: docs/guide.md, docs/notes.txt"
    assert _count(tidb_engine, table_name) == 0


def test_delete_yes_skips_the_question(
    docs: Path,
    args: list[str],
    table: list[str],
    table_name: str,
    tidb_engine: sa.Engine,
    no_terminal: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["ingest", "docs", *args, *table, "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["delete", "--source", "docs", "--yes", *args, *table]) == 0
    assert capsys.readouterr().out.startswith("Deleted 3 chunks of 3 sources: ")
    assert _count(tidb_engine, table_name) == 0


def test_a_filter_that_matches_nothing_warns(
    docs: Path,
    args: list[str],
    table: list[str],
    table_name: str,
    bedrock: LocalBedrock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["ingest", "docs", *args, *table, "--no-progress"]) == 0
    capsys.readouterr()
    bedrock.reset()
    question = ["ask", "What is TiDB?", *args, *table]
    assert cli.main([*question, "--filter", '{"chunk": {"$gt": 100}}']) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (
        f'warning: --filter {{"chunk": {{"$gt": 100}}}} matches no stored chunk in table '
        f"{table_name}"
    )
    assert not [r for r in bedrock.requests if r.op.startswith("Converse")]  # no answer asked
    filtered = [*question, "--source", "docs/notes.txt", "--filter", '{"chunk": 0}']
    assert cli.main(filtered) == 0
    assert "Sources:\n[1] docs/notes.txt (chunk 0)\n" in capsys.readouterr().out
    assert cli.main([*question, "--source", "docs/notes.txt", "--filter", '{"chunk": 1}']) == 1
    assert "matches no stored chunk among the --source selection" in capsys.readouterr().err


def test_rst_files_glob_and_plurals(
    tmp_path: Path,
    args: list[str],
    table: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.rst").write_text("Welcome\n=======\n\nTiDB docs in reStructuredText.\n")
    (folder / "tool.py").write_text("print('tidb')\n")
    assert cli.main(["ingest", "site", *args, *table, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "note: skipping 1 file that is not .txt/.md/.markdown/.rst: site/tool.py" in err
    assert "Ingested into table" in out
    assert "1 file, 1 chunk: 1 embedded, 0 unchanged, 0 stale deleted" in out
    assert cli.main(["ingest", "site", "--glob", "*.py", *args, *table, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "1 file, 1 chunk: 1 embedded" in out
    assert "skipping" not in err
    assert cli.main(["sources", *args, *table]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == [
        "site/index.rst",
        "site/tool.py",
    ]
    assert out.strip().splitlines()[-1].startswith("2 sources, 2 chunks in table")
    assert cli.main(["ingest", "site", "--glob", "*.java", *args, *table]) == 0
    assert capsys.readouterr().err.strip() == "note: no files to ingest (matching --glob)"
