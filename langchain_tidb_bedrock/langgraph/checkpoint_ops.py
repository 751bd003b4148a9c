"""The saver's SQL, as operations (generators) that run unchanged on the sync and async engines.

Rows arrive already serialized (``checkpoint.py`` owns the serializer); these functions only
decide which statements run, in which transaction, and how reads are shaped:

- a checkpoint read is one statement (``UNION ALL`` of the checkpoint row, its blobs joined by
  primary key through ``checkpoint_channels``, and its pending writes), so it sees one snapshot;
  the latest read by a remembered head reads its blobs by their whole primary keys instead of
  the join, and checks in the same statement that the head and its keys still hold;
- every write of one call is one transaction, retried on a deadlock or write conflict.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import insert

from langchain_tidb_bedrock.db.identifiers import quote_identifier
from langchain_tidb_bedrock.db.runner import Op, Rows, WriteStep, read, write
from langchain_tidb_bedrock.langgraph._retry import write_retrying
from langchain_tidb_bedrock.langgraph.checkpoint_schema import CHUNK_BYTES, CheckpointTables

__all__ = [
    "BlobKey",
    "Detail",
    "Head",
    "Key",
    "op_copy_thread",
    "op_delete_for_runs",
    "op_delete_thread",
    "op_details",
    "op_get",
    "op_list_page",
    "op_prune",
    "op_put",
    "op_put_writes",
    "op_setup",
]

Key = tuple[str, str, str]  # (thread_id, checkpoint_ns, checkpoint_id)
BlobKey = tuple[str, str, int]  # (channel, version, chunk count) of a blob a checkpoint holds
Head = tuple[str, tuple[BlobKey, ...]]  # a namespace's newest checkpoint id and its blob keys
_DELTA_KEYS = ("$.counters_since_delta_snapshot", "$.delta_writes_versioned")
_COLUMNS = (
    "part",
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "parent_checkpoint_id",
    "channel",
    "version",
    "snapshot",
    "task_id",
    "task_path",
    "idx",
    "chunk",
    "type",
    "data",
    "metadata",
)

Detail = namedtuple("Detail", _COLUMNS)  # type: ignore[misc]  # a read row, rebuilt in Python


def _many(table: sa.Table, columns: Sequence[str], on_duplicate: str) -> str:
    cols = ", ".join(f"`{c}`" for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    name = quote_identifier(table.name)
    return f"INSERT INTO {name} ({cols}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {on_duplicate}"


def _part(part: int, **columns: Any) -> list[Any]:
    """One branch of the read's UNION ALL: every column present, NULL where the part has none."""
    out: list[Any] = [sa.literal_column(str(part)).label("part")]
    out += [columns[c].label(c) if c in columns else sa.null().label(c) for c in _COLUMNS[1:]]
    return out


def op_setup(t: CheckpointTables) -> Op[None]:
    """Create the tables when missing."""
    yield from write(*(sa.text(ddl) for ddl in t.ddl()))


# ---------------------------------------------------------------------------------- writes


def op_put(
    t: CheckpointTables,
    checkpoint: tuple[Any, ...],
    blobs: list[tuple[Any, ...]],
    channels: list[tuple[Any, ...]],
) -> Op[None]:
    """Store a checkpoint, the blobs of its new channel versions, and which versions it holds.

    A blob already stored under its version is kept (a version names one value); a checkpoint
    stored again under its id gets the new contents, as in ``PostgresSaver``.
    """
    steps: list[WriteStep] = []
    if blobs:
        names: tuple[str, ...] = (
            "thread_id",
            "checkpoint_ns",
            "channel",
            "version",
            "chunk",
            "type",
            "blob",
        )
        steps.append((_many(t.blobs, names, "`type` = `type`"), sorted(blobs)))
    if channels:
        names = ("thread_id", "checkpoint_ns", "checkpoint_id", "channel", "version", "snapshot")
        on_dup = "`version` = VALUES(`version`), `snapshot` = VALUES(`snapshot`)"
        steps.append((_many(t.channels, names, on_dup), sorted(channels)))
    cols: tuple[str, ...] = (
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "parent_checkpoint_id",
        "run_id",
        "type",
        "checkpoint",
        "metadata",
    )
    on_dup = ", ".join(
        f"`{c}` = VALUES(`{c}`)" for c in ("run_id", "type", "checkpoint", "metadata")
    )
    steps.append((_many(t.checkpoints, cols, on_dup), [checkpoint]))
    yield from write_retrying(*steps)


def op_put_writes(t: CheckpointTables, rows: list[tuple[Any, ...]], *, replace: bool) -> Op[None]:
    """Store pending writes: kept as first written, or replaced (special channels) when asked."""
    if not rows:
        return
    cols = (
        "thread_id",
        "checkpoint_ns",
        "checkpoint_id",
        "task_id",
        "idx",
        "chunk",
        "task_path",
        "channel",
        "type",
        "blob",
    )
    steps: list[WriteStep] = []
    if replace:
        # A replaced value may have fewer chunks than the old one: clear the old chunks first.
        w = t.writes
        thread, ns, cid, task = rows[0][:4]
        idxs = sorted({r[4] for r in rows})
        steps.append(
            sa.delete(w).where(
                w.c.thread_id == thread,
                w.c.checkpoint_ns == ns,
                w.c.checkpoint_id == cid,
                w.c.task_id == task,
                w.c.idx.in_(idxs),
            )
        )
        on_dup = ", ".join(
            f"`{c}` = VALUES(`{c}`)" for c in ("task_path", "channel", "type", "blob")
        )
    else:
        on_dup = "`type` = `type`"
    steps.append((_many(t.writes, cols, on_dup), sorted(rows)))
    yield from write_retrying(*steps)


# ---------------------------------------------------------------------------------- reads


def _rows(c: Any) -> sa.Select[Any]:
    """Part 0 of a read: checkpoint rows of ``c`` (a checkpoints alias)."""
    return sa.select(
        *_part(
            0,
            thread_id=c.c.thread_id,
            checkpoint_ns=c.c.checkpoint_ns,
            checkpoint_id=c.c.checkpoint_id,
            parent_checkpoint_id=c.c.parent_checkpoint_id,
            type=c.c.type,
            data=c.c.checkpoint,
            metadata=c.c.metadata,
        )
    )


def _details(t: CheckpointTables, *, key: Any, with_rows: bool) -> sa.CompoundSelect:
    """Blobs and writes (and, with ``with_rows``, the checkpoint rows) of chosen checkpoints.

    ``key(table)`` is the condition naming the checkpoints on that table's own columns, so each
    branch reads by primary-key prefix; blobs are joined by primary key (INL_JOIN), never scanned.
    """
    c, r, b, w = (
        t.checkpoints.alias("c"),
        t.channels.alias("r"),
        t.blobs.alias("b"),
        t.writes.alias("w"),
    )
    parts: list[sa.Select[Any]] = []
    if with_rows:
        parts.append(_rows(c).where(key(c)))
    joined = r.join(
        b,
        sa.and_(
            b.c.thread_id == r.c.thread_id,
            b.c.checkpoint_ns == r.c.checkpoint_ns,
            b.c.channel == r.c.channel,
            b.c.version == r.c.version,
        ),
    )
    parts.append(
        sa.select(
            *_part(
                1,
                thread_id=r.c.thread_id,
                checkpoint_ns=r.c.checkpoint_ns,
                checkpoint_id=r.c.checkpoint_id,
                channel=r.c.channel,
                version=r.c.version,
                snapshot=r.c.snapshot,
                chunk=b.c.chunk,
                type=b.c.type,
                data=b.c.blob,
            )
        )
        .select_from(joined)
        .where(key(r))
        .prefix_with("/*+ INL_JOIN(b) */")
    )
    parts.append(
        sa.select(
            *_part(
                2,
                thread_id=w.c.thread_id,
                checkpoint_ns=w.c.checkpoint_ns,
                checkpoint_id=w.c.checkpoint_id,
                channel=w.c.channel,
                task_id=w.c.task_id,
                task_path=w.c.task_path,
                idx=w.c.idx,
                chunk=w.c.chunk,
                type=w.c.type,
                data=w.c.blob,
            )
        ).where(key(w))
    )
    return sa.union_all(*parts)


def _get_statement(t: CheckpointTables, *, latest: bool) -> sa.CompoundSelect:
    """The get_tuple read, built once per table set (bound: thread_id, ns, checkpoint_id)."""
    cp = t.checkpoints
    thread, ns = sa.bindparam("thread_id", type_=sa.String), sa.bindparam("ns", type_=sa.String)
    target: Any
    if latest:
        # Uncorrelated: TiDB evaluates it once while planning, so every branch reads by key.
        target = (
            sa.select(sa.func.max(cp.c.checkpoint_id))
            .where(cp.c.thread_id == thread, cp.c.checkpoint_ns == ns)
            .scalar_subquery()
        )
    else:
        target = sa.bindparam("checkpoint_id", type_=sa.String)

    def key(table: Any) -> sa.ColumnElement[bool]:
        return sa.and_(
            table.c.thread_id == thread,
            table.c.checkpoint_ns == ns,
            table.c.checkpoint_id == target,
        )

    return _details(t, key=key, with_rows=True)


def _head_statement(t: CheckpointTables) -> sa.CompoundSelect:
    """The latest read by a remembered head (bound: thread_id, ns, checkpoint_id, blob_keys).

    Four branches, each a primary-key read with no join, no aggregate and no subquery, so TiDB
    plans it quickly: up to two checkpoint rows from the head's id on (part 0: the head alone
    when it is still the latest, else at least one newer row shows), the blob chunks by whole
    primary key (a batch point get: part 1, ``snapshot`` left NULL), its writes (part 2), and
    its ``checkpoint_channels`` rows (part 4: the blob keys it holds).
    """
    r, b = t.channels.alias("r"), t.blobs.alias("b")
    thread, ns = sa.bindparam("thread_id", type_=sa.String), sa.bindparam("ns", type_=sa.String)
    cid = sa.bindparam("checkpoint_id", type_=sa.String)

    def key(table: Any) -> sa.ColumnElement[bool]:
        return sa.and_(
            table.c.thread_id == thread, table.c.checkpoint_ns == ns, table.c.checkpoint_id == cid
        )

    _, writes = _details(t, key=key, with_rows=False).selects
    c = t.checkpoints.alias("c")
    # Any two rows of the range tell: only one of them can be the head itself.
    rows = (
        _rows(c)
        .where(c.c.thread_id == thread, c.c.checkpoint_ns == ns, c.c.checkpoint_id >= cid)
        .limit(2)
    )
    chunks = sa.tuple_(b.c.channel, b.c.version, b.c.chunk)
    blobs = sa.select(
        *_part(
            1,
            thread_id=b.c.thread_id,
            checkpoint_ns=b.c.checkpoint_ns,
            checkpoint_id=sa.cast(cid, sa.String),
            channel=b.c.channel,
            version=b.c.version,
            chunk=b.c.chunk,
            type=b.c.type,
            data=b.c.blob,
        )
    ).where(
        b.c.thread_id == thread,
        b.c.checkpoint_ns == ns,
        chunks.in_(sa.bindparam("blob_keys", expanding=True)),
    )
    held = sa.select(
        *_part(4, channel=r.c.channel, version=r.c.version, snapshot=r.c.snapshot)
    ).where(key(r))
    return sa.union_all(rows, blobs, writes, held)


def _by_head(rows: Rows, head: Head) -> list[Any] | None:
    """The rows a plain read would give, or None when the head moved on or holds other blobs."""
    ids = {r.checkpoint_id for r in rows if r.part == 0}
    if ids != {head[0]}:
        return None  # a newer checkpoint (another writer), or the head is gone (deleted)
    held = {(r.channel, r.version): r.snapshot for r in rows if r.part == 4}
    if held.keys() != {(channel, version) for channel, version, _ in head[1]}:
        return None  # the checkpoint was stored again with other channels
    if sum(r.part == 1 for r in rows) != sum(n for _, _, n in head[1]):
        return None  # a chunk is missing: the remembered count is stale
    last = {(channel, version, n - 1) for channel, version, n in head[1]}
    if any(
        (r.channel, r.version, r.chunk) in last and len(r.data) >= CHUNK_BYTES
        for r in rows
        if r.part == 1
    ):
        return None  # a full last chunk: more may follow (a key past it would read a range)
    out: list[Any] = [r for r in rows if r.part in (0, 2)]
    for r in rows:
        if r.part == 1:
            out.append(Detail(**{**r._mapping, "snapshot": held[(r.channel, r.version)]}))
    return out


def op_get(
    t: CheckpointTables,
    thread_id: str,
    ns: str,
    checkpoint_id: str | None,
    *,
    head: Head | None = None,
) -> Op[Rows]:
    """The checkpoint (the latest of the namespace when no id), its blobs and writes: one read.

    For the latest, ``head`` (the newest checkpoint this process saw, with its blob keys) is
    read by key, with rows in the same snapshot telling whether it is still the latest and
    still holds those keys; TiDB then evaluates no subquery while planning (three for the plain
    latest read) and joins nothing. When it moved on (another writer), a second read.
    """
    params: dict[str, Any] = {"thread_id": thread_id, "ns": ns, "checkpoint_id": checkpoint_id}
    if checkpoint_id is None and head is not None:
        stmt = t.cached(("get", "head"), lambda: _head_statement(t))
        keys = [(channel, version, i) for channel, version, n in head[1] for i in range(n)]
        rows = yield from read(stmt, {**params, "checkpoint_id": head[0], "blob_keys": keys})
        found = _by_head(rows, head)
        if found is not None:
            return found
    latest = checkpoint_id is None
    stmt = t.cached(("get", latest), lambda: _get_statement(t, latest=latest))
    return (yield from read(stmt, params))


def op_details(t: CheckpointTables, keys: Sequence[Key]) -> Op[Rows]:
    """Blobs and writes of the listed checkpoints (their rows were read already)."""
    if not keys:
        return []

    def key(table: Any) -> sa.ColumnElement[bool]:
        cols = sa.tuple_(table.c.thread_id, table.c.checkpoint_ns, table.c.checkpoint_id)
        return cols.in_(sa.bindparam("keys", expanding=True))

    stmt = t.cached(("details",), lambda: _details(t, key=key, with_rows=False))
    return (yield from read(stmt, {"keys": list(keys)}))


def op_list_page(
    t: CheckpointTables,
    *,
    thread_id: str | None,
    ns: str | None,
    checkpoint_id: str | None,
    metadata_filter: str | None,
    before: str | None,
    after_key: Key | None,
    limit: int,
) -> Op[Rows]:
    """One page of checkpoint rows, newest first, after the last key of the previous page."""
    c = t.checkpoints
    where: list[sa.ColumnElement[bool]] = []
    if thread_id is not None:
        where.append(c.c.thread_id == thread_id)
    if ns is not None:
        where.append(c.c.checkpoint_ns == ns)
    if checkpoint_id is not None:
        where.append(c.c.checkpoint_id == checkpoint_id)
    if metadata_filter is not None:
        where.append(
            sa.func.JSON_CONTAINS(
                sa.cast(c.c.metadata, sa.JSON),
                sa.cast(sa.literal(metadata_filter, sa.String), sa.JSON),
            )
            == 1
        )
    if before is not None:
        where.append(c.c.checkpoint_id < before)
    if after_key is not None:
        order = sa.tuple_(c.c.checkpoint_id, c.c.thread_id, c.c.checkpoint_ns)
        where.append(order < sa.tuple_(*(sa.literal(v, sa.String) for v in _order(after_key))))
    stmt = (
        sa.select(
            c.c.thread_id,
            c.c.checkpoint_ns,
            c.c.checkpoint_id,
            c.c.parent_checkpoint_id,
            c.c.type,
            c.c.checkpoint.label("data"),
            c.c.metadata,
        )
        .where(*where)
        .order_by(c.c.checkpoint_id.desc(), c.c.thread_id.desc(), c.c.checkpoint_ns.desc())
        .limit(limit)
    )
    return (yield from read(stmt))


def _order(key: Key) -> tuple[str, str, str]:
    thread_id, ns, checkpoint_id = key
    return (checkpoint_id, thread_id, ns)


# ---------------------------------------------------------------------------------- deletes


def _by_threads(t: CheckpointTables, thread_ids: Sequence[str]) -> list[WriteStep]:
    return [sa.delete(table).where(table.c.thread_id.in_(list(thread_ids))) for table in t.all()]


def op_delete_thread(t: CheckpointTables, thread_ids: Sequence[str]) -> Op[None]:
    """Delete every row of these threads, in one transaction."""
    if thread_ids:
        yield from write_retrying(*_by_threads(t, thread_ids))


def _collect_blobs(t: CheckpointTables, candidates: Rows) -> list[WriteStep]:
    """Delete the candidate blobs no remaining checkpoint of their namespace holds."""
    if not candidates:
        return []
    b, r = t.blobs, t.channels.alias("r")
    held: sa.Select[Any] = (
        sa.select(sa.literal_column("1"))
        .select_from(r)
        .where(
            r.c.thread_id == b.c.thread_id,
            r.c.checkpoint_ns == b.c.checkpoint_ns,
            r.c.channel == b.c.channel,
            r.c.version == b.c.version,
        )
    )
    keys = sa.tuple_(b.c.thread_id, b.c.checkpoint_ns, b.c.channel, b.c.version)
    return [sa.delete(b).where(keys.in_([tuple(row) for row in candidates]), ~held.exists())]


def _held_by(t: CheckpointTables, chosen: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """(thread, ns, channel, version) of the blobs the chosen checkpoints hold."""
    r, c = t.channels, t.checkpoints
    return (
        sa.select(r.c.thread_id, r.c.checkpoint_ns, r.c.channel, r.c.version)
        .distinct()
        .select_from(
            r.join(
                c,
                sa.and_(
                    c.c.thread_id == r.c.thread_id,
                    c.c.checkpoint_ns == r.c.checkpoint_ns,
                    c.c.checkpoint_id == r.c.checkpoint_id,
                ),
            )
        )
        .where(chosen)
    )


def op_delete_for_runs(t: CheckpointTables, short_ids: list[str], long_ids: list[str]) -> Op[None]:
    """Delete the checkpoints these runs wrote (with their writes and the blobs only they held)."""
    c = t.checkpoints
    conditions = []
    if short_ids:
        conditions.append(c.c.run_id.in_(short_ids))
    if long_ids:  # longer than the indexed column: found through the JSON (a scan; rare)
        run_id = sa.func.JSON_UNQUOTE(
            sa.func.JSON_EXTRACT(sa.cast(c.c.metadata, sa.JSON), "$.run_id")
        )
        conditions.append(run_id.in_(long_ids))
    if not conditions:
        return
    chosen = sa.or_(*conditions)
    candidates = yield from read(_held_by(t, chosen))
    keys = sa.select(c.c.thread_id, c.c.checkpoint_ns, c.c.checkpoint_id).where(chosen)
    steps: list[WriteStep] = []
    for table in (t.writes, t.channels):
        cols = sa.tuple_(table.c.thread_id, table.c.checkpoint_ns, table.c.checkpoint_id)
        steps.append(sa.delete(table).where(cols.in_(keys)))
    steps.append(sa.delete(c).where(chosen))
    steps += _collect_blobs(t, candidates)
    yield from write_retrying(*steps)


def op_copy_thread(t: CheckpointTables, source: str, target: str) -> Op[None]:
    """Copy every row of ``source`` to ``target`` in one transaction (copies replace rows)."""
    steps: list[WriteStep] = []
    for table in t.all():
        names = [col.name for col in table.columns]
        keys = {col.name for col in table.primary_key.columns}
        values = [
            sa.literal(target, sa.String).label("thread_id") if n == "thread_id" else table.c[n]
            for n in names
        ]
        stmt = insert(table).from_select(
            names, sa.select(*values).where(table.c.thread_id == source)
        )
        updates = {n: stmt.inserted[n] for n in names if n not in keys}
        steps.append(stmt.on_duplicate_key_update(updates))
    yield from write_retrying(*steps)


def op_prune(t: CheckpointTables, thread_ids: Sequence[str], strategy: str) -> Op[None]:
    """``delete``: drop the threads. ``keep_latest``: keep each namespace's latest checkpoint.

    Refuses (before deleting anything) threads that use a DeltaChannel, whose latest value is
    rebuilt from older checkpoints. Each thread is pruned in its own transaction; only rows
    older than the kept checkpoint are deleted, so a run saving newer ones meanwhile is safe.
    """
    if not thread_ids:
        return
    if strategy == "delete":
        yield from op_delete_thread(t, thread_ids)
        return
    c, r = t.checkpoints, t.channels
    delta = sa.union(
        sa.select(c.c.thread_id).where(
            c.c.thread_id.in_(list(thread_ids)),
            sa.func.JSON_CONTAINS_PATH(sa.cast(c.c.metadata, sa.JSON), "one", *_DELTA_KEYS) == 1,
        ),
        sa.select(r.c.thread_id).where(r.c.thread_id.in_(list(thread_ids)), r.c.snapshot.is_(True)),
    )
    refused = sorted(row.thread_id for row in (yield from read(delta)))
    if refused:
        msg = f"keep_latest can't prune threads that use a DeltaChannel: {', '.join(refused)}"
        raise NotImplementedError(msg)
    for thread_id in thread_ids:
        yield from _keep_latest(t, thread_id)


def _keep_latest(t: CheckpointTables, thread_id: str) -> Op[None]:
    c = t.checkpoints
    heads_q = (
        sa.select(c.c.checkpoint_ns, sa.func.max(c.c.checkpoint_id).label("head"))
        .where(c.c.thread_id == thread_id)
        .group_by(c.c.checkpoint_ns)
    )
    heads = {row.checkpoint_ns: row.head for row in (yield from read(heads_q))}
    if not heads:
        return
    calls = yield from _finished_calls(t, thread_id, heads)
    chosen = sa.and_(c.c.thread_id == thread_id, _older(c, heads, calls))
    candidates = yield from read(_held_by(t, chosen))
    steps: list[WriteStep] = []
    for table in (t.writes, t.channels, t.checkpoints):
        steps.append(
            sa.delete(table).where(table.c.thread_id == thread_id, _older(table, heads, calls))
        )
    if calls:
        b = t.blobs
        steps.append(
            sa.delete(b).where(b.c.thread_id == thread_id, b.c.checkpoint_ns.in_(sorted(calls)))
        )
    # A kept checkpoint whose parent is gone is left without one.
    for ns, head in heads.items():
        if ns not in calls:
            steps.append(
                sa.update(c)
                .where(
                    c.c.thread_id == thread_id,
                    c.c.checkpoint_ns == ns,
                    c.c.checkpoint_id == head,
                    c.c.parent_checkpoint_id < head,
                )
                .values(parent_checkpoint_id=None)
            )
    steps += _collect_blobs(t, candidates)
    yield from write_retrying(*steps)


def _older(table: sa.Table, heads: dict[str, str], calls: set[str]) -> sa.ColumnElement[bool]:
    kept = [
        sa.and_(table.c.checkpoint_ns == ns, table.c.checkpoint_id < head)
        for ns, head in heads.items()
        if ns not in calls
    ]
    if calls:
        kept.append(table.c.checkpoint_ns.in_(sorted(calls)))
    return sa.or_(*kept)


def _finished_calls(t: CheckpointTables, thread_id: str, heads: dict[str, str]) -> Op[set[str]]:
    """Subgraph-call namespaces whose root checkpoint is saved and is not the kept root.

    A call's namespace carries its task id after a ":" (a ``checkpointer=True`` subgraph's does
    not, and keeps its latest checkpoint); the call belongs to the root checkpoint it started
    from, so it goes when that checkpoint goes.
    """
    c = t.checkpoints
    nested = {ns: head for ns, head in heads.items() if ":" in ns}
    if not nested:
        return set()
    root_of = sa.func.JSON_UNQUOTE(
        sa.func.JSON_EXTRACT(sa.cast(c.c.metadata, sa.JSON), '$.parents.""')
    )
    rows = yield from read(
        sa.select(c.c.checkpoint_ns, root_of.label("root")).where(
            c.c.thread_id == thread_id,
            sa.tuple_(c.c.checkpoint_ns, c.c.checkpoint_id).in_(list(nested.items())),
        )
    )
    roots = {row.checkpoint_ns: row.root for row in rows if row.root}
    if not roots:
        return set()
    saved_rows = yield from read(
        sa.select(c.c.checkpoint_id).where(
            c.c.thread_id == thread_id,
            c.c.checkpoint_ns == "",
            c.c.checkpoint_id.in_(sorted(set(roots.values()))),
        )
    )
    saved = {row.checkpoint_id for row in saved_rows}
    kept_root = heads.get("")
    return {ns for ns, root in roots.items() if root in saved and root != kept_root}
