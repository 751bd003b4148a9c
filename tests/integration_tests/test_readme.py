"""The README's API block runs verbatim on a machine with nothing configured."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from langchain_tidb_bedrock.local.tidb import cache_dir
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
