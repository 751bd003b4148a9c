"""Local stand-ins for offline work: a real ``tidb-server``, a Bedrock server and S3 (moto)."""

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
    "LocalS3",
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
    if name == "LocalS3":  # moto is an optional extra
        from langchain_tidb_bedrock.local.s3 import LocalS3

        return LocalS3
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
