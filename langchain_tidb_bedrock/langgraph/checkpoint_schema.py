"""The four tables of ``TiDBSaver``: DDL TiDB accepts as-is, and Core tables for the DML.

- ``checkpoints``: one row per checkpoint; small channel values inline in the serialized
  checkpoint, metadata as JSON (``list(filter=...)`` is ``JSON_CONTAINS``), ``run_id`` copied
  into an indexed column for ``delete_for_runs``.
- ``checkpoint_blobs``: a channel value per (thread, namespace, channel, version), written once
  and shared by every checkpoint that still holds that version; split into chunks so a value may
  exceed TiDB's per-row limit (``txn-entry-size-limit``, 6 MiB by default).
- ``checkpoint_channels``: which blob version each checkpoint holds, so a read joins to the
  blobs by primary key (TiDB has no ``JSON_TABLE`` to expand a checkpoint's version map).
- ``checkpoint_writes``: pending writes, chunked like the blobs.

Keys are ``utf8mb4_0900_bin`` (exact, no pad: ``"a"`` and ``"a "`` are two threads) and sized so
every primary key fits TiDB's 3,072-byte index limit. Tables are only ever created (``IF NOT
EXISTS``): no primary key is dropped or rebuilt, which TiDB refuses on clustered tables.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from langchain_tidb_bedrock.db.identifiers import quote_identifier, validate_identifier

__all__ = [
    "CHANNEL_CHARS",
    "CHECKPOINT_ID_CHARS",
    "CHUNK_BYTES",
    "NS_CHARS",
    "RUN_ID_CHARS",
    "TASK_ID_CHARS",
    "THREAD_CHARS",
    "VERSION_CHARS",
    "CheckpointTables",
]

THREAD_CHARS = 255
NS_CHARS = 255
CHECKPOINT_ID_CHARS = 64
CHANNEL_CHARS = 128
VERSION_CHARS = 64
TASK_ID_CHARS = 128
RUN_ID_CHARS = 255
CHUNK_BYTES = 1 << 20  # well under the 6 MiB entry limit; a value spans as many rows as needed

_KEY = "CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin"
_TABLE_OPTIONS = "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_bin"
_CLUSTERED = "/*T![clustered_index] CLUSTERED */"


class CheckpointTables:
    """The saver's table names (``<prefix>checkpoints`` ...), their DDL and Core tables."""

    def __init__(self, prefix: str = "langgraph_") -> None:
        self.prefix = prefix
        names = {
            key: validate_identifier(f"{prefix}{key}", "table_prefix")
            for key in (
                "checkpoints",
                "checkpoint_blobs",
                "checkpoint_channels",
                "checkpoint_writes",
            )
        }
        self.names = names
        self._statements: dict[Hashable, Any] = {}
        md = sa.MetaData()

        def key(name: str, chars: int) -> sa.Column[str]:
            return sa.Column(name, sa.String(chars), primary_key=True)

        def number(name: str) -> sa.Column[int]:
            return sa.Column(name, sa.Integer, primary_key=True, autoincrement=False)

        self.checkpoints = sa.Table(
            names["checkpoints"],
            md,
            key("thread_id", THREAD_CHARS),
            key("checkpoint_ns", NS_CHARS),
            key("checkpoint_id", CHECKPOINT_ID_CHARS),
            sa.Column("parent_checkpoint_id", sa.String(CHECKPOINT_ID_CHARS)),
            sa.Column("run_id", sa.String(RUN_ID_CHARS)),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("checkpoint", mysql.LONGBLOB, nullable=False),
            sa.Column("metadata", sa.Text, nullable=False),  # JSON, sent and read as text
        )
        self.blobs = sa.Table(
            names["checkpoint_blobs"],
            md,
            key("thread_id", THREAD_CHARS),
            key("checkpoint_ns", NS_CHARS),
            key("channel", CHANNEL_CHARS),
            key("version", VERSION_CHARS),
            number("chunk"),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("blob", mysql.LONGBLOB, nullable=False),
        )
        self.channels = sa.Table(
            names["checkpoint_channels"],
            md,
            key("thread_id", THREAD_CHARS),
            key("checkpoint_ns", NS_CHARS),
            key("checkpoint_id", CHECKPOINT_ID_CHARS),
            key("channel", CHANNEL_CHARS),
            sa.Column("version", sa.String(VERSION_CHARS), nullable=False),
            sa.Column("snapshot", sa.Boolean, nullable=False),
        )
        self.writes = sa.Table(
            names["checkpoint_writes"],
            md,
            key("thread_id", THREAD_CHARS),
            key("checkpoint_ns", NS_CHARS),
            key("checkpoint_id", CHECKPOINT_ID_CHARS),
            key("task_id", TASK_ID_CHARS),
            number("idx"),
            number("chunk"),
            sa.Column("task_path", sa.Text, nullable=False),
            sa.Column("channel", sa.String(CHANNEL_CHARS), nullable=False),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("blob", mysql.LONGBLOB, nullable=False),
        )

    def cached(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """A statement built once (Core construction costs more than a local read)."""
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = build()
        return stmt

    def all(self) -> tuple[sa.Table, ...]:
        """Every table, checkpoints first."""
        return (self.checkpoints, self.blobs, self.channels, self.writes)

    def ddl(self) -> list[str]:
        """``CREATE TABLE IF NOT EXISTS`` for each table (safe to run any number of times)."""
        q = {k: quote_identifier(v) for k, v in self.names.items()}
        thread = f"`thread_id` VARCHAR({THREAD_CHARS}) {_KEY} NOT NULL"
        ns = f"`checkpoint_ns` VARCHAR({NS_CHARS}) {_KEY} NOT NULL DEFAULT ''"
        cid = f"`checkpoint_id` VARCHAR({CHECKPOINT_ID_CHARS}) {_KEY} NOT NULL"
        channel = f"`channel` VARCHAR({CHANNEL_CHARS}) {_KEY} NOT NULL"
        version = f"`version` VARCHAR({VERSION_CHARS}) {_KEY} NOT NULL"
        return [
            f"CREATE TABLE IF NOT EXISTS {q['checkpoints']} (\n  {thread},\n  {ns},\n  {cid},\n"
            f"  `parent_checkpoint_id` VARCHAR({CHECKPOINT_ID_CHARS}) {_KEY} NULL,\n"
            f"  `run_id` VARCHAR({RUN_ID_CHARS}) {_KEY} NULL,\n"
            "  `type` VARCHAR(64) NOT NULL,\n"
            "  `checkpoint` LONGBLOB NOT NULL,\n"
            "  `metadata` JSON NOT NULL,\n"
            f"  PRIMARY KEY (`thread_id`, `checkpoint_ns`, `checkpoint_id`) {_CLUSTERED},\n"
            "  KEY `run_id` (`run_id`)\n"
            f") {_TABLE_OPTIONS}",
            f"CREATE TABLE IF NOT EXISTS {q['checkpoint_blobs']} (\n  {thread},\n  {ns},\n"
            f"  {channel},\n  {version},\n"
            "  `chunk` INT NOT NULL,\n"
            "  `type` VARCHAR(64) NOT NULL,\n"
            "  `blob` LONGBLOB NOT NULL,\n"
            "  PRIMARY KEY (`thread_id`, `checkpoint_ns`, `channel`, `version`, `chunk`) "
            f"{_CLUSTERED}\n) {_TABLE_OPTIONS}",
            f"CREATE TABLE IF NOT EXISTS {q['checkpoint_channels']} (\n  {thread},\n  {ns},\n"
            f"  {cid},\n  {channel},\n  {version},\n"
            "  `snapshot` TINYINT(1) NOT NULL DEFAULT 0,\n"
            "  PRIMARY KEY (`thread_id`, `checkpoint_ns`, `checkpoint_id`, `channel`) "
            f"{_CLUSTERED}\n) {_TABLE_OPTIONS}",
            f"CREATE TABLE IF NOT EXISTS {q['checkpoint_writes']} (\n  {thread},\n  {ns},\n"
            f"  {cid},\n"
            f"  `task_id` VARCHAR({TASK_ID_CHARS}) {_KEY} NOT NULL,\n"
            "  `idx` INT NOT NULL,\n"
            "  `chunk` INT NOT NULL,\n"
            "  `task_path` TEXT NOT NULL,\n"
            f"  {channel},\n"
            "  `type` VARCHAR(64) NOT NULL,\n"
            "  `blob` LONGBLOB NOT NULL,\n"
            "  PRIMARY KEY (`thread_id`, `checkpoint_ns`, `checkpoint_id`, `task_id`, `idx`, "
            f"`chunk`) {_CLUSTERED}\n) {_TABLE_OPTIONS}",
        ]
