"""examples/llama_index_quickstart.py runs offline (TiDB from TIDB_URL, LocalBedrock)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama_index_quickstart.py"
TABLE = "tidb_bedrock_llama_index"


@pytest.fixture
def example_env(tidb_url: str, tidb_engine: sa.Engine, tmp_path: Path) -> Iterator[dict[str, str]]:
    def drop() -> None:
        with tidb_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS `{TABLE}`"))

    none = str(tmp_path / "none")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDB_", "AWS_", "BEDROCK_"))}
    env.update(TIDB_URL=tidb_url, AWS_CONFIG_FILE=none, AWS_SHARED_CREDENTIALS_FILE=none)
    drop()
    yield env
    drop()


def _run(env: dict[str, str]) -> str:
    proc = subprocess.run(  # noqa: S603 - our own example script
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert "LocalBedrock" in notes[0]
    assert "local TiDB" not in notes[0]
    return proc.stdout


def test_llama_index_quickstart(example_env: dict[str, str]) -> None:
    out = _run(example_env)
    assert (
        "5 nodes in tidb_bedrock_llama_index (amazon.titan-embed-text-v2:0, 512 dimensions)" in out
    )
    hits = re.findall(r"^  (-?\d\.\d{3})  (\S+\.md)$", out, re.MULTILINE)
    assert len(hits) == 3
    assert hits[0][1] == "tidb.md"
    scores = [float(s) for s, _ in hits]
    assert scores == sorted(scores, reverse=True)
    filtered = out.split("Without tidb*.md: ")[1].splitlines()[0].split(", ")
    assert len(filtered) == 2
    assert "tidb.md" not in filtered
    answer = out.split("Answer (us.meta.llama3-2-3b-instruct-v1:0):\n")[1].split("Sources:")[0]
    assert answer.startswith("(LocalBedrock stand-in) TiDB is an open-source distributed SQL")
    for n in re.findall(r"\[(\d+)\]", answer):
        assert 1 <= int(n) <= 3
    assert "Sources:\n  [1] tidb.md\n" in out
    streamed = out.split("Streamed: ")[1]
    assert streamed.startswith("(LocalBedrock stand-in) Amazon Bedrock is a fully managed service")
    # Re-running upserts the same node ids: still five rows.
    assert "5 nodes in tidb_bedrock_llama_index" in _run(example_env)
