"""LangGraph persistence on TiDB: checkpoint round trips and store search, p50 per call.

- Checkpoint: ``TiDBSaver.put`` and ``get_tuple`` (latest of the thread) on an agent-sized
  checkpoint (a message list that grows by two messages a step) against the floor, one raw
  statement each on a plain SQLAlchemy connection doing the same serializer work: serialize the
  same message list then INSERT it; SELECT it by key then deserialize it.
- Calls alternate between ours and the floor, so the shared machine's load falls on both alike.
- Store search: ``TiDBStore.search(query=...)`` over N items (one embedded field each) against
  ``TiDBVectorStore.similarity_search`` over the same N texts and vectors (exact kNN both).

python -m benchmarks.agent_memory [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import CheckpointMetadata, empty_checkpoint
from langgraph.store.base import PutOp

from benchmarks.common import PrecomputedEmbeddings, Row, vectors
from langchain_tidb_bedrock import TiDBEngine, TiDBVectorStore
from langchain_tidb_bedrock.langgraph import TiDBSaver, TiDBStore
from langchain_tidb_bedrock.local import LocalTiDB

DIM = 256
WARMUP = 5
CHECKPOINT_TARGET = 1.5
SEARCH_TARGET = 1.2


def _p50_pair(
    ours: Callable[[], Any], theirs: Callable[[], Any], n: int, warmup: int = WARMUP
) -> tuple[float, float]:
    """p50 ms of each, calls alternating (in turn first) so the shared machine's load swings
    fall on both alike."""
    for _ in range(warmup):
        ours()
        theirs()
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(n):
        order = ((0, ours), (1, theirs)) if i % 2 == 0 else ((1, theirs), (0, ours))
        for side, fn in order:
            start = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - start)
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


def _messages(steps: int) -> list[Any]:
    out: list[Any] = []
    for i in range(steps):
        out += [HumanMessage(f"question {i} " * 10), AIMessage(f"answer {i} " * 40)]
    return out


def checkpoint_rows(url: str, steps: int) -> list[Row]:
    """put and get_tuple p50 against one raw statement each (same payload sizes, same serde)."""
    messages = _messages(steps + WARMUP)
    engine = TiDBEngine(url)
    prefix = f"bench_{uuid.uuid4().hex[:6]}_"
    saver = TiDBSaver(engine=engine, table_prefix=prefix)
    saver.setup()
    state: dict[str, Any] = {"parent": None, "n": 0}

    def put() -> None:
        state["n"] += 1
        i = state["n"]
        cp = empty_checkpoint()
        version = saver.get_next_version(None, None)
        cp["channel_values"] = {"messages": messages[: 2 * i], "step": i}
        cp["channel_versions"] = {"messages": version, "step": version}
        conf = {"thread_id": "bench", "checkpoint_ns": ""}
        if state["parent"]:
            conf["checkpoint_id"] = state["parent"]
        meta: CheckpointMetadata = {"source": "loop", "step": i, "parents": {}}
        stored = saver.put({"configurable": conf}, cp, meta, {"messages": version})
        state["parent"] = stored["configurable"]["checkpoint_id"]

    def get() -> None:
        assert saver.get_tuple({"configurable": {"thread_id": "bench", "checkpoint_ns": ""}})

    # The floor: the same bytes, one statement each, on a plain connection.
    plain = sa.create_engine(url)
    raw = f"{prefix}raw"
    with plain.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE `{raw}` (k VARCHAR(64) PRIMARY KEY, v LONGBLOB, m JSON)"
        )
    with plain.connect() as conn:
        raw_state = {"n": 0}

        def raw_put() -> None:
            raw_state["n"] += 1
            i = raw_state["n"]
            _, data = saver.serde.dumps_typed({"messages": messages[: 2 * i], "step": i})
            conn.exec_driver_sql(
                f"INSERT INTO `{raw}` VALUES (%s, %s, %s)", (f"k{i}", data, '{"step": 1}')
            )
            conn.commit()

        put_ms, raw_put_ms = _p50_pair(put, raw_put, steps)
        held = state["n"]  # messages in the checkpoint get_tuple reads: 2 per put
        key = f"k{held}"

        def raw_get() -> None:
            row = conn.exec_driver_sql(f"SELECT v, m FROM `{raw}` WHERE k = %s", (key,)).one()
            saver.serde.loads_typed(("msgpack", row[0]))

        get_ms, raw_get_ms = _p50_pair(get, raw_get, steps)
    with plain.begin() as conn:
        names = ["checkpoints", "checkpoint_blobs", "checkpoint_channels", "checkpoint_writes"]
        conn.exec_driver_sql(
            "DROP TABLE " + ", ".join([f"`{raw}`", *(f"`{prefix}{t}`" for t in names)])
        )
    plain.dispose()
    engine.close()
    floor = "one raw statement + the same serializer call"
    return [
        Row(
            f"checkpoint put p50 ms, {steps} steps (up to {2 * held} messages)",
            "ms p50",
            put_ms,
            {"raw INSERT": raw_put_ms},
            higher_is_better=False,
            target=f"<= {CHECKPOINT_TARGET}x raw",
            met=put_ms <= CHECKPOINT_TARGET * raw_put_ms,
            notes=f"ours {put_ms / raw_put_ms:.2f}x the floor ({floor})",
        ),
        Row(
            f"checkpoint get_tuple p50 ms, latest of {2 * held} messages",
            "ms p50",
            get_ms,
            {"raw SELECT": raw_get_ms},
            higher_is_better=False,
            target=f"<= {CHECKPOINT_TARGET}x raw",
            met=get_ms <= CHECKPOINT_TARGET * raw_get_ms,
            notes=f"ours {get_ms / raw_get_ms:.2f}x the floor ({floor})",
        ),
    ]


def search_row(url: str, items: int, queries: int) -> Row:
    """TiDBStore.search(query=..., limit=10) p50 against the vector store's k=10 search."""
    texts = [f"memory {i}: the user mentioned topic {i % 97} on day {i % 31}" for i in range(items)]
    matrix = vectors(items + queries, DIM, seed=7)
    table = {t: matrix[i].tolist() for i, t in enumerate(texts)}
    asks = [f"query {q}" for q in range(queries)]
    table.update({a: matrix[items + q].tolist() for q, a in enumerate(asks)})
    emb = PrecomputedEmbeddings(table)
    engine = TiDBEngine(url)
    prefix = f"bench_{uuid.uuid4().hex[:6]}_"
    store = TiDBStore(
        engine=engine, table_prefix=prefix, index={"dims": DIM, "embed": emb, "fields": ["text"]}
    )
    for start in range(0, items, 500):
        store.batch(
            [
                PutOp(("users", f"u{i % 10}"), f"m{i}", {"text": texts[i]})
                for i in range(start, min(items, start + 500))
            ]
        )
    vs = TiDBVectorStore(emb, engine=engine, table_name=f"{prefix}vs")
    for start in range(0, items, 2000):
        chunk = texts[start : start + 2000]
        vs.add_texts(chunk, ids=[f"m{i}" for i in range(start, start + len(chunk))])

    counter = {"ours": 0, "theirs": 0}

    def ours_once() -> None:
        counter["ours"] += 1
        store.search(("users",), query=asks[counter["ours"] % queries], limit=10)

    def theirs_once() -> None:
        counter["theirs"] += 1
        vs.similarity_search(asks[counter["theirs"] % queries], k=10)

    ours, theirs = _p50_pair(ours_once, theirs_once, queries)
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE `{prefix}store`, `{prefix}store_vectors`, `{prefix}vs`")
    engine.close()
    return Row(
        f"store search p50 ms, {items:,} items, limit 10",
        "ms p50",
        ours,
        {"TiDBVectorStore k=10": theirs},
        higher_is_better=False,
        target=f"<= {SEARCH_TARGET}x vector store",
        met=ours <= SEARCH_TARGET * theirs,
        notes=f"ours {ours / theirs:.2f}x the vector store's search (exact kNN both)",
    )


def agent_memory_rows(url: str, steps: int, items: int, queries: int) -> list[Row]:
    """The three rows ``benchmarks.run`` prints."""
    return [*checkpoint_rows(url, steps), search_row(url, items, queries)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    steps, items, queries = (20, 500, 10) if args.smoke else (200, 10_000, 100)
    with LocalTiDB() as tidb:
        for row in agent_memory_rows(tidb.url, steps, items, queries):
            print(f"{row.name:<58} {row.ours:7.2f}  {row.notes}  {row.target}")


if __name__ == "__main__":
    main()
