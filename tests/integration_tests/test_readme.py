"""The README's API block runs verbatim on a machine with nothing configured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from langchain_tidb_bedrock.local.bedrock import LocalBedrock
from langchain_tidb_bedrock.local.tidb import cache_dir
from langchain_tidb_bedrock.vectorstores.translator import TiDBTranslator
from tests.helpers.env import offline_env

README = Path(__file__).resolve().parents[2] / "README.md"


def _api_block() -> str:
    text = README.read_text()
    section = text[text.index("## The API") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's API section has no python block"
    return match.group(1)


def test_the_readme_api_block_answers_offline(tmp_path: Path) -> None:
    env = offline_env(tmp_path / "data", tmp_path)
    env["LTB_CACHE_DIR"] = str(cache_dir())  # the built tidb-server, wherever HOME points
    done = subprocess.run(  # noqa: S603 - our own interpreter and the README's code
        [sys.executable, "-c", _api_block()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    # Each stand-in is announced, once, in one line: never silently.
    assert len(notes) == 2, done.stderr
    assert any("local tidb-server" in n for n in notes)
    assert any("LocalBedrock" in n for n in notes)
    assert "Traceback" not in done.stderr
    # The streamed chunks: the context first (with the stored fact), then answer text.
    assert "TiDB is a distributed SQL database." in done.stdout
    assert "'answer'" in done.stdout


def _self_query_block() -> str:
    text = README.read_text()
    section = text[text.index("**Self-query.**") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's self-query part has no python block"
    return match.group(1)


def test_the_readme_self_query_block_filters_by_metadata(
    tidb_url: str,
    bedrock: LocalBedrock,
    table_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The block as written, on the session's TiDB and LocalBedrock; only the chat model is a
    # canned one, since the stand-in cannot write a structured query.
    import langchain_tidb_bedrock

    block = _self_query_block()
    assert 'table_name="releases"' in block
    block = block.replace('table_name="releases"', f"table_name={table_name!r}")
    for name in [k for k in os.environ if k.startswith(("AWS_", "TIDB_", "BEDROCK_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TIDB_URL", tidb_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock.endpoint_url)
    answer = '```json\n{"query": "TiDB add", "filter": "eq(\\"year\\", 2024)"}\n```'
    model = FakeListChatModel(responses=[answer])
    monkeypatch.setattr(langchain_tidb_bedrock, "create_llama3_chat", lambda: model)
    scope: dict[str, Any] = {}
    exec(compile(block, "README.md (self-query)", "exec"), scope)  # noqa: S102 - our README
    docs = scope["docs"]
    assert [(d.id, d.metadata) for d in docs] == [("r1", {"year": 2024})]
    assert isinstance(scope["retriever"].structured_query_translator, TiDBTranslator)
    embedded = [r.body["inputText"] for r in bedrock.requests if r.op == "InvokeModel"]
    assert embedded[-1] == "TiDB add"  # the model's query, not the question, was searched
