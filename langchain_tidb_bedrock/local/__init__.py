"""Local stand-ins for offline work: a real ``tidb-server`` and a bedrock-runtime server."""

from __future__ import annotations

from typing import Any

from langchain_tidb_bedrock.local.tidb import (
    DEFAULT_TIDB_VERSION,
    LocalTiDB,
    LocalTiDBError,
    build_tidb_server,
    cache_dir,
    find_tidb_server,
)

__all__ = [
    "DEFAULT_TIDB_VERSION",
    "LocalBedrock",
    "LocalTiDB",
    "LocalTiDBError",
    "build_tidb_server",
    "cache_dir",
    "find_tidb_server",
]


def __getattr__(name: str) -> Any:
    # LocalBedrock pulls in the HTTP server and fake models only when asked for.
    if name == "LocalBedrock":
        from langchain_tidb_bedrock.local.bedrock import LocalBedrock

        return LocalBedrock
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
