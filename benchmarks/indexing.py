"""Record manager and LLM cache benchmarks.

``index()`` of n documents into one TiDBVectorStore with TiDBRecordManager (records in TiDB)
against langchain-core's InMemoryRecordManager (the floor: records in a dict), first run and an
unchanged re-run. And the latency of a chat answer from TiDBSemanticCache (a paraphrase: one
Titan call plus one TiDB statement; and the same prompt: one statement, no embedding) against
calling Llama through a LocalBedrock process.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.documents import Document
from langchain_core.globals import set_llm_cache
from langchain_core.indexing import InMemoryRecordManager, RecordManager, index

from benchmarks.common import HashEmbeddings, Row
from benchmarks.embed import LATENCY, REGION, fake_aws_env, local_bedrock_process
from langchain_tidb_bedrock import (
    BedrockTitanEmbeddings,
    TiDBEngine,
    TiDBRecordManager,
    TiDBSemanticCache,
    TiDBVectorStore,
    create_llama3_chat,
)


def _docs(n: int) -> list[Document]:
    return [
        Document(
            page_content=f"Chunk {i} of source {i // 10}: TiDB keeps vectors next to the rows.",
            metadata={"source": f"doc-{i // 10}"},
        )
        for i in range(n)
    ]


def _index_once(
    engine: TiDBEngine, docs: list[Document], manager: Callable[[str], RecordManager]
) -> tuple[float, float]:
    """(first run, unchanged re-run) in documents per second, on fresh tables."""
    table = f"b_idx_{uuid.uuid4().hex[:8]}"
    store = TiDBVectorStore(HashEmbeddings(64), engine=engine, table_name=table)
    records = manager(table)
    kwargs: dict[str, Any] = {
        "cleanup": "incremental",
        "source_id_key": "source",
        "key_encoder": "sha256",
    }
    try:
        start = time.perf_counter()
        first = index(docs, records, store, **kwargs)
        first_rate = len(docs) / (time.perf_counter() - start)
        start = time.perf_counter()
        again = index(docs, records, store, **kwargs)
        again_rate = len(docs) / (time.perf_counter() - start)
        if first["num_added"] != len(docs) or again["num_skipped"] != len(docs):
            msg = f"unexpected index() results: {first}, {again}"
            raise RuntimeError(msg)
    finally:
        store.drop_table()
        with engine.sync.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{table}_rm`")
    return first_rate, again_rate


def index_rows(url: str, n: int, repeat: int) -> list[Row]:
    """index() throughput with TiDBRecordManager vs InMemoryRecordManager (docs/s)."""
    docs = _docs(n)
    ours: list[tuple[float, float]] = []
    floor: list[tuple[float, float]] = []
    with TiDBEngine(url) as engine:

        def tidb(table: str) -> RecordManager:
            return TiDBRecordManager(f"bench/{table}", engine=engine, table_name=f"{table}_rm")

        def memory(table: str) -> RecordManager:
            return InMemoryRecordManager(f"bench/{table}")

        _index_once(engine, docs[: min(n, 200)], tidb)  # warm-up: pools, DDL paths
        for _ in range(repeat):  # alternate, so drift on a shared box hits both alike
            ours.append(_index_once(engine, docs, tidb))
            floor.append(_index_once(engine, docs, memory))
    rows = []
    for i, label in enumerate(("first run", "unchanged re-run")):
        mine = statistics.median(r[i] for r in ours)
        base = statistics.median(r[i] for r in floor)
        row = Row(
            name=f"index() {n:,} docs, {label} (docs/s)",
            unit="docs/s",
            ours=mine,
            others={"InMemoryRecordManager": base},
            target="within 1.5x of InMemoryRecordManager",
            notes="same TiDBVectorStore and 64-dim hash embeddings; batch_size 100, incremental",
        )
        row.met = mine * 1.5 >= base
        rows.append(row)
    return rows


def semantic_cache_row(url: str, queries: int) -> Row:
    """Chat answer latency: semantic-cache hit vs a Llama call, both through LocalBedrock."""
    fake_aws_env()
    table = f"b_sc_{uuid.uuid4().hex[:8]}"
    asked = [f"What does note {i} say about TiDB vector search?" for i in range(queries)]
    paraphrases = [q.lower().rstrip("?") for q in asked]  # same words: a semantic hit
    with local_bedrock_process(LATENCY) as endpoint, TiDBEngine(url) as engine:
        chat = create_llama3_chat(endpoint_url=endpoint, region_name=REGION)
        embeddings = BedrockTitanEmbeddings(
            dimensions=256, endpoint_url=endpoint, region_name=REGION
        )
        cache = TiDBSemanticCache(embeddings, engine=engine, table_name=table)
        try:
            chat.invoke("warm-up")  # connections
            llm_ms = _median_ms(chat.invoke, asked)  # no cache yet: every call goes to Llama
            set_llm_cache(cache)
            for q in asked:  # fill the cache
                chat.invoke(q)
            hit_ms = _median_ms(chat.invoke, paraphrases)
            exact_ms = _median_ms(chat.invoke, asked)
        finally:
            set_llm_cache(None)
            cache.clear()
            with engine.sync.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{table}`")
            embeddings.close()
    return Row(
        name=f"chat answer, semantic-cache hit vs Llama call, {LATENCY * 1000:.0f} ms/request (ms)",
        unit="ms",
        ours=hit_ms,
        others={"Llama via LocalBedrock": llm_ms},
        higher_is_better=False,
        target="figures only: a hit = one Titan call + two TiDB reads",
        notes=(
            f"median of {queries}; the same prompt again (found by hash, no embedding): "
            f"{exact_ms:.1f} ms. LocalBedrock adds {LATENCY * 1000:.0f} ms to every request "
            "(Titan and Llama alike); a real Llama answer takes far longer than an embedding"
        ),
    )


def _median_ms(call: Callable[[str], Any], prompts: list[str]) -> float:
    times = []
    for prompt in prompts:
        start = time.perf_counter()
        call(prompt)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
