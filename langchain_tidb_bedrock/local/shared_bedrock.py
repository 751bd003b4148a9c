"""One LocalBedrock shared by the CLI commands running at once, as the local tidb-server is.

The first command starts ``python -m langchain_tidb_bedrock.local bedrock --port 0`` detached
(in a session of its own, so it outlives its starter and a Ctrl-C aimed at the command does not
reach it) and records it in ``bedrock.json`` next to the local TiDB's data; later commands find
it there and use it if it is alive and answers as LocalBedrock, else they start a new one. Each
command adds itself to the record's user list and the last one out stops the server. Locking and
process identities work as for the local TiDB (see :mod:`.shared_server`), under a lock of
their own so that a TiDB bootstrap does not hold Bedrock up.

The point is start-up time: a command that joins imports none of the stand-in's code.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_tidb_bedrock.errors import RuntimeConfigError
from langchain_tidb_bedrock.local.shared_server import (
    _LOCK_WAIT,
    _alive,
    _identity,
    _locked,
    _me,
    _terminate,
    join,
    leave,
    write_record,
)

__all__ = ["LocalBedrockLease", "acquire_local_bedrock"]

REGISTRY_NAME = "bedrock.json"
LOCK_NAME = "bedrock.lock"
READY_NAME = "bedrock.ready"
LOG_NAME = "bedrock.log"
_START_WAIT = 60.0  # a fresh interpreter importing the stand-in, on a busy machine


def _answers(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url`` is a LocalBedrock: ``GET /`` answers its UnknownOperationException."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        kind = response.getheader("x-amzn-ErrorType") or ""
        return response.status == 404 and kind.startswith("UnknownOperationException")
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class _Record:
    server: str  # identity ("pid:start time") of the LocalBedrock process
    url: str
    users: list[str]

    @classmethod
    def read(cls, path: Path) -> _Record | None:
        try:
            data: Any = json.loads(path.read_text())
            return cls(str(data["server"]), str(data["url"]), [str(u) for u in data["users"]])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        write_record(path, self.__dict__)


@dataclass
class LocalBedrockLease:
    """This command's share of the local LocalBedrock; :meth:`release` it when done.

    Attributes:
        endpoint_url: ``http://127.0.0.1:PORT`` of the server.
        pid: The server's pid.
        started: Whether this command started it (else it was running).
        others: Other commands using it when this one joined.
        data_dir: The directory holding the registry.
    """

    endpoint_url: str
    pid: int
    started: bool
    others: int
    data_dir: Path
    _me: str
    _process: subprocess.Popen[bytes] | None = None  # our own child: reaped after stopping

    def release(self) -> bool:
        """Leave; stop the server if no other command uses it. Returns whether it stopped."""

        def stop(identity: str) -> None:
            _terminate(self.pid, identity)
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=5)

        with _locked(self.data_dir, _LOCK_WAIT, LOCK_NAME):
            return leave(self.data_dir / REGISTRY_NAME, _Record.read, self.pid, self._me, stop)


def _start(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a detached LocalBedrock; returns it with its URL once it serves."""
    ready = data_dir / READY_NAME
    ready.unlink(missing_ok=True)
    log_file = data_dir / LOG_NAME
    with log_file.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            [
                sys.executable,
                "-m",
                "langchain_tidb_bedrock.local",
                "bedrock",
                "--port",
                "0",
                "--ready-file",
                str(ready),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + _START_WAIT
    while time.monotonic() < deadline:
        try:
            url = str(json.loads(ready.read_text())["url"])
        except (OSError, ValueError, KeyError, TypeError):
            url = ""
        if url:
            ready.unlink(missing_ok=True)
            return process, url
        if process.poll() is not None:
            msg = f"LocalBedrock exited with code {process.returncode} on start (log: {log_file})"
            raise RuntimeConfigError(msg)
        time.sleep(0.02)
    process.kill()
    process.wait()
    msg = f"LocalBedrock did not start within {_START_WAIT:.0f} s (log: {log_file})"
    raise RuntimeConfigError(msg)


def acquire_local_bedrock(data_dir: Path) -> LocalBedrockLease:
    """Join the LocalBedrock recorded in ``data_dir``, or start one (detached).

    Raises:
        RuntimeConfigError: It cannot start (the message says where its log is), or another
            command holds the lock for too long.
        OSError: ``data_dir`` cannot be written.
    """
    registry = data_dir / REGISTRY_NAME
    me = _me()
    with _locked(data_dir, _LOCK_WAIT, LOCK_NAME):
        record = _Record.read(registry)
        if record is not None:
            pid = int(record.server.split(":", 1)[0])
            if _alive(record.server) and _answers(record.url):
                others = join(record, registry, me)
                return LocalBedrockLease(record.url, pid, False, others, data_dir, me)
            if _alive(record.server):  # ours but not answering: replace it
                _terminate(pid, record.server)
            registry.unlink(missing_ok=True)
        process, url = _start(data_dir)
        identity = _identity(process.pid)
        if identity is None:
            msg = f"LocalBedrock exited right after starting (log: {data_dir / LOG_NAME})"
            raise RuntimeConfigError(msg)
        _Record(identity, url, [me]).write(registry)
        return LocalBedrockLease(url, process.pid, True, 0, data_dir, me, process)
