"""The library offline by default: local stand-ins for services nobody configured.

With no ``TIDB_*`` variables, :meth:`TiDBEngine.from_env` (and so every store and component
built without a URL) uses the local tidb-server that the CLI uses too, shared by the processes
running at once and stopped by the last one. With no AWS region and credentials (and no
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``), the Bedrock clients use one in-process ``LocalBedrock``.
Each stand-in is started on first use and announced in one line on stderr, never silently.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["DATA_DIR_ENV", "announce", "local_bedrock_endpoint", "local_data_dir", "local_tidb_url"]

DATA_DIR_ENV = "LTB_DATA_DIR"
"""Environment variable overriding the local TiDB's persistent data directory."""

_lock = threading.Lock()
_tidb_url: str | None = None
_bedrock: Any = None


def local_data_dir() -> Path:
    """Persistent data directory of the local TiDB (``LTB_DATA_DIR`` overrides it)."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit)
    from langchain_tidb_bedrock.local.tidb import cache_dir

    return cache_dir() / "cli-data"


def announce(line: str) -> None:
    """Write one note line to stderr."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def local_tidb_url() -> str:
    """The URL of the shared local tidb-server, joined (or started) once per process.

    Raises:
        RuntimeConfigError: the server cannot start (the message says why and how to build it).
    """
    global _tidb_url  # noqa: PLW0603 - one lease per process
    with _lock:
        if _tidb_url is None:
            from langchain_tidb_bedrock.local.shared_server import acquire_local_tidb

            lease = acquire_local_tidb(local_data_dir().resolve())
            atexit.register(lease.release)
            _tidb_url = lease.url
            announce(
                "note: no TiDB configured (TIDB_URL or TIDB_HOST): using a local tidb-server; "
                "data kept between runs"
            )
        return _tidb_url


def local_bedrock_endpoint() -> str:
    """The endpoint of this process's LocalBedrock, started on first use."""
    global _bedrock  # noqa: PLW0603 - one stand-in per process
    with _lock:
        if _bedrock is None:
            from langchain_tidb_bedrock.local.bedrock import LocalBedrock

            _bedrock = LocalBedrock().start()
            atexit.register(_bedrock.stop)
            announce(
                "note: no AWS region and credentials: using LocalBedrock, a stand-in that "
                "quotes the retrieved passages (not a model)"
            )
        return str(_bedrock.endpoint_url)
