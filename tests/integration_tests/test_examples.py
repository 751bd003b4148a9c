"""Each example runs offline as a script (TiDB from TIDB_URL, an in-process LocalBedrock)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TABLES = (
    "tidb_bedrock_quickstart",
    "tidb_bedrock_lcel",
    "tidb_bedrock_existing_app",
    "tidb_bedrock_existing_app_records",
)


@pytest.fixture(scope="module")
def example_env(
    tidb_url: str, tidb_engine: sa.Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    def drop() -> None:
        with tidb_engine.begin() as conn:
            for table in TABLES:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS `{table}`"))

    none = str(tmp_path_factory.mktemp("aws") / "none")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDB_", "AWS_", "BEDROCK_"))}
    env.update(TIDB_URL=tidb_url, AWS_CONFIG_FILE=none, AWS_SHARED_CREDENTIALS_FILE=none)
    drop()
    yield env
    drop()


def _run(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(  # noqa: S603 - our own example scripts
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # Only the one-line note about the Bedrock stand-in (TiDB comes from TIDB_URL).
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert "LocalBedrock" in notes[0]
    assert "local TiDB" not in notes[0]
    return proc


def test_quickstart(example_env: dict[str, str]) -> None:
    out = _run("quickstart.py", example_env).stdout
    assert (
        "with amazon.titan-embed-text-v2:0 (512 dimensions, normalised): 5 embedded, 0 already"
        in out
    )
    hits = re.findall(r"^  (\d\.\d{3})  (.+)$", out, re.MULTILINE)
    assert len(hits) == 3
    distances = [float(d) for d, _ in hits]
    assert distances == sorted(distances)
    answer = out.split("Answer (us.meta.llama3-2-3b-instruct-v1:0):\n")[1].split("Sources:")[0]
    assert answer.startswith("(LocalBedrock stand-in) TiDB")
    for n in re.findall(r"\[(\d+)\]", answer):
        assert 1 <= int(n) <= 3
    assert re.search(r"Sources:\n  \[1\] quickstart-facts \(chunk \d\)", out)
    # Re-running stores nothing new.
    again = _run("quickstart.py", example_env).stdout
    assert "0 embedded, 5 already there" in again


def test_lcel_composition(example_env: dict[str, str]) -> None:
    out = _run("lcel_composition.py", example_env).stdout
    assert "Q: Which index speeds up vector queries in TiDB?" in out
    assert "HNSW vector index" in out
    assert "cited: vector.md" in out
    assert "cited: bedrock.md" in out
    streamed = out.split("Streaming the plain answer chain:\n")[1]
    assert "TiFlash stores columns for analytics. [1]" in streamed


def test_existing_app(example_env: dict[str, str], tidb_engine: sa.Engine) -> None:
    out = _run("existing_app.py", example_env).stdout
    lines = [line for line in out.splitlines() if line.startswith("edition")]
    assert lines[0].startswith("edition 1: added 4, updated 0, skipped 0, deleted 0 (4 embedding")
    assert lines[1].startswith("edition 1: added 0, updated 0, skipped 4, deleted 0 (0 embedding")
    assert lines[2].startswith("edition 2: added 1, updated 0, skipped 3, deleted 1 (1 embedding")
    assert all(line.endswith("4 documents in tidb_bedrock_existing_app") for line in lines)
    assert "within 5 minutes, day and night. [1]" in out
    # The records outlive the process: one per stored document, in TiDB.
    with tidb_engine.connect() as conn:
        records = conn.execute(sa.text("SELECT COUNT(*) FROM tidb_bedrock_existing_app_records"))
        assert records.scalar_one() == 4
