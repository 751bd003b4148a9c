"""``TiDBSaver``: a LangGraph checkpointer on TiDB, natively sync and async.

This module owns the serializer: it turns checkpoints and writes into rows (and rows back into
``CheckpointTuple``s); ``checkpoint_ops`` runs the SQL through the shared ``TiDBEngine``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from langchain_tidb_bedrock.db.component import TiDBComponent
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.runner import Op, Rows
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.langgraph._keys import check_key
from langchain_tidb_bedrock.langgraph.checkpoint_ops import (
    Head,
    Key,
    op_copy_thread,
    op_delete_for_runs,
    op_delete_thread,
    op_details,
    op_get,
    op_list_page,
    op_prune,
    op_put,
    op_put_writes,
    op_setup,
)
from langchain_tidb_bedrock.langgraph.checkpoint_schema import (
    CHANNEL_CHARS,
    CHECKPOINT_ID_CHARS,
    CHUNK_BYTES,
    NS_CHARS,
    RUN_ID_CHARS,
    TASK_ID_CHARS,
    THREAD_CHARS,
    VERSION_CHARS,
    CheckpointTables,
)

__all__ = ["TiDBSaver"]

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

T = TypeVar("T")
_INLINE_STR = 1024  # longer strings go to the blob table: stored once, not in every checkpoint
_PAGE = 100  # checkpoints per read while listing
_PRUNE_STRATEGIES = ("keep_latest", "delete")
_HEADS = 4096  # (thread, namespace) pairs whose newest checkpoint id is remembered


def _inline(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= _INLINE_STR
    return value is None or isinstance(value, (bool, int, float))


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]


def _chunk_counts(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Chunks per (channel, version), from one (channel, version) per chunk row."""
    counts: dict[tuple[str, str], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def _head(
    checkpoint_id: str,
    blobs: list[tuple[Any, ...]],
    channels: list[tuple[Any, ...]],
    known: Head | None,
) -> Head | None:
    """A stored checkpoint's id and each blob it holds as (channel, version, chunk count).

    None when it holds a blob an earlier put stored that the ``known`` head does not list.
    """
    chunks = _chunk_counts((b[2], b[3]) for b in blobs)
    for channel, version, n in known[1] if known else ():
        chunks.setdefault((channel, version), n)
    held = sorted((c[3], c[4]) for c in channels)
    if any(pair not in chunks for pair in held):
        return None
    return checkpoint_id, tuple((c, v, chunks[(c, v)]) for c, v in held)


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


class TiDBSaver(TiDBComponent, BaseCheckpointSaver[str]):
    """LangGraph checkpointer on TiDB: agent memory that survives the process.

    Setup:
        Install the extra and point it at TiDB (or ``LocalTiDB`` offline):

        ```bash
        pip install -U "langchain-tidb-bedrock[langgraph]"
        export TIDB_HOST=... TIDB_PORT=4000 TIDB_USER=... TIDB_PASSWORD=... TIDB_DB_NAME=test
        ```

    Key init args:
        engine: TiDBEngine | None
            A shared engine (never closed by the saver). With neither this nor
            ``connection_string``, ``TiDBEngine.from_env()``.
        connection_string: str | None
            A TiDB URL; the saver owns (and closes) the engine made from it.
        table_prefix: str
            Names the tables ``<prefix>checkpoints``, ``<prefix>checkpoint_blobs``,
            ``<prefix>checkpoint_channels`` and ``<prefix>checkpoint_writes``.
        serde: SerializerProtocol | None
            LangGraph's serializer (``JsonPlusSerializer`` by default; an
            ``EncryptedSerializer`` works too).

    Instantiate:
        ```python
        from langchain_tidb_bedrock import TiDBEngine
        from langchain_tidb_bedrock.langgraph import TiDBSaver

        engine = TiDBEngine.from_env()
        checkpointer = TiDBSaver(engine=engine)
        checkpointer.setup()  # optional: tables are created on first use
        ```

    Use with an agent:
        ```python
        from langchain.agents import create_agent

        agent = create_agent(model, tools, checkpointer=checkpointer)
        config = {"configurable": {"thread_id": "user-42"}}
        agent.invoke({"messages": [("user", "hi, I'm Ana")]}, config)
        # later, in another process: the conversation continues from TiDB
        agent.invoke({"messages": [("user", "what's my name?")]}, config)
        ```

    Inspect and manage threads:
        ```python
        latest = checkpointer.get_tuple(config)
        history = list(checkpointer.list(config, filter={"source": "loop"}, limit=10))
        checkpointer.copy_thread("user-42", "user-42-fork")
        checkpointer.prune(["user-42"], strategy="keep_latest")
        checkpointer.delete_thread("user-42")
        ```

    Async:
        ```python
        checkpointer = TiDBSaver(engine=engine)
        await agent.ainvoke({"messages": [("user", "hi")]}, config)  # aput, aget_tuple, ...
        async for tup in checkpointer.alist(config, limit=5):
            print(tup.checkpoint["id"])
        ```

    Storage: a channel value is stored once per version and shared by the checkpoints that hold
    it, in 1 MiB chunks, so a value may be as large as one TiDB transaction allows
    (``txn-total-size-limit``, 100 MiB by default), past the 6 MiB per-row limit. A checkpoint
    read (``get_tuple``) is one statement that reads by primary key only (a second one when
    another process saved a newer checkpoint of the thread since this saver last saw it).
    ``thread_id`` and ``checkpoint_ns`` hold up to 255 characters, channel names and task ids
    up to 128.
    """

    def __init__(
        self,
        engine: TiDBEngine | None = None,
        *,
        connection_string: str | None = None,
        table_prefix: str = "langgraph_",
        serde: SerializerProtocol | None = None,
        tls: bool | None = None,
        ca_path: str | None = None,
    ) -> None:
        """Build the saver; no connection is made until first use.

        Args:
            engine: the shared ``TiDBEngine`` to run on.
            connection_string: a TiDB URL (the saver owns the engine made from it).
            table_prefix: prefix of the four table names.
            serde: the serializer for checkpoints and writes.
            tls: force TLS on or off for an engine made from ``connection_string``.
            ca_path: CA bundle for that engine's TLS.
        """
        BaseCheckpointSaver.__init__(self, serde=serde)
        TiDBComponent.__init__(
            self, engine=engine, connection_string=connection_string, tls=tls, ca_path=ca_path
        )
        self.tables = CheckpointTables(table_prefix)
        self._ready = False
        # Newest checkpoint seen per (thread, ns), with its blob keys: a latest read reads it by
        # key and checks in the same statement that it still holds.
        self._heads: dict[tuple[str, str], Head] = {}

    @classmethod
    @contextmanager
    def from_conn_string(cls, conn_string: str, **kwargs: Any) -> Iterator[TiDBSaver]:
        """A saver on its own engine for ``conn_string``, closed on exit."""
        with cls(connection_string=conn_string, **kwargs) as saver:
            yield saver

    @classmethod
    @asynccontextmanager
    async def afrom_conn_string(cls, conn_string: str, **kwargs: Any) -> AsyncIterator[TiDBSaver]:
        """:meth:`from_conn_string` for async code (closes the async pools on exit)."""
        async with cls(connection_string=conn_string, **kwargs) as saver:
            yield saver

    def setup(self) -> None:
        """Create the tables when missing (also done on first use; safe to repeat)."""
        super()._run(op_setup(self.tables))
        self._ready = True

    async def asetup(self) -> None:
        """Async :meth:`setup`."""
        await super()._arun(op_setup(self.tables))
        self._ready = True

    def _run(self, op: Op[T], embeddings: Embeddings | None = None) -> T:
        if not self._ready:
            self.setup()
        return super()._run(op)

    async def _arun(self, op: Op[T], embeddings: Embeddings | None = None) -> T:
        if not self._ready:
            await self.asetup()
        return await super()._arun(op)

    # ------------------------------------------------------------------ encoding

    def _put_rows(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]], RunnableConfig]:
        conf = config["configurable"]
        thread_id = check_key(conf["thread_id"], "thread_id", THREAD_CHARS)
        ns = check_key(conf.get("checkpoint_ns", ""), "checkpoint_ns", NS_CHARS)
        parent = conf.get("checkpoint_id")
        if parent is not None:
            parent = check_key(parent, "parent checkpoint_id", CHECKPOINT_ID_CHARS)
        cid = check_key(checkpoint["id"], "checkpoint id", CHECKPOINT_ID_CHARS)
        stored = checkpoint.copy()
        values = dict(checkpoint["channel_values"])
        stored["channel_values"] = values
        versions = checkpoint["channel_versions"]
        blobs: list[tuple[Any, ...]] = []
        channels: list[tuple[Any, ...]] = []
        for name, value in checkpoint["channel_values"].items():
            snapshot = isinstance(value, _DeltaSnapshot)
            # Without a version a value cannot be shared by key: it stays in the checkpoint.
            if name not in versions or (_inline(value) and not snapshot):
                continue
            channel = check_key(name, "channel name", CHANNEL_CHARS)
            version = check_key(str(versions[name]), f"version of {name!r}", VERSION_CHARS)
            if snapshot:
                values[name] = True  # a marker, as PostgresSaver leaves for a DeltaChannel
            else:
                del values[name]
            channels.append((thread_id, ns, cid, channel, version, snapshot))
            if name in new_versions:
                kind, data = self.serde.dumps_typed(value)
                blobs += [
                    (thread_id, ns, channel, version, i, kind, piece)
                    for i, piece in enumerate(_chunks(data))
                ]
        kind, data = self.serde.dumps_typed(stored)
        meta = get_serializable_checkpoint_metadata(config, metadata)
        run_id = meta.get("run_id")
        short_run = run_id if isinstance(run_id, str) and len(run_id) <= RUN_ID_CHARS else None
        row = (
            thread_id,
            ns,
            cid,
            parent,
            short_run,
            kind,
            data,
            orjson.dumps(meta, default=str).decode(),
        )
        return row, blobs, channels, _config(thread_id, ns, cid)

    def _write_rows(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> list[tuple[Any, ...]]:
        conf = config["configurable"]
        thread_id = check_key(conf["thread_id"], "thread_id", THREAD_CHARS)
        ns = check_key(conf.get("checkpoint_ns", ""), "checkpoint_ns", NS_CHARS)
        cid = check_key(conf["checkpoint_id"], "checkpoint_id", CHECKPOINT_ID_CHARS)
        task = check_key(task_id, "task_id", TASK_ID_CHARS)
        rows: list[tuple[Any, ...]] = []
        for idx, (channel, value) in enumerate(writes):
            name = check_key(channel, "channel name", CHANNEL_CHARS)
            kind, data = self.serde.dumps_typed(value)
            rows += [
                (
                    thread_id,
                    ns,
                    cid,
                    task,
                    WRITES_IDX_MAP.get(channel, idx),
                    i,
                    task_path,
                    name,
                    kind,
                    piece,
                )
                for i, piece in enumerate(_chunks(data))
            ]
        return rows

    def _tuples(self, heads: Rows, details: Rows) -> list[CheckpointTuple]:
        """Checkpoint rows plus their blob and write rows (chunks in any order) as tuples."""
        blobs: dict[Key, dict[str, Any]] = {}
        writes: dict[Key, dict[tuple[str, int], Any]] = {}
        for d in details:
            key = (d.thread_id, d.checkpoint_ns, d.checkpoint_id)
            if d.part == 1:
                entry = blobs.setdefault(key, {}).setdefault(
                    d.channel, [d.version, bool(d.snapshot), d.type, {}]
                )
                entry[3][d.chunk] = d.data
            else:
                entry = writes.setdefault(key, {}).setdefault(
                    (d.task_id, d.idx), [d.task_path, d.channel, d.type, {}]
                )
                entry[3][d.chunk] = d.data
        return [self._tuple(h, blobs.get(k, {}), writes.get(k, {})) for h, k in _keys(heads)]

    def _tuple(
        self, head: Any, blobs: dict[str, Any], writes: dict[tuple[str, int], Any]
    ) -> CheckpointTuple:
        checkpoint: Checkpoint = self.serde.loads_typed((head.type, head.data))
        values = checkpoint.setdefault("channel_values", {})
        versions = checkpoint.get("channel_versions", {})
        for channel, (version, snapshot, kind, chunks) in blobs.items():
            # A row left from an earlier put of this id may name another version: not ours.
            if channel not in versions or str(versions[channel]) != version:
                continue
            if channel in values and not (snapshot and values[channel] is True):
                continue
            values[channel] = self.serde.loads_typed((kind, _joined(chunks)))
        pending = [
            (task_id, channel, self.serde.loads_typed((kind, _joined(chunks))))
            for (task_id, idx), (_path, channel, kind, chunks) in sorted(
                writes.items(), key=lambda w: writes_sort_key(w[1][0], w[0][0], w[0][1])
            )
        ]
        thread_id, ns = head.thread_id, head.checkpoint_ns
        return CheckpointTuple(
            config=_config(thread_id, ns, head.checkpoint_id),
            checkpoint=checkpoint,
            metadata=orjson.loads(head.metadata),
            parent_config=(
                _config(thread_id, ns, head.parent_checkpoint_id)
                if head.parent_checkpoint_id
                else None
            ),
            pending_writes=pending,
        )

    # ------------------------------------------------------------------ the saver API

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config`` (the latest of its thread and namespace if no id)."""
        rows = self._run(self._op_get(config))
        return self._one(config, rows)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async :meth:`get_tuple`."""
        rows = await self._arun(self._op_get(config))
        return self._one(config, rows)

    def _op_get(self, config: RunnableConfig) -> Op[Rows]:
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), str(conf.get("checkpoint_ns", ""))
        checkpoint_id = get_checkpoint_id(config)
        head = self._heads.get((thread_id, ns)) if checkpoint_id is None else None
        return op_get(self.tables, thread_id, ns, checkpoint_id, head=head)

    def _one(self, config: RunnableConfig, rows: Rows) -> CheckpointTuple | None:
        heads = [r for r in rows if r.part == 0]
        if get_checkpoint_id(config) is None:
            conf = config["configurable"]
            key = (str(conf["thread_id"]), str(conf.get("checkpoint_ns", "")))
            if heads:
                chunks = _chunk_counts((r.channel, r.version) for r in rows if r.part == 1)
                keys = tuple(sorted((c, v, n) for (c, v), n in chunks.items()))
                self._keep(key, (heads[0].checkpoint_id, keys))
            else:
                self._heads.pop(key, None)
        if not heads:
            return None
        return self._tuples(heads, [r for r in rows if r.part != 0])[0]

    def _remember(
        self,
        key: tuple[str, str],
        checkpoint_id: str,
        blobs: list[tuple[Any, ...]],
        channels: list[tuple[Any, ...]],
    ) -> None:
        """After a put: the stored checkpoint is the head if it is the newest this saver saw."""
        known = self._heads.get(key)
        if known is not None and known[0] >= checkpoint_id:
            return
        head = _head(checkpoint_id, blobs, channels, known)
        if head is None:
            self._heads.pop(key, None)  # the next latest read finds the head and its keys
        else:
            self._keep(key, head)

    def _keep(self, key: tuple[str, str], head: Head) -> None:
        if len(self._heads) >= _HEADS and key not in self._heads:
            self._heads.clear()
        self._heads[key] = head

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints matching ``config``, ``filter`` and ``before``, newest first.

        ``config`` narrows by thread, namespace and id; ``filter`` by metadata key-values (all
        must match, as JSON containment); ``limit`` caps the count. Pages of 100 are read at a
        time, so a long history is never held in memory at once.
        """
        pages = _Pages(config, filter, before, limit)
        while (op := pages.next_op(self.tables)) is not None:
            heads, details = self._run(op)
            yield from pages.take(self._tuples(heads, details), len(heads))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async :meth:`list`."""
        pages = _Pages(config, filter, before, limit)
        while (op := pages.next_op(self.tables)) is not None:
            heads, details = await self._arun(op)
            for tup in pages.take(self._tuples(heads, details), len(heads)):
                yield tup

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (one transaction); returns the config that names it."""
        row, blobs, channels, next_config = self._put_rows(
            config, checkpoint, metadata, new_versions
        )
        self._run(op_put(self.tables, row, blobs, channels))
        self._remember((row[0], row[1]), row[2], blobs, channels)
        return next_config

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put`."""
        row, blobs, channels, next_config = self._put_rows(
            config, checkpoint, metadata, new_versions
        )
        await self._arun(op_put(self.tables, row, blobs, channels))
        self._remember((row[0], row[1]), row[2], blobs, channels)
        return next_config

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for the checkpoint in ``config``.

        Writing the same (task, index) again keeps the first value, except for the special
        channels (error, interrupt, resume, scheduled), whose newest value replaces it.
        """
        rows = self._write_rows(config, writes, task_id, task_path)
        replace = all(w[0] in WRITES_IDX_MAP for w in writes)
        self._run(op_put_writes(self.tables, rows, replace=replace))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`."""
        rows = self._write_rows(config, writes, task_id, task_path)
        replace = all(w[0] in WRITES_IDX_MAP for w in writes)
        await self._arun(op_put_writes(self.tables, rows, replace=replace))

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of the thread (all namespaces)."""
        self._run(op_delete_thread(self.tables, [str(thread_id)]))

    async def adelete_thread(self, thread_id: str) -> None:
        """Async :meth:`delete_thread`."""
        await self._arun(op_delete_thread(self.tables, [str(thread_id)]))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs, their writes and blobs only they held."""
        self._run(self._op_delete_runs(run_ids))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async :meth:`delete_for_runs`."""
        await self._arun(self._op_delete_runs(run_ids))

    def _op_delete_runs(self, run_ids: Sequence[str]) -> Op[None]:
        if isinstance(run_ids, str):
            msg = "run_ids must be a sequence of run ids, not a str"
            raise TypeError(msg)
        ids = sorted({str(r) for r in run_ids})
        short = [r for r in ids if len(r) <= RUN_ID_CHARS]
        return op_delete_for_runs(self.tables, short, [r for r in ids if len(r) > RUN_ID_CHARS])

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of a thread to another thread id."""
        self._run(self._op_copy(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async :meth:`copy_thread`."""
        await self._arun(self._op_copy(source_thread_id, target_thread_id))

    def _op_copy(self, source: str, target: str) -> Op[None]:
        target = check_key(target, "target_thread_id", THREAD_CHARS)
        if str(source) == target:
            msg = "copy_thread needs two different thread ids"
            raise InvalidInputError(msg)
        return op_copy_thread(self.tables, str(source), target)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: keep each namespace's latest checkpoint, or delete them.

        ``"keep_latest"`` keeps the latest checkpoint of each namespace (with its writes and
        the blobs it holds); ``"delete"`` removes the threads.

        A subgraph call's namespace goes with the root checkpoint it started from. Threads
        that use a DeltaChannel are refused by ``keep_latest`` (NotImplementedError), before
        anything is deleted.
        """
        self._run(self._op_prune(thread_ids, strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async :meth:`prune`."""
        await self._arun(self._op_prune(thread_ids, strategy))

    def _op_prune(self, thread_ids: Sequence[str], strategy: str) -> Op[None]:
        if isinstance(thread_ids, str):
            msg = "thread_ids must be a sequence of thread ids, not a str"
            raise TypeError(msg)
        if strategy not in _PRUNE_STRATEGIES:
            msg = f"Unknown prune strategy: {strategy!r}"
            raise ValueError(msg)
        return op_prune(self.tables, list(dict.fromkeys(str(t) for t in thread_ids)), strategy)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """A version that sorts after ``current``, with a random tail (as ``PostgresSaver``).

        Two forks of one checkpoint so never store different values under the same version.
        """
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"  # noqa: S311 - not a secret


def _joined(chunks: dict[int, bytes]) -> bytes:
    return b"".join(chunks[i] for i in sorted(chunks))


def _keys(heads: Rows) -> list[tuple[Any, Key]]:
    return [(h, (h.thread_id, h.checkpoint_ns, h.checkpoint_id)) for h in heads]


class _Pages:
    """Where a listing stands: its conditions, the last key read, and how many are left."""

    def __init__(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> None:
        conf = (config or {}).get("configurable", {}) if config else {}
        self.thread_id = str(conf["thread_id"]) if conf.get("thread_id") is not None else None
        ns = conf.get("checkpoint_ns")
        self.ns = str(ns) if ns is not None else None
        self.checkpoint_id = get_checkpoint_id(config) if config else None
        self.filter = orjson.dumps(filter, default=str).decode() if filter else None
        self.before = get_checkpoint_id(before) if before is not None else None
        self.remaining = limit
        self.after: Key | None = None
        self.done = False

    def next_op(self, tables: CheckpointTables) -> Op[tuple[Rows, Rows]] | None:
        if self.done:
            return None
        size = _PAGE if self.remaining is None else min(_PAGE, self.remaining)
        if size <= 0:
            return None
        self.size = size
        return self._op(tables, size)

    def _op(self, tables: CheckpointTables, size: int) -> Op[tuple[Rows, Rows]]:
        heads = yield from op_list_page(
            tables,
            thread_id=self.thread_id,
            ns=self.ns,
            checkpoint_id=self.checkpoint_id,
            metadata_filter=self.filter,
            before=self.before,
            after_key=self.after,
            limit=size,
        )
        details = yield from op_details(tables, [k for _, k in _keys(heads)])
        return heads, details

    def take(self, tuples: list[CheckpointTuple], count: int) -> list[CheckpointTuple]:
        if count < self.size:
            self.done = True
        if tuples:
            last = tuples[-1].config["configurable"]
            self.after = (last["thread_id"], last["checkpoint_ns"], last["checkpoint_id"])
        if self.remaining is not None:
            self.remaining -= count
        return tuples
