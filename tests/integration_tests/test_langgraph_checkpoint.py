"""TiDBSaver on a real TiDB: the LangGraph conformance suite, then what it does not cover.

Storage (chunked blobs past TiDB's row limit, one blob per version shared by checkpoints,
garbage left by prune and delete_for_runs), reads (one statement per get_tuple), concurrent
writers on one thread id, input limits, and a real graph (memory, interrupt/resume, forks).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
import sqlalchemy as sa
from helpers.statements import sent_by
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata
from langgraph.checkpoint.serde.types import INTERRUPT

from langchain_tidb_bedrock import InvalidInputError, TiDBEngine
from langchain_tidb_bedrock.langgraph import TiDBSaver

SUFFIXES = ("checkpoints", "checkpoint_blobs", "checkpoint_channels", "checkpoint_writes")


@pytest.fixture
def prefix(tidb_engine: sa.Engine) -> Iterator[str]:
    """A fresh table prefix; the saver's tables are dropped after the test."""
    name = f"lg_{uuid.uuid4().hex[:10]}_"
    yield name
    with tidb_engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS " + ", ".join(f"`{name}{s}`" for s in SUFFIXES))


@pytest.fixture
def engine(tidb_url: str) -> Iterator[TiDBEngine]:
    with TiDBEngine(tidb_url) as shared:
        yield shared


@pytest.fixture
def saver(engine: TiDBEngine, prefix: str) -> TiDBSaver:
    return TiDBSaver(engine=engine, table_prefix=prefix)


def _count(tidb_engine: sa.Engine, table: str, where: str = "1", **params: Any) -> int:
    with tidb_engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(f"SELECT COUNT(*) FROM `{table}` WHERE {where}"), params
            ).scalar_one()
        )


def _config(thread_id: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def _put(
    saver: TiDBSaver,
    thread_id: str,
    values: dict[str, Any],
    versions: dict[str, Any],
    new: dict[str, Any] | None = None,
    parent: dict[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    cp = generate_checkpoint(channel_values=values, channel_versions=versions)
    config = _config(thread_id, parent["configurable"]["checkpoint_id"] if parent else None)
    return saver.put(config, cp, generate_metadata(**meta), versions if new is None else new)


# ---------------------------------------------------------------------------------- conformance


async def test_conformance_suite(engine: TiDBEngine, prefix: str) -> None:
    """langgraph-checkpoint-conformance, unmodified: every base and extended capability."""

    @checkpointer_test(name="TiDBSaver")
    async def factory() -> Any:
        saver = TiDBSaver(engine=engine, table_prefix=prefix)
        await saver.asetup()
        yield saver

    report = await validate(factory)
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert report.passed_all_base(), failures
    for capability in ("delete_for_runs", "copy_thread", "prune"):
        assert report.results[capability].detected, capability
        assert report.results[capability].passed, failures
    assert report.conformance_level() == "FULL"
    assert sum(r.tests_passed for r in report.results.values()) >= 80


# ---------------------------------------------------------------------------------- storage


def test_setup_is_idempotent_and_tables_come_on_first_use(
    saver: TiDBSaver, engine: TiDBEngine, prefix: str, tidb_engine: sa.Engine
) -> None:
    assert saver.get_tuple(_config("nobody")) is None  # creates the tables, finds nothing
    saver.setup()
    TiDBSaver(engine=engine, table_prefix=prefix).setup()
    with tidb_engine.connect() as conn:
        tables = {r[0] for r in conn.exec_driver_sql(f"SHOW TABLES LIKE '{prefix}%%'")}
    assert tables == {f"{prefix}{s}" for s in SUFFIXES}


def test_value_larger_than_a_tidb_row_round_trips_in_chunks(
    saver: TiDBSaver, prefix: str, tidb_engine: sa.Engine, engine: TiDBEngine
) -> None:
    big = bytes(range(256)) * (28 * 1024 - 1)  # 7 MiB less 256 bytes: past the 6 MiB row limit
    stored = _put(saver, "big", {"doc": big, "n": 1}, {"doc": 1, "n": 1})
    saver.put_writes(stored, [("doc", big + b"!")], "task-1")
    blob_rows = _count(tidb_engine, f"{prefix}checkpoint_blobs", "channel = 'doc'")
    assert blob_rows == 7
    assert _count(tidb_engine, f"{prefix}checkpoint_writes") == 7

    tup, sent = sent_by(engine, lambda: saver.get_tuple(_config("big")))
    assert len(sent) == 1, sent  # the 7 chunks by primary key, as the put remembered them
    assert tup is not None
    assert tup.checkpoint["channel_values"]["doc"] == big
    assert tup.checkpoint["channel_values"]["n"] == 1
    assert tup.pending_writes == [("task-1", "doc", big + b"!")]
    # A remembered chunk count that does not match the rows (fewer or more): read again by
    # the join, never a value cut short.
    cid, _keys = saver._heads[("big", "")]
    for wrong in (6, 8):
        saver._heads[("big", "")] = (cid, (("doc", "1", wrong),))
        tup, sent = sent_by(engine, lambda: saver.get_tuple(_config("big")))
        assert len(sent) == 2, sent
        assert tup is not None
        assert tup.checkpoint["channel_values"]["doc"] == big
        assert saver._heads[("big", "")] == (cid, (("doc", "1", 7),))


def test_unchanged_channel_is_stored_once_for_many_checkpoints(
    saver: TiDBSaver, prefix: str, tidb_engine: sa.Engine
) -> None:
    history = [{"role": "user", "content": "x" * 5000}]
    parent = None
    for step in range(5):
        # "history" keeps version 1; only "step" (inline) changes.
        new = {"history": 1, "step": step + 1} if step == 0 else {"step": step + 1}
        parent = _put(
            saver,
            "shared",
            {"history": history, "step": step},
            {"history": 1, "step": step + 1},
            new,
            parent,
            step=step,
        )
    assert _count(tidb_engine, f"{prefix}checkpoint_blobs") == 1
    assert _count(tidb_engine, f"{prefix}checkpoint_channels") == 5
    for tup in saver.list(_config("shared")):
        assert tup.checkpoint["channel_values"] == {
            "history": history,
            "step": tup.metadata["step"],
        }


def test_get_tuple_is_one_statement(saver: TiDBSaver, engine: TiDBEngine) -> None:
    """One round trip per get_tuple (latest, by id, missing; no schema check once set up) and
    three statements per put however many channels it stores (one multi-row INSERT each)."""
    first = _put(saver, "one", {"a": [0], "b": {"x": 0}}, {"a": 1, "b": 1})
    values = {"a": [1, 2], "b": {"x": "y"}, "c": ["z"] * 3, "d": "big" * 500}
    versions = dict.fromkeys(values, 2)
    stored, sent = sent_by(engine, lambda: _put(saver, "one", values, versions, parent=first))
    assert len(sent) == 3, sent
    saver.put_writes(stored, [("a", [3])], "t")
    latest, sent = sent_by(engine, lambda: saver.get_tuple(_config("one")))
    assert len(sent) == 1, sent
    # By the id and blob keys it saved, checked in the same statement (any newer checkpoint
    # row, the keys it holds): no join, no aggregate, no subquery.
    assert ">=" in sent[0]
    assert sent[0].lower().count("select ") == 4, sent[0]  # four branches, no subquery
    for slow in (" join ", "max(", "min("):
        assert slow not in sent[0].lower(), sent[0]
    exact, sent = sent_by(engine, lambda: saver.get_tuple(stored))
    assert len(sent) == 1, sent
    missing, sent = sent_by(engine, lambda: saver.get_tuple(_config("none")))
    assert len(sent) == 1, sent
    assert latest is not None
    assert exact is not None
    assert missing is None
    assert latest.checkpoint["channel_values"] == values
    assert exact.pending_writes == [("t", "a", [3])]


def test_latest_read_by_a_remembered_id_sees_other_writers(
    saver: TiDBSaver, engine: TiDBEngine, prefix: str
) -> None:
    """A saver reads the latest by the newest id it saw; another process's newer checkpoint or a
    deleted thread is caught by the guard row in the same statement, and read again."""
    other = TiDBSaver(engine=engine, table_prefix=prefix)
    first = _put(saver, "shared-head", {"a": [1]}, {"a": 1})
    assert saver.get_tuple(_config("shared-head")) is not None
    newer = _put(other, "shared-head", {"a": [2]}, {"a": 2}, parent=first)
    latest, sent = sent_by(engine, lambda: saver.get_tuple(_config("shared-head")))
    assert latest is not None
    assert latest.config == newer
    assert latest.checkpoint["channel_values"] == {"a": [2]}
    assert len(sent) == 2, sent  # the guess missed: read again by the subquery
    again, sent = sent_by(engine, lambda: saver.get_tuple(_config("shared-head")))
    assert again is not None
    assert again.config == newer
    assert len(sent) == 1, sent
    sub = generate_checkpoint(channel_values={"a": [0]}, channel_versions={"a": 3})
    saver.put(_config("shared-head", ns="sub"), sub, generate_metadata(), {"a": 3})
    assert saver.get_tuple(_config("shared-head", ns="sub")) is not None
    assert saver.get_tuple(_config("shared-head")).config == newer  # type: ignore[union-attr]
    other.delete_thread("shared-head")
    assert saver.get_tuple(_config("shared-head")) is None
    assert saver.get_tuple(_config("shared-head", ns="sub")) is None


def _plan(engine: TiDBEngine, op: Any) -> str:
    """EXPLAIN of the statement ``op`` sends."""
    captured: list[Any] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        captured.append((statement, params))

    sa.event.listen(engine.sync_read, "before_cursor_execute", record)
    try:
        engine.run(op)
    finally:
        sa.event.remove(engine.sync_read, "before_cursor_execute", record)
    statement, params = captured[-1]
    with engine.sync_read.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN " + statement, params)
        return "\n".join(" ".join(map(str, row)) for row in rows)


def test_get_tuple_reads_blobs_by_key_not_by_scan(saver: TiDBSaver, engine: TiDBEngine) -> None:
    """EXPLAIN of the reads: no full scan of any table and no range over a whole thread's
    blobs; the read by a remembered head joins nothing and ranges blobs by their keys."""
    from langchain_tidb_bedrock.langgraph.checkpoint_ops import op_get

    stored = _put(saver, "plan", {"a": [1], "b": [2]}, {"a": 1, "b": 1})
    cid = stored["configurable"]["checkpoint_id"]
    text = _plan(engine, op_get(saver.tables, "plan", "", cid))
    assert "TableFullScan" not in text, text
    assert "IndexJoin" in text or "IndexHashJoin" in text or "IndexMergeJoin" in text, text
    head = (cid, (("a", "1", 1), ("b", "1", 1)))
    text = _plan(engine, op_get(saver.tables, "plan", "", None, head=head))
    assert "TableFullScan" not in text, text
    assert "Join" not in text, text
    blobs = [line for line in text.splitlines() if "checkpoint_blobs" in line]
    assert len(blobs) == 2, text
    assert "Batch_Point_Get" in blobs[1], text  # by whole primary key, no range


def test_latest_read_by_head_notices_a_checkpoint_stored_again(
    saver: TiDBSaver, engine: TiDBEngine, prefix: str
) -> None:
    """Another process stores the same checkpoint id again with other channels: the remembered
    blob keys no longer match what the checkpoint holds, so the saver reads it again (by the
    join) instead of returning a checkpoint without its new channel."""
    other = TiDBSaver(engine=engine, table_prefix=prefix)
    cp = generate_checkpoint(channel_values={"a": [1]}, channel_versions={"a": 1})
    stored = saver.put(_config("again"), cp, generate_metadata(), {"a": 1})
    assert saver.get_tuple(_config("again")) is not None
    cp["channel_values"] = {"a": [1], "b": [2]}
    cp["channel_versions"] = {"a": 1, "b": 1}
    other.put(_config("again"), cp, generate_metadata(), {"b": 1})
    latest, sent = sent_by(engine, lambda: saver.get_tuple(_config("again")))
    assert latest is not None
    assert latest.config == stored
    assert latest.checkpoint["channel_values"] == {"a": [1], "b": [2]}
    assert len(sent) == 2, sent  # the held keys differ from the remembered ones: read again
    again, sent = sent_by(engine, lambda: saver.get_tuple(_config("again")))
    assert again is not None
    assert again.checkpoint["channel_values"] == {"a": [1], "b": [2]}
    assert len(sent) == 1, sent  # the keys it read are remembered


def test_list_pages_through_a_long_history(saver: TiDBSaver) -> None:
    parent = None
    ids = []
    for step in range(230):  # more than two pages of 100
        parent = _put(saver, "long", {"s": [step]}, {"s": step + 1}, parent=parent, step=step)
        ids.append(parent["configurable"]["checkpoint_id"])
    listed = list(saver.list(_config("long")))
    assert [t.checkpoint["id"] for t in listed] == ids[::-1]
    assert [t.checkpoint["channel_values"]["s"] for t in listed[:3]] == [[229], [228], [227]]
    assert len(list(saver.list(_config("long"), limit=150))) == 150
    before = _config("long", ids[120])
    assert [t.checkpoint["id"] for t in saver.list(_config("long"), before=before, limit=3)] == [
        ids[119],
        ids[118],
        ids[117],
    ]
    everywhere = list(saver.list(None, filter={"step": 7}))
    assert [t.checkpoint["id"] for t in everywhere] == [ids[7]]


def test_keys_are_exact_not_padded(saver: TiDBSaver) -> None:
    _put(saver, "a", {"v": "plain"}, {"v": 1})
    _put(saver, "a ", {"v": "trailing space"}, {"v": 1})
    _put(saver, "A", {"v": "upper"}, {"v": 1})
    got = {t: saver.get_tuple(_config(t)) for t in ("a", "a ", "A")}
    assert {t: g.checkpoint["channel_values"]["v"] for t, g in got.items() if g} == {
        "a": "plain",
        "a ": "trailing space",
        "A": "upper",
    }


def test_refuses_keys_past_their_columns_and_writes_nothing(
    saver: TiDBSaver, prefix: str, tidb_engine: sa.Engine
) -> None:
    saver.setup()
    with pytest.raises(InvalidInputError, match="thread_id is 256 characters long"):
        _put(saver, "t" * 256, {"v": 1}, {"v": 1})
    with pytest.raises(InvalidInputError, match="channel name"):
        _put(saver, "t", {"c" * 129: [1]}, {"c" * 129: 1})
    stored = _put(saver, "t", {}, {})
    with pytest.raises(InvalidInputError, match="task_id"):
        saver.put_writes(stored, [("a", 1)], "x" * 129)
    assert _count(tidb_engine, f"{prefix}checkpoints") == 1
    assert _count(tidb_engine, f"{prefix}checkpoint_writes") == 0


def test_special_writes_are_replaced_regular_writes_kept(saver: TiDBSaver) -> None:
    stored = _put(saver, "w", {}, {})
    big = "z" * (3 * 1024 * 1024)  # 3 chunks, then replaced by a 1-chunk value
    saver.put_writes(stored, [(INTERRUPT, big)], "task")
    saver.put_writes(stored, [(INTERRUPT, "short")], "task")
    saver.put_writes(stored, [("ch", "first")], "task2")
    saver.put_writes(stored, [("ch", "second")], "task2")
    tup = saver.get_tuple(stored)
    assert tup is not None
    assert sorted(tup.pending_writes or []) == [
        ("task", INTERRUPT, "short"),
        ("task2", "ch", "first"),
    ]


def test_prune_keep_latest_collects_unheld_blobs(
    saver: TiDBSaver, prefix: str, tidb_engine: sa.Engine
) -> None:
    parent = None
    for step in range(4):
        # "kept" stays at version 1 (held by the latest), "moving" gets a new version each step.
        parent = _put(
            saver,
            "p",
            {"kept": ["k"], "moving": [step]},
            {"kept": 1, "moving": step + 1},
            {"kept": 1, "moving": step + 1} if step == 0 else {"moving": step + 1},
            parent,
            step=step,
        )
    saver.put_writes(parent, [("x", [1])], "t")
    assert _count(tidb_engine, f"{prefix}checkpoint_blobs") == 5
    saver.prune(["p"], strategy="keep_latest")
    assert _count(tidb_engine, f"{prefix}checkpoint_blobs") == 2
    tup = saver.get_tuple(_config("p"))
    assert tup is not None
    assert tup.checkpoint["channel_values"] == {"kept": ["k"], "moving": [3]}
    assert tup.parent_config is None  # its parent is gone
    assert tup.pending_writes == [("t", "x", [1])]
    with pytest.raises(ValueError, match="Unknown prune strategy"):
        saver.prune(["p"], strategy="oldest")
    with pytest.raises(TypeError):
        saver.prune("p")


def test_prune_drops_finished_subgraph_calls(
    saver: TiDBSaver, tidb_engine: sa.Engine, prefix: str
) -> None:
    root1 = _put(saver, "s", {"r": [1]}, {"r": 1})
    call = "node:" + str(uuid.uuid4())
    cp = generate_checkpoint(channel_values={"c": [1]}, channel_versions={"c": 1})
    meta = generate_metadata()
    meta["parents"] = {"": root1["configurable"]["checkpoint_id"]}
    saver.put(_config("s", ns=call), cp, meta, {"c": 1})
    _put(saver, "s", {"r": [2]}, {"r": 2}, parent=root1)  # the root moves on
    saver.prune(["s"])
    assert saver.get_tuple(_config("s", ns=call)) is None
    assert _count(tidb_engine, f"{prefix}checkpoint_blobs", "checkpoint_ns <> ''") == 0
    assert len(list(saver.list(_config("s")))) == 1


def test_prune_refuses_delta_channel_threads_before_deleting(saver: TiDBSaver) -> None:
    first = _put(saver, "plain", {}, {})
    _put(saver, "plain", {}, {}, parent=first)
    _put(saver, "delta", {}, {}, counters_since_delta_snapshot={"m": [1, 1]})
    with pytest.raises(NotImplementedError, match="delta"):
        saver.prune(["plain", "delta"])
    assert len(list(saver.list(_config("plain")))) == 2


def test_delete_for_runs_collects_blobs_only_that_run_held(
    saver: TiDBSaver, prefix: str, tidb_engine: sa.Engine
) -> None:
    first = _put(saver, "r", {"a": ["shared"]}, {"a": 1}, run_id="run-1")
    _put(
        saver,
        "r",
        {"a": ["shared"], "b": ["mine"]},
        {"a": 1, "b": 1},
        {"b": 1},
        first,
        run_id="run-2",
    )
    long_run = "L" * 300
    _put(saver, "r2", {"c": ["long"]}, {"c": 1}, run_id=long_run)
    saver.delete_for_runs(["run-2", long_run])
    assert _count(tidb_engine, f"{prefix}checkpoint_blobs") == 1  # "a" is still held by run-1
    assert [t.metadata["run_id"] for t in saver.list(None)] == ["run-1"]


async def test_copy_thread_then_diverge(saver: TiDBSaver) -> None:
    first = await saver.aput(
        _config("src"),
        generate_checkpoint(channel_values={"m": ["a"]}, channel_versions={"m": 1}),
        generate_metadata(),
        {"m": 1},
    )
    await saver.acopy_thread("src", "dst")
    dst = await saver.aget_tuple(_config("dst"))
    assert dst is not None
    assert dst.checkpoint["channel_values"] == {"m": ["a"]}
    await saver.aput(
        _config("dst", first["configurable"]["checkpoint_id"]),
        generate_checkpoint(channel_values={"m": ["a", "b"]}, channel_versions={"m": 2}),
        generate_metadata(step=1),
        {"m": 2},
    )
    src = await saver.aget_tuple(_config("src"))
    assert src is not None
    assert src.checkpoint["channel_values"] == {"m": ["a"]}
    with pytest.raises(InvalidInputError):
        await saver.acopy_thread("src", "src")


# ---------------------------------------------------------------------------------- concurrency


def test_concurrent_writers_on_one_thread_id(saver: TiDBSaver) -> None:
    """Eight OS threads append checkpoints and writes to one thread id at once: none lost.

    As in a graph, each put brings only its new channel versions; "shared" was stored once.
    """
    first = _put(saver, "busy", {"shared": ["same"]}, {"shared": 1})
    errors: list[BaseException] = []
    per_worker = 12

    def work(worker: int) -> None:
        try:
            parent = None
            for step in range(per_worker):
                mine = saver.get_next_version(None, None)
                parent = _put(
                    saver,
                    "busy",
                    {"shared": ["same"], "mine": [worker, step]},
                    {"shared": 1, "mine": mine},
                    {"mine": mine},
                    parent or first,
                    worker=worker,
                )
                saver.put_writes(parent, [("shared", worker), ("mine", step)], f"task-{worker}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    listed = list(saver.list(_config("busy")))[:-1]  # the first checkpoint last
    assert len(listed) == 8 * per_worker
    for tup in listed:
        values = tup.checkpoint["channel_values"]
        assert values["shared"] == ["same"]
        assert values["mine"][0] == tup.metadata["worker"]
        assert len(tup.pending_writes or []) == 2


async def test_concurrent_async_writers_on_one_thread_id(saver: TiDBSaver) -> None:
    await saver.asetup()

    async def work(worker: int) -> None:
        parent: dict[str, Any] | None = None
        for step in range(10):
            cp = generate_checkpoint(
                channel_values={"mine": [worker, step]},
                channel_versions={"mine": saver.get_next_version(None, None)},
            )
            config = _config("abusy", parent["configurable"]["checkpoint_id"] if parent else None)
            parent = await saver.aput(
                config, cp, generate_metadata(worker=worker), cp["channel_versions"]
            )
            await saver.aput_writes(parent, [("w", step)], f"t{worker}")

    await asyncio.gather(*(work(w) for w in range(6)))
    listed = [t async for t in saver.alist(_config("abusy"))]
    assert len(listed) == 60
    assert all(t.checkpoint["channel_values"]["mine"][0] == t.metadata["worker"] for t in listed)


# ---------------------------------------------------------------------------------- a real graph


class _State(TypedDict):
    log: list[str]


def _graph(saver: TiDBSaver, *, ask: bool = False) -> Any:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def step(state: _State) -> dict[str, Any]:
        entry = f"step {len(state['log'])}"
        if ask:
            entry += ": " + str(interrupt("approve?"))
        return {"log": [*state["log"], entry]}

    builder = StateGraph(_State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile(checkpointer=saver)


def test_graph_memory_interrupt_resume_and_fork(saver: TiDBSaver) -> None:
    from langgraph.types import Command

    graph = _graph(saver)
    config = {"configurable": {"thread_id": "g"}}
    graph.invoke({"log": ["start"]}, config)
    state = graph.get_state(config)
    assert state.values == {"log": ["start", "step 1"]}
    history = list(graph.get_state_history(config))
    assert len(history) == 3  # input, loop, after step

    fork = graph.update_state(history[-2].config, {"log": ["forked"]})
    assert graph.get_state(fork).values == {"log": ["forked"]}

    asking = _graph(saver, ask=True)
    ask_config = {"configurable": {"thread_id": "ask"}}
    out = asking.invoke({"log": []}, ask_config)
    assert out["__interrupt__"][0].value == "approve?"
    done = asking.invoke(Command(resume="yes"), ask_config)
    assert done == {"log": ["step 0: yes"]}


async def test_async_graph_keeps_memory(saver: TiDBSaver) -> None:
    graph = _graph(saver)
    config = {"configurable": {"thread_id": "ag"}}
    await graph.ainvoke({"log": ["a"]}, config)
    state = await graph.aget_state(config)
    await graph.ainvoke({"log": [*state.values["log"], "b"]}, config)
    assert (await graph.aget_state(config)).values == {"log": ["a", "step 1", "b", "step 3"]}


def test_empty_checkpoint_from_langgraph_round_trips(saver: TiDBSaver) -> None:
    cp = empty_checkpoint()
    stored = saver.put(_config("e"), cp, {"source": "input", "step": -1, "parents": {}}, {})
    tup = saver.get_tuple(stored)
    assert tup is not None
    assert tup.checkpoint["id"] == cp["id"]
    assert tup.checkpoint["v"] == cp["v"]


def test_subgraph_interrupt_resumes_from_its_namespace(saver: TiDBSaver) -> None:
    """A subgraph's checkpoints live under their own checkpoint_ns; an interrupt inside it
    resumes there, and the parent's state is read back with the subgraph's."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    def ask(state: _State) -> dict[str, Any]:
        return {"log": [*state["log"], f"child got {interrupt('name?')}"]}

    child = StateGraph(_State)
    child.add_node("ask", ask)
    child.add_edge(START, "ask")
    child.add_edge("ask", END)

    parent = StateGraph(_State)
    parent.add_node("child", child.compile())
    parent.add_node("done", lambda s: {"log": [*s["log"], "parent done"]})
    parent.add_edge(START, "child")
    parent.add_edge("child", "done")
    parent.add_edge("done", END)
    graph = parent.compile(checkpointer=saver)

    config = {"configurable": {"thread_id": "sub"}}
    first = graph.invoke({"log": []}, config)
    assert first["__interrupt__"][0].value == "name?"
    namespaces = {t.config["configurable"]["checkpoint_ns"] for t in saver.list(None)}
    assert any(ns.startswith("child:") for ns in namespaces)
    state = graph.get_state(config, subgraphs=True)
    assert state.tasks[0].state is not None  # the subgraph's own checkpoint, read back
    assert graph.invoke(Command(resume="Ana"), config) == {"log": ["child got Ana", "parent done"]}
