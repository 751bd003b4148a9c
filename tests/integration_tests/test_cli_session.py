"""``tidb-bedrock chat --session NAME``: the conversation is kept in TiDB across runs."""

from __future__ import annotations

import io
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_tidb_bedrock import TiDBEngine
from langchain_tidb_bedrock.chat_message_histories import TiDBChatMessageHistory
from langchain_tidb_bedrock.cli import main as cli
from langchain_tidb_bedrock.local.bedrock import LocalBedrock


@pytest.fixture
def args(tidb_url: str, bedrock: LocalBedrock, table_name: str) -> list[str]:
    return ["--tidb-url", tidb_url, "--bedrock-endpoint-url", bedrock.endpoint_url]


@pytest.fixture
def session(tidb_url: str) -> Iterator[str]:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    yield name
    with TiDBEngine(tidb_url) as engine:
        TiDBChatMessageHistory(name, engine=engine).clear()


def _chat(args: list[str], typed: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    return cli.main(["chat", *args])


def _prompts(bedrock: LocalBedrock) -> list[str]:
    return [
        r.body["messages"][0]["content"][0]["text"]
        for r in bedrock.requests
        if r.op.startswith("Converse")
    ]


def test_chat_session_is_kept_across_runs(
    tidb_url: str,
    args: list[str],
    table_name: str,
    session: str,
    bedrock: LocalBedrock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    note = tmp_path / "bedrock.md"
    note.write_text("Amazon Bedrock serves Meta Llama 3 through the Converse API.\n")
    assert cli.main(["ingest", str(note), "--table", table_name, *args]) == 0
    args = [*args, "--table", table_name, "--session", session]
    capsys.readouterr()
    bedrock.reset()

    assert _chat(args, "Tell me about Amazon Bedrock\nexit\n", monkeypatch) == 0
    out, _ = capsys.readouterr()
    assert f"Session '{session}' (new)" in out
    assert len(_prompts(bedrock)) == 1  # no history: no rewrite
    bedrock.reset()

    # A new run (new engine, new pools): the follow-up is rewritten with the stored turn.
    assert _chat(args, "Which API serves it?\n", monkeypatch) == 0
    out, _ = capsys.readouterr()
    assert f"Session '{session}' (resumed, 2 earlier messages)" in out
    rewrite, _answer = _prompts(bedrock)
    assert "Human: Tell me about Amazon Bedrock" in rewrite
    assert "Follow-up question: Which API serves it?" in rewrite

    with TiDBEngine(tidb_url) as engine:
        stored = TiDBChatMessageHistory(session, engine=engine).messages
    assert [m.type for m in stored] == ["human", "ai", "human", "ai"]
    assert [m.content for m in stored][::2] == [
        "Tell me about Amazon Bedrock",
        "Which API serves it?",
    ]
    assert "Converse API" in str(stored[3].content)


def test_chat_without_session_keeps_nothing(
    tidb_url: str,
    args: list[str],
    session: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with TiDBEngine(tidb_url) as engine:
        before = TiDBChatMessageHistory(session, engine=engine).list_sessions()
        assert _chat(args, "What is TiDB?\nexit\n", monkeypatch) == 0
        assert "Session" not in capsys.readouterr().out
        assert TiDBChatMessageHistory(session, engine=engine).list_sessions() == before


@pytest.mark.parametrize(
    ("name", "problem"),
    [("   ", "must not be blank"), (" x", "whitespace"), ("x" * 256, "limit is 255")],
)
def test_bad_session_names_end_with_one_error_line(
    args: list[str], name: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["chat", *args, "--session", name]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: argument --session: the session name")
    assert problem in lines[0]
