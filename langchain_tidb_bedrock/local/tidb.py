"""A real local ``tidb-server`` (embedded unistore store) for offline work and tests.

The binary is built from the Go module proxy by ``tidb_build/build.sh`` into a cache outside any
repository, keyed by TiDB version. Unistore gives real VECTOR columns and ``VEC_*`` functions
(exact kNN). Vector indexes need TiFlash: the ``tiflash=True`` variant (``build.sh tiflash``) adds
mock TiFlash stores, so index DDL, TiFlash replicas and ``annIndex`` plans are TiDB's real ones,
while the "ANN" search itself runs as an exact TopN. Full-text search exists in neither.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from langchain_tidb_bedrock.errors import TiDBBedrockError

__all__ = [
    "DEFAULT_TIDB_VERSION",
    "LocalTiDB",
    "LocalTiDBError",
    "build_tidb_server",
    "cache_dir",
    "find_tidb_server",
    "make_test_certificates",
]

# A v8.5-line commit that compiles and starts under Go 1.26 (see tidb_build/build.sh).
DEFAULT_TIDB_VERSION = "v1.1.0-beta.0.20251126154744-e4e814fdc0af"
_BUILD_SCRIPT = Path(__file__).with_name("tidb_build") / "build.sh"

# lease=0 makes DDL instant on a single node; stats-lease=0 stops background auto-analyze.
# No statement text in any file: TiDB logs a failed statement with its SQL (documents and all) at
# WARN ("parse SQL failed", "compile SQL failed") and slow ones in the slow log, so the server
# logs at ERROR (_LOG_LEVEL) and the slow log is off.
_CONFIG = """\
lease = "0"
host = "127.0.0.1"
new_collations_enabled_on_first_bootstrap = true
[status]
status-host = "127.0.0.1"
[performance]
stats-lease = "0"
[log]
slow-query-file = "{slow_log}"
[instance]
tidb_enable_slow_log = false
"""
_LOG_LEVEL = "error"
# Logs of earlier runs (before the level above, they recorded statements): removed at start.
_OLD_LOGS = ("tidb*.log", "tidb*.log.*")


class LocalTiDBError(TiDBBedrockError, RuntimeError):
    """The local tidb-server could not be built, found or started."""


def cache_dir() -> Path:
    """Where built binaries and persistent local data live (outside any repository)."""
    base = os.environ.get("LTB_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "langchain-tidb-bedrock"


def _version() -> str:
    return os.environ.get("TIDB_VER", DEFAULT_TIDB_VERSION)


def find_tidb_server(*, tiflash: bool = False) -> Path | None:
    """Return the tidb-server binary to use, or None when none is built yet.

    ``TIDB_SERVER_BIN`` (``TIDB_SERVER_TIFLASH_BIN`` for the mock-TiFlash variant) wins; then the
    cached build for the pinned version; then ``PATH``.
    """
    name = "tidb-server-tiflash" if tiflash else "tidb-server"
    explicit = os.environ.get("TIDB_SERVER_TIFLASH_BIN" if tiflash else "TIDB_SERVER_BIN")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    cached = cache_dir() / "tidb-server" / _version() / "bin" / name
    if cached.is_file():
        return cached
    on_path = shutil.which(name)
    return Path(on_path) if on_path else None


def build_tidb_server(*, quiet: bool = False, tiflash: bool = False) -> Path:
    """Build (or reuse) tidb-server from the Go module proxy and return its path.

    A cold build takes about 15 minutes on 2 cores; a cached one returns at once. ``tiflash=True``
    builds the mock-TiFlash variant ``tidb-server-tiflash`` next to the stock binary: with the
    stock build's Go cache warm that is a relink of about a minute.
    """
    env = {**os.environ, "TIDB_VER": _version(), "LTB_CACHE_DIR": str(cache_dir())}
    proc = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [
            shutil.which("bash") or "/bin/bash",
            str(_BUILD_SCRIPT),
            "tiflash" if tiflash else "stock",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        msg = f"building tidb-server failed (exit {proc.returncode}); see the output above"
        raise LocalTiDBError(msg)
    return Path(lines[-1])


def _toml_path(path: Path) -> str:
    return str(path).replace("\\", "/")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        msg = "LocalTiDB(tls=True) needs the openssl command to make its test certificate"
        raise LocalTiDBError(msg)
    proc = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [openssl, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        msg = f"openssl {args[0]} failed: {proc.stderr.strip()}"
        raise LocalTiDBError(msg)


def make_test_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """Write a throwaway CA and a server certificate for 127.0.0.1/localhost into ``directory``.

    Returns ``(ca_cert, server_cert, server_key)``. The CA key is deleted once the server
    certificate is signed, so nothing else can ever be signed by that CA. Valid for two days.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=LocalTiDB throwaway test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl("req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    # Python's default context verifies strictly (X509_STRICT): key ids and usages must be there.
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-set_serial", str(secrets.randbits(63)), "-days", "2", "-extfile", str(ext),
        "-out", str(cert),
    )  # fmt: skip
    for leftover in (ca_key, csr, ext):
        leftover.unlink()
    return ca, cert, key


def _load_prctl() -> Any:
    # Resolved in the parent: the forked child must not dlopen (not safe with threads).
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux/glibc: no parent-death signal
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # Linux: the server gets SIGTERM if the Python process dies without cleaning up, so a
    # killed test run never leaves an orphan tidb-server behind.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setsid()


class LocalTiDB:
    """A tidb-server process on loopback with the embedded unistore store.

    ``tiflash=True`` runs the mock-TiFlash variant (vector indexes, TiFlash replicas, ``annIndex``
    plans); ``tls=True`` serves TLS with a certificate made at start, signed by a throwaway CA
    whose certificate is :attr:`ca_path`.

    Setup:
        Build the server once (cached outside the repo, keyed by version):

        ```bash
        python -m langchain_tidb_bedrock.local tidb build
        python -m langchain_tidb_bedrock.local tidb build --tiflash  # the mock-TiFlash variant
        ```

    Instantiate:
        ```python
        from langchain_tidb_bedrock.local import LocalTiDB

        with LocalTiDB() as tidb:  # temp data dir, free ports
            print(tidb.url)  # mysql+pymysql://root@127.0.0.1:PORT/test

        with LocalTiDB(tiflash=True, tls=True) as tidb:
            store = TiDBVectorStore(emb, connection_string=tidb.url, tls=True,
                                    ca_path=str(tidb.ca_path))
        ```

    Args:
        port: SQL port; a free one when None.
        status_port: HTTP status port; a free one when None.
        data_dir: keep data here across runs; None uses a temp dir removed on stop.
        binary: the tidb-server executable; found with :func:`find_tidb_server` when None.
        startup_timeout: seconds to wait for the server to answer.
        detach: leave the server running after this process exits (for ``tidb start``).
        tiflash: run the mock-TiFlash variant (``tidb-server-tiflash``).
        tls: serve TLS with a certificate for 127.0.0.1/localhost made at start.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        status_port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 180.0,
        detach: bool = False,
        tiflash: bool = False,
        tls: bool = False,
    ) -> None:
        self.port = port or _free_port()
        self.status_port = status_port or _free_port()
        while self.status_port == self.port:
            self.status_port = _free_port()
        self._persistent = data_dir is not None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.binary = Path(binary) if binary is not None else None
        self.startup_timeout = startup_timeout
        self.detach = detach
        self.tiflash = tiflash
        self.tls = tls
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the server (user root, no password, database ``test``)."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/test"

    @property
    def ca_path(self) -> Path | None:
        """The throwaway CA certificate that signed the server's certificate (``tls=True``)."""
        return self._workdir() / "tls" / "ca.pem" if self.tls else None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_file(self) -> Path:
        """The server's log file."""
        return self._workdir() / "tidb.log"

    def _workdir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="local-tidb-")
        return Path(self._tmp.name)

    def start(self) -> LocalTiDB:
        """Start the server and wait until it answers SQL; returns self."""
        if self._proc is not None:
            return self
        binary = self.binary or find_tidb_server(tiflash=self.tiflash)
        if binary is None or not Path(binary).is_file():
            flag, env = (
                (" --tiflash", "TIDB_SERVER_TIFLASH_BIN")
                if self.tiflash
                else ("", "TIDB_SERVER_BIN")
            )
            msg = (
                "tidb-server is not built yet. Build it once (about 15 min, needs Go and a C "
                f"compiler) with `python -m langchain_tidb_bedrock.local tidb build{flag}` "
                "or `make tidb`, "
                f"or set {env} to an existing binary, or TIDB_URL to a running TiDB."
            )
            raise LocalTiDBError(msg)
        work = self._workdir()
        work.mkdir(parents=True, exist_ok=True)
        config = work / "tidb.toml"
        # The slow log defaults to the current directory: keep it in the work dir instead.
        text = _CONFIG.format(slow_log=_toml_path(work / "tidb-slow.log"))
        if self.tls:
            _, cert, key = make_test_certificates(work / "tls")
            text += f'[security]\nssl-cert = "{_toml_path(cert)}"\nssl-key = "{_toml_path(key)}"\n'
        config.write_text(text)
        for pattern in _OLD_LOGS:
            for old in work.glob(pattern):
                with contextlib.suppress(OSError):
                    old.unlink()
        store = work / "store"
        args = [
            str(binary),
            "-store=unistore",
            f"-path={store}",
            "-host=127.0.0.1",
            f"-P={self.port}",
            "-status-host=127.0.0.1",
            f"-status={self.status_port}",
            f"-config={config}",
            f"-L={_LOG_LEVEL}",
            f"-log-file={self.log_file}",
        ]
        # The parent-death signal follows the *thread* that started the child: only the main
        # thread lives as long as the process, so other threads start it without one.
        on_main = threading.current_thread() is threading.main_thread()
        preexec = _die_with_parent if not self.detach and on_main else os.setsid
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=preexec,  # noqa: PLW1509 - prctl and setsid only: no locks taken
        )
        if not self.detach:
            atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        import pymysql

        deadline = time.monotonic() + self.startup_timeout
        status = f"http://127.0.0.1:{self.status_port}/status"
        last_error = "no answer"
        while time.monotonic() < deadline:
            assert self._proc is not None  # noqa: S101 - set by start()
            code = self._proc.poll()
            if code is not None:
                msg = f"tidb-server exited with code {code} during start-up.{self._log_tail()}"
                raise LocalTiDBError(msg)
            try:
                with urllib.request.urlopen(status, timeout=2) as resp:
                    if resp.status == 200:
                        conn = pymysql.connect(
                            host="127.0.0.1", port=self.port, user="root", connect_timeout=5
                        )
                        with conn, conn.cursor() as cur:
                            cur.execute("SELECT 1")
                        return
            except (OSError, urllib.error.URLError, pymysql.MySQLError) as exc:
                last_error = str(exc)
            time.sleep(0.25)
        msg = (
            f"tidb-server did not answer on port {self.port} within {self.startup_timeout:.0f}s "
            f"(last error: {last_error}).{self._log_tail()}"
        )
        raise LocalTiDBError(msg)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\nLast lines of " + str(self.log_file) + ":\n" + "\n".join(tail) if tail else ""

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove a temp data dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> LocalTiDB:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._proc is not None else "stopped"
        extras = "".join(f", {k}=True" for k in ("tiflash", "tls") if getattr(self, k))
        return f"LocalTiDB(port={self.port}, status_port={self.status_port}{extras}, {state})"
