"""Command line for the local stand-ins.

python -m langchain_tidb_bedrock.local tidb {build,start,stop,status} [--tiflash]
python -m langchain_tidb_bedrock.local bedrock [--port N] [--latency SECONDS] [--ready-file F]
    [--throttle-rate FRACTION] [--retry-after-ms MS]
    [--requests-per-minute N] [--tokens-per-minute N] [--tokens-per-day N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

from langchain_tidb_bedrock.local.tidb import (
    LocalTiDB,
    LocalTiDBError,
    build_tidb_server,
    cache_dir,
)


def _state_file() -> Path:
    return cache_dir() / "local-tidb" / "server.json"


def _read_state() -> dict[str, int] | None:
    try:
        state: dict[str, int] = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None
    return state if "pid" in state and _alive(state["pid"]) else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it when it is our own exited child (no zombie left)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: the usual case, `start` ran in another process
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _tidb(args: argparse.Namespace) -> int:
    if args.action == "build":
        print(build_tidb_server(tiflash=args.tiflash))
        return 0
    if args.action == "start":
        state = _read_state()
        if state:
            url = f"mysql+pymysql://root@127.0.0.1:{state['port']}/test"
            # Never ignore a flag silently: the running server has its own settings.
            differ = [
                flag
                for flag, value, default, running in (
                    ("--port", args.port, 4000, state["port"]),
                    ("--status-port", args.status_port, 10080, state["status_port"]),
                )
                if value not in (default, running)
            ]
            differ += ["--tiflash"] * bool(args.tiflash) + ["--data-dir"] * bool(args.data_dir)
            if differ:
                print(
                    f"error: a local tidb-server is already running at {url}; "
                    f"{', '.join(differ)} cannot change it: stop it first "
                    "(python -m langchain_tidb_bedrock.local tidb stop)",
                    file=sys.stderr,
                )
                return 2
            print(f"already running: {url}")
            return 0
        data = Path(args.data_dir) if args.data_dir else cache_dir() / "local-tidb"
        server = LocalTiDB(
            port=args.port,
            status_port=args.status_port,
            data_dir=data,
            detach=True,
            tiflash=args.tiflash,
        )
        server.start()
        _state_file().parent.mkdir(parents=True, exist_ok=True)
        _state_file().write_text(
            json.dumps({"pid": server.pid, "port": server.port, "status_port": server.status_port})
        )
        print(server.url)
        return 0
    if args.action == "stop":
        state = _read_state()
        if not state:
            print("not running")
            return 0
        os.kill(state["pid"], signal.SIGTERM)
        for _ in range(200):
            if not _alive(state["pid"]):
                break
            time.sleep(0.1)
        _state_file().unlink(missing_ok=True)
        print("stopped")
        return 0
    state = _read_state()
    if not state:
        print("not running")
        return 1
    url = f"http://127.0.0.1:{state['status_port']}/status"
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our http URL
        info = json.loads(resp.read())
    print(
        f"running: mysql+pymysql://root@127.0.0.1:{state['port']}/test  {info.get('version', '')}"
    )
    return 0


def _bedrock(args: argparse.Namespace) -> int:
    from langchain_tidb_bedrock.local.bedrock import LocalBedrock

    server = LocalBedrock(
        host=args.host,
        port=args.port,
        latency=args.latency,
        requests_per_minute=args.requests_per_minute,
        tokens_per_minute=args.tokens_per_minute,
        tokens_per_day=args.tokens_per_day,
    )
    server.throttle_rate = args.throttle_rate
    server.retry_after_ms = args.retry_after_ms
    server.start()  # bound now, so --port 0 can report the port it got
    print(f"LocalBedrock (a local stand-in, not a model) at {server.endpoint_url}", flush=True)
    if args.ready_file:  # how a starter that shares this server learns where it is
        ready = Path(args.ready_file)
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": server.endpoint_url, "pid": os.getpid()}))
        tmp.replace(ready)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    parser = argparse.ArgumentParser(prog="python -m langchain_tidb_bedrock.local")
    sub = parser.add_subparsers(dest="what", required=True)
    tidb = sub.add_parser("tidb", help="build, start, stop or check the local tidb-server")
    tidb.add_argument("action", choices=["build", "start", "stop", "status"])
    tidb.add_argument("--port", type=int, default=4000)
    tidb.add_argument("--status-port", type=int, default=10080)
    tidb.add_argument("--data-dir", default=None)
    tidb.add_argument(
        "--tiflash",
        action="store_true",
        help="the variant with mock TiFlash stores (vector indexes); built next to the stock one",
    )
    bedrock = sub.add_parser("bedrock", help="serve the local bedrock-runtime stand-in")
    bedrock.add_argument("--host", default="127.0.0.1")
    bedrock.add_argument("--port", type=int, default=8000)
    bedrock.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    bedrock.add_argument(
        "--ready-file", default=None, help="once serving, write {url, pid} as JSON to this file"
    )
    bedrock.add_argument(
        "--throttle-rate",
        type=float,
        default=0.0,
        help="fraction of requests answered 429 ThrottlingException, spread evenly (0-1)",
    )
    bedrock.add_argument(
        "--retry-after-ms",
        type=int,
        default=10,
        help="the x-amz-retry-after hint (milliseconds) sent with each 429",
    )
    for flag, kind, what in (
        ("--requests-per-minute", float, "requests per minute per model id (Bedrock's RPM quota)"),
        ("--tokens-per-minute", float, "tokens per minute per model id (TPM quota)"),
        ("--tokens-per-day", int, "tokens per model id per UTC day"),
    ):
        bedrock.add_argument(flag, type=kind, default=None, help=f"{what}; default unlimited")
    args = parser.parse_args(argv)
    try:
        return _tidb(args) if args.what == "tidb" else _bedrock(args)
    except LocalTiDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
