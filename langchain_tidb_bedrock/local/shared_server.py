"""One local tidb-server per data directory, shared by every CLI command that runs at once.

tidb-server locks its data directory, so a second server on it fails ("exited with code 1"). So
the first command starts the server *detached* (it outlives its starter) and records it in
``server.json`` next to the data; later commands find it there and use it, and each command
adds itself to the record's user list. The last user out stops the server. Every read and write
of the record happens under an ``flock`` on ``server.lock``, which the kernel releases if its
holder dies: a command killed at any point leaves no lock behind, and its dead entry in the user
list is dropped by the next command. A command that arrives while another is starting the
server waits on the lock, then uses the server.

Processes are identified by pid plus their start time, so a recycled pid is not mistaken for
a live user.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from langchain_tidb_bedrock.errors import RuntimeConfigError

__all__ = ["LocalServerLease", "acquire_local_tidb"]

REGISTRY_NAME = "server.json"
LOCK_NAME = "server.lock"
_LOCK_WAIT = 300.0  # a first bootstrap on a slow machine takes minutes
_STOP_WAIT = 20.0


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return raw[raw.rindex(")") + 2 :].split()


def _identity(pid: int) -> str | None:
    """``"pid:start time"`` of a live process, None if it is gone (or a zombie)."""
    fields = _stat_fields(pid)
    if fields is None:
        if Path("/proc/self/stat").exists():
            return None
        try:  # no /proc: fall back to a plain existence check
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return f"{pid}:"
    if fields[0] in ("Z", "X"):
        return None
    return f"{pid}:{fields[19]}"


def _alive(identity: str) -> bool:
    pid = int(identity.split(":", 1)[0])
    return _identity(pid) == identity


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _answers(port: int, timeout: float = 5.0) -> bool:
    import pymysql

    try:
        conn = pymysql.connect(
            host="127.0.0.1", port=port, user="root", connect_timeout=timeout, read_timeout=timeout
        )
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    except pymysql.MySQLError:
        return False
    return True


def _strays(store: Path) -> Iterator[tuple[int, int | None]]:
    """``(pid, port)`` of tidb-servers on ``store`` (e.g. left by a killed command)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    flag = f"-path={store}"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        args = _cmdline(int(entry.name))
        if flag not in args or not any("tidb-server" in a for a in args[:1]):
            continue
        port = next((int(a[3:]) for a in args if a.startswith("-P=") and a[3:].isdigit()), None)
        yield int(entry.name), port


def _terminate(pid: int, identity: str | None) -> None:
    """SIGTERM, wait, then SIGKILL: a process that is not our child cannot be waited for."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_WAIT
    while time.monotonic() < deadline:
        if _identity(pid) is None or (identity is not None and not _alive(identity)):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass
class _Record:
    server: str  # identity of the tidb-server process
    port: int
    status_port: int
    users: list[str]

    @classmethod
    def read(cls, path: Path) -> _Record | None:
        try:
            data: Any = json.loads(path.read_text())
            return cls(
                str(data["server"]),
                int(data["port"]),
                int(data["status_port"]),
                [str(u) for u in data["users"]],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        write_record(path, self.__dict__)


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Replace a registry file whole (a reader never sees half of it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


class _Shared(Protocol):
    """What every registry record has: the server's identity and the commands using it."""

    server: str
    users: list[str]

    def write(self, path: Path) -> None: ...


def join(record: _Shared, registry: Path, me: str) -> int:
    """Add ``me`` to a live server's users (dropping dead ones); how many others use it."""
    users = [u for u in record.users if _alive(u)]
    record.users = [*users, me]
    record.write(registry)
    return len(users)


def leave(
    registry: Path,
    read: Callable[[Path], _Shared | None],
    pid: int,
    me: str,
    stop: Callable[[str], None],
) -> bool:
    """Remove ``me`` from the users of server ``pid``, under the caller's lock.

    The last user out calls ``stop(identity)`` and removes the record. Returns whether it stopped.
    """
    record = read(registry)
    if record is None or not record.server.startswith(f"{pid}:"):
        return False  # someone else already replaced or stopped it
    users = [u for u in record.users if _alive(u)]
    if me in users:
        users.remove(me)
    if users:
        record.users = users
        record.write(registry)
        return False
    stop(record.server)
    registry.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def _locked(data_dir: Path, wait: float, name: str = LOCK_NAME) -> Iterator[IO[str]]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / name).open("a+") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    msg = (
                        f"another command has held the local server's lock ({data_dir / name}) "
                        f"for {wait:.0f} s"
                    )
                    raise RuntimeConfigError(msg) from None
                time.sleep(0.1)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class LocalServerLease:
    """This command's share of the local tidb-server; :meth:`release` it when done.

    Attributes:
        url: SQLAlchemy URL of the server.
        pid: The server's pid.
        started: Whether this command started it (else it was running).
        others: Other commands using it when this one joined.
        data_dir: The persistent data directory.
    """

    url: str
    pid: int
    started: bool
    others: int
    data_dir: Path
    _me: str
    _server: Any = None  # the LocalTiDB this command started (it can reap its own child)

    def release(self) -> bool:
        """Leave; stop the server if no other command uses it. Returns whether it stopped."""

        def stop(identity: str) -> None:
            if self._server is not None:
                self._server.stop()
            else:
                _terminate(self.pid, identity)

        with _locked(self.data_dir, _LOCK_WAIT):
            return leave(self.data_dir / REGISTRY_NAME, _Record.read, self.pid, self._me, stop)


def _me() -> str:
    return _identity(os.getpid()) or f"{os.getpid()}:"


def acquire_local_tidb(data_dir: Path) -> LocalServerLease:
    """Join the local tidb-server running on ``data_dir``, or start it (detached).

    Raises:
        RuntimeConfigError: The server cannot start (the message says why and where its log is)
            or another command holds the lock for too long.
    """
    from langchain_tidb_bedrock.local.tidb import LocalTiDB, LocalTiDBError

    registry = data_dir / REGISTRY_NAME
    me = _me()
    with _locked(data_dir, _LOCK_WAIT):
        record = _Record.read(registry)
        if record is not None:
            pid = int(record.server.split(":", 1)[0])
            if _alive(record.server) and _answers(record.port):
                others = join(record, registry, me)
                url = LocalTiDB(port=record.port, status_port=record.status_port).url
                return LocalServerLease(url, pid, False, others, data_dir, me)
            if _alive(record.server):  # running but not answering: it holds the data lock
                _terminate(pid, record.server)
            registry.unlink(missing_ok=True)
        store = data_dir / "store"
        for pid, port in list(_strays(store)):
            identity = _identity(pid)
            if identity is None:
                continue
            if port is not None and _answers(port):  # a killed command's server: adopt it
                status = next(
                    (
                        int(a[8:])
                        for a in _cmdline(pid)
                        if a.startswith("-status=") and a[8:].isdigit()
                    ),
                    0,
                )
                _Record(identity, port, status, [me]).write(registry)
                url = LocalTiDB(port=port, status_port=status or None).url
                return LocalServerLease(url, pid, False, 0, data_dir, me)
            _terminate(pid, identity)
        server = LocalTiDB(data_dir=data_dir, detach=True)
        try:
            server.start()
        except LocalTiDBError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            msg = f"could not start a local TiDB in {data_dir}: {first} (log: {server.log_file})"
            raise RuntimeConfigError(msg) from exc
        started = server.pid
        identity = _identity(started) if started is not None else None
        if started is None or identity is None:
            msg = (
                f"the local TiDB in {data_dir} exited right after starting (log: {server.log_file})"
            )
            raise RuntimeConfigError(msg)
        _Record(identity, server.port, server.status_port, [me]).write(registry)
        return LocalServerLease(server.url, started, True, 0, data_dir, me, server)
