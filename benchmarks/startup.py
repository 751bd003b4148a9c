"""Start-up: a whole ``tidb-bedrock ask`` process vs importing its dependencies.

Both are timed from spawn to exit, several runs each, alternating so that load on the machine
falls on both alike; medians and spreads (min-max) are reported. ``ask`` answers one question
from a table of five facts on a TiDB that is already running, with a LocalBedrock already running
too (this benchmark holds it, as another command would), so the figure is the command's own
start-up, connection and answer. The baseline is the brief's definition of the deps' import:
``python -c "import langchain_core.runnables, sqlalchemy, botocore.session"``; target: ask within
1.5x of it. CPU seconds (user + system) are reported beside the wall-clock times: on a shared
machine they move far less.

For context a third figure, the floor: the same imports plus what any LangChain chain needs and
``langchain_core.runnables`` alone does not load (its ``Runnable`` class, which imports
langsmith, and langchain-aws, whose Bedrock classes ours extend).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row

DEPS = "import langchain_core.runnables, sqlalchemy, botocore.session"
FLOOR = f"{DEPS}; from langchain_core.runnables import Runnable; import langchain_aws, pymysql"
TABLE = "tidb_bedrock_demo"
TARGET = 1.5


def _env(data_dir: Path) -> dict[str, str]:
    """This environment without TiDB, AWS or Bedrock settings: the offline stand-ins."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TIDB_", "AWS_", "BEDROCK_", "LANGSMITH_", "LANGCHAIN_"))
    }
    env.update(
        LTB_DATA_DIR=str(data_dir),
        AWS_CONFIG_FILE=str(data_dir / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(data_dir / "none"),
    )
    return env


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("tidb-bedrock")
    return [str(script)] if script.exists() else [sys.executable, "-m", "langchain_tidb_bedrock"]


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        msg = f"{argv[:3]} exited {done.returncode}: {done.stderr.strip()[-500:]}"
        raise RuntimeError(msg)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def startup_row(tidb_url: str, runs: int) -> Row:
    """``ask`` vs the deps' import, ``runs`` processes each (plus one warm-up of each)."""
    from langchain_tidb_bedrock.local.shared_bedrock import acquire_local_bedrock

    with tempfile.TemporaryDirectory(prefix="ltb-startup-") as tmp:
        data_dir = Path(tmp)
        env = _env(data_dir)
        lease = acquire_local_bedrock(data_dir)  # the running stand-in each ask joins
        try:
            server = ["--tidb-url", tidb_url]
            _timed([*_cli(), "demo", *server], env)  # the table of five facts; warms the caches
            ask = [*_cli(), "ask", "What is TiDB?", *server, "--table", TABLE]
            commands = {
                "ask": ask,
                "deps": [sys.executable, "-c", DEPS],
                "floor": [sys.executable, "-c", FLOOR],
            }
            for argv in commands.values():
                _timed(argv, env)  # warm-up: the file cache, not the figure
            times: dict[str, list[float]] = {name: [] for name in commands}
            cpu: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(runs):
                for name, argv in commands.items():
                    wall, used = _timed(argv, env)
                    times[name].append(wall)
                    cpu[name].append(used)
        finally:
            lease.release()
    ours, deps, floor = (statistics.median(times[k]) for k in ("ask", "deps", "floor"))
    ratio = ours / deps
    # CPU time moves far less than wall-clock time on a shared machine: the steadier ratio.
    cpu_ask, cpu_deps, cpu_floor = (statistics.median(cpu[k]) for k in ("ask", "deps", "floor"))
    return Row(
        name=f"CLI start-up: ask, s ({runs} runs)",
        unit="s",
        ours=ours,
        others={"deps import": deps, "floor (deps + Runnable + langchain-aws)": floor},
        higher_is_better=False,
        target=f"ask <= {TARGET}x the deps' import",
        met=ratio <= TARGET,
        notes=(
            f"ask {ratio:.2f}x the deps' import, {ours / floor:.2f}x the floor; "
            f"ask {_spread(times['ask'])}, deps {_spread(times['deps'])}, "
            f"floor {_spread(times['floor'])}; CPU s ask {cpu_ask:.2f}, deps {cpu_deps:.2f} "
            f"({cpu_ask / cpu_deps:.2f}x), floor {cpu_floor:.2f} ({cpu_ask / cpu_floor:.2f}x); "
            "whole processes, alternating"
        ),
    )
