"""LangGraph persistence on TiDB: checkpoint round trips and store search, p50 per call.

- Checkpoint: ``TiDBSaver.put`` and ``get_tuple`` on an agent-sized checkpoint (a message list
  that grows each step) against the floor, one raw statement each on a plain SQLAlchemy
  connection (INSERT of the same serialized bytes, then SELECT of them by key).
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
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.store.base import PutOp

from benchmarks.common import PrecomputedEmbeddings, vectors
from langchain_tidb_bedrock import TiDBEngine, TiDBVectorStore
from langchain_tidb_bedrock.langgraph import TiDBSaver, TiDBStore
from langchain_tidb_bedrock.local import LocalTiDB

DIM = 256


def _p50(fn: Callable[[int], Any], n: int, warmup: int = 5) -> float:
    for i in range(warmup):
        fn(-1 - i)
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def checkpoint_rows(url: str, steps: int) -> list[str]:
    engine = TiDBEngine(url)
    prefix = f"bench_{uuid.uuid4().hex[:6]}_"
    saver = TiDBSaver(engine=engine, table_prefix=prefix)
    saver.setup()
    messages: list[Any] = []
    state: dict[str, Any] = {"parent": None}

    def put(i: int) -> None:
        messages.extend([HumanMessage(f"question {i} " * 10), AIMessage(f"answer {i} " * 40)])
        cp = empty_checkpoint()
        version = saver.get_next_version(None, None)
        cp["channel_values"] = {"messages": list(messages), "step": i}
        cp["channel_versions"] = {"messages": version, "step": version}
        conf = {"thread_id": "bench", "checkpoint_ns": ""}
        if state["parent"]:
            conf["checkpoint_id"] = state["parent"]
        meta = {"source": "loop", "step": i, "parents": {}}
        stored = saver.put({"configurable": conf}, cp, meta, {"messages": version})
        state["parent"] = stored["configurable"]["checkpoint_id"]

    def get(i: int) -> None:
        assert saver.get_tuple({"configurable": {"thread_id": "bench", "checkpoint_ns": ""}})

    put_ms = _p50(put, steps)
    get_ms = _p50(get, steps)

    # The floor: the same bytes, one statement each, on a plain connection.
    plain = sa.create_engine(url)
    raw = f"{prefix}raw"
    with plain.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE `{raw}` (k VARCHAR(64) PRIMARY KEY, v LONGBLOB, m JSON)"
        )
    _, data = saver.serde.dumps_typed({"messages": messages[-steps:]})
    with plain.connect() as conn:

        def raw_put(i: int) -> None:
            conn.exec_driver_sql(
                f"INSERT INTO `{raw}` VALUES (%s, %s, %s)", (f"k{i}", data, '{"step": 1}')
            )
            conn.commit()

        def raw_get(i: int) -> None:
            row = conn.exec_driver_sql(
                f"SELECT v, m FROM `{raw}` WHERE k = %s", (f"k{max(i, 0)}",)
            ).one()
            saver.serde.loads_typed(("msgpack", row[0]))

        raw_put_ms = _p50(raw_put, steps)
        raw_get_ms = _p50(raw_get, steps)
    with plain.begin() as conn:
        names = ["checkpoints", "checkpoint_blobs", "checkpoint_channels", "checkpoint_writes"]
        conn.exec_driver_sql(
            "DROP TABLE " + ", ".join([f"`{raw}`", *(f"`{prefix}{t}`" for t in names)])
        )
    plain.dispose()
    engine.close()
    return [
        f"checkpoint put      p50 {put_ms:6.2f} ms  raw INSERT {raw_put_ms:6.2f} ms  "
        f"ratio {put_ms / raw_put_ms:4.2f}x (target <= 1.5x)",
        f"checkpoint get_tuple p50 {get_ms:6.2f} ms  raw SELECT {raw_get_ms:6.2f} ms  "
        f"ratio {get_ms / raw_get_ms:4.2f}x (target <= 1.5x)",
    ]


def search_rows(url: str, items: int, queries: int) -> list[str]:
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
        vs.add_texts(
            texts[start : start + 2000],
            ids=[f"m{i}" for i in range(start, start + 2000)][: len(texts[start : start + 2000])],
        )

    ours = _p50(lambda i: store.search(("users",), query=asks[i % queries], limit=10), queries)
    theirs = _p50(lambda i: vs.similarity_search(asks[i % queries], k=10), queries)
    with sa.create_engine(url).begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE `{prefix}store`, `{prefix}store_vectors`, `{prefix}vs`")
    engine.close()
    return [
        f"store search ({items:,} items) p50 {ours:6.2f} ms  vector store {theirs:6.2f} ms  "
        f"ratio {ours / theirs:4.2f}x (target <= 1.2x)"
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    steps, items, queries = (20, 500, 10) if args.smoke else (200, 10_000, 100)
    with LocalTiDB() as tidb:
        for line in checkpoint_rows(tidb.url, steps) + search_rows(tidb.url, items, queries):
            print(line)


if __name__ == "__main__":
    main()
