"""One LocalBedrock shared by the CLI commands running at once (as the local tidb-server is),
what a command that joins it imports, and the wrong-embedding-model error, all through real
``tidb-bedrock`` processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.env import offline_env

from langchain_tidb_bedrock.cli import main as cli
from langchain_tidb_bedrock.local.bedrock import LocalBedrock
from langchain_tidb_bedrock.local.shared_bedrock import REGISTRY_NAME, acquire_local_bedrock

# Runs the CLI like the console script, then lists the modules it imported (on stderr).
_RUN = (
    "import json, sys\n"
    "from langchain_tidb_bedrock.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stderr.write('MODULES ' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    "sys.exit(code)\n"
)
_HEAD = [sys.executable, "-c", _RUN, "ask", "What is TiDB?", "-v"]
_ONE_LINE = "note: using LocalBedrock (a stand-in, not a model)"
_SHARED = re.compile(r"note: LocalBedrock at (http://127\.0\.0\.1:\d+), pid (\d+), (.*?);")
# Never needed by `ask` once the stand-in runs elsewhere.
_NOT_FOR_ASK = (
    "langchain_tidb_bedrock.local.bedrock",
    "langchain_tidb_bedrock.ingest.pipeline",
    "langchain_tidb_bedrock.chat_message_histories.base",
    "langchain_text_splitters",
    "llama_index.core",
    "langgraph",
)


def _ask(
    env: dict[str, str], cwd: Path, tidb_url: str, table: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, our module
        [*_HEAD, "--tidb-url", tidb_url, "--table", table, *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _stand_in(proc: subprocess.CompletedProcess[str]) -> tuple[str, int, str]:
    """``(endpoint, pid, how)`` from the command's -v note about LocalBedrock."""
    assert proc.returncode == 0, proc.stderr
    assert "(LocalBedrock stand-in)" in proc.stdout
    found = _SHARED.search(proc.stderr)
    assert found is not None, proc.stderr
    return found.group(1), int(found.group(2)), found.group(3)


def _modules(proc: subprocess.CompletedProcess[str]) -> set[str]:
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("MODULES ")]
    return set(json.loads(line[len("MODULES ") :]))


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return offline_env(tmp_path / "cli-data", tmp_path)


def test_commands_in_a_row_use_the_running_stand_in(
    env: dict[str, str], tmp_path: Path, tidb_url: str, table_name: str
) -> None:
    data_dir = tmp_path / "cli-data"
    holder = acquire_local_bedrock(data_dir)  # another command, still running
    assert holder.started
    try:
        first = _ask(env, tmp_path, tidb_url, table_name)
        second = _ask(env, tmp_path, tidb_url, table_name)
        for proc in (first, second):
            shared = (holder.endpoint_url, holder.pid, "shared with 1 other command(s)")
            assert _stand_in(proc) == shared
            assert proc.stderr.splitlines()[0] == _ONE_LINE
            loaded = _modules(proc)
            assert not [m for m in _NOT_FOR_ASK if m in loaded], sorted(loaded)
        assert _running(holder.pid)
        record = json.loads((data_dir / REGISTRY_NAME).read_text())
        assert record["users"] == [holder._me]  # both commands left
    finally:
        assert holder.release()  # the last one out stops it
    assert not _running(holder.pid)
    assert not (data_dir / REGISTRY_NAME).exists()


def test_alone_each_command_starts_and_stops_its_own(
    env: dict[str, str], tmp_path: Path, tidb_url: str, table_name: str
) -> None:
    data_dir = tmp_path / "cli-data"
    pids = []
    for _ in range(2):
        _, pid, how = _stand_in(_ask(env, tmp_path, tidb_url, table_name))
        assert how == "started for this command"
        assert not _running(pid)
        assert not (data_dir / REGISTRY_NAME).exists()
        pids.append(pid)
    assert pids[0] != pids[1]


def test_a_dead_or_bogus_stand_in_is_replaced(
    env: dict[str, str], tmp_path: Path, tidb_url: str, table_name: str
) -> None:
    data_dir = tmp_path / "cli-data"
    holder = acquire_local_bedrock(data_dir)
    os.kill(holder.pid, signal.SIGKILL)  # its record still names it
    deadline = time.monotonic() + 10
    while _running(holder.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _, pid, how = _stand_in(_ask(env, tmp_path, tidb_url, table_name))
    assert (pid, how) != (holder.pid, "shared with 1 other command(s)")
    assert how == "started for this command"
    assert not (data_dir / REGISTRY_NAME).exists()
    # A record whose process is alive but does not answer (a hung server): stopped, replaced.
    hung = subprocess.Popen(["sleep", "120"])  # noqa: S607 - coreutils
    try:
        start = Path(f"/proc/{hung.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        record = {"server": f"{hung.pid}:{start}", "url": "http://127.0.0.1:1", "users": []}
        (data_dir / REGISTRY_NAME).write_text(json.dumps(record))
        _, pid, how = _stand_in(_ask(env, tmp_path, tidb_url, table_name))
        assert hung.wait(timeout=30) == -signal.SIGTERM
    finally:
        hung.kill()
        hung.wait()
    assert how == "started for this command"
    assert pid != hung.pid


def test_unshareable_stand_in_falls_back_to_one_in_process(
    tidb_url: str,
    table_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in offline_env(tmp_path / "cli-data", tmp_path).items():
        monkeypatch.setenv(name, value)
    for name in [k for k in os.environ if k.startswith(("AWS_", "BEDROCK_"))]:
        if name not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            monkeypatch.delenv(name)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("LTB_DATA_DIR", str(blocker))  # the registry cannot be written
    argv = ["ask", "What is TiDB?", "-v", "--tidb-url", tidb_url, "--table", table_name]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "(LocalBedrock stand-in)" in out
    assert "in this process (not shared: " in err


# ---------------------------------------------------------------- the embedding model id


def test_wrong_embedding_model_is_one_error_line(
    env: dict[str, str], tmp_path: Path, tidb_url: str, table_name: str, bedrock: LocalBedrock
) -> None:
    base = ["--tidb-url", tidb_url, "--table", table_name]
    base += ["--bedrock-endpoint-url", bedrock.endpoint_url]
    profile = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/nope"
    assert cli.main(["demo", *base]) == 0  # a table with rows: the question gets embedded
    cases = [
        (["--embedding-model-id", "amazon.titan-embed-text-v1"], {}),
        ([], {"BEDROCK_EMBEDDING_MODEL_ID": "amazon.titan-embed-txt-v2:0"}),
        (["--embedding-model-id", profile], {}),  # judged by Bedrock: ValidationException
    ]
    for extra, more_env in cases:
        bedrock.reset()
        proc = subprocess.run(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", "langchain_tidb_bedrock", "ask", "What is TiDB?", *base, *extra],
            cwd=tmp_path,
            env={**env, **more_env},
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert (
            "only Titan Text Embeddings V2 (amazon.titan-embed-text-v2:0) is supported"
            in (lines[0])
        )
        assert lines[0].startswith("error: ")
        sent = [r for r in bedrock.requests if r.op == "InvokeModel"]
        if extra[1:] == [profile]:
            assert "ValidationException: The provided model identifier is invalid." in lines[0]
            assert [r.model_id for r in sent] == [profile]
        else:
            assert sent == []  # refused before anything was sent
