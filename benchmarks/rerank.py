"""Rerank in the chain: Bedrock calls per question and the time to the first answer token.

``create_rag_chain(store, llm, rerank=BedrockReranker(...))`` against the same chain without
rerank, on one local TiDB and one LocalBedrock that adds 20 ms to every request (Titan, Rerank
and Llama alike). Questions alternate between the two chains so the shared machine's load falls
on both alike. The first token is the first non-empty ``answer`` chunk of ``stream``; each
stream is read to its end. Calls are counted from LocalBedrock's request log.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from typing import Any

from benchmarks.common import Row
from langchain_tidb_bedrock import (
    BedrockReranker,
    BedrockTitanEmbeddings,
    TiDBVectorStore,
    create_llama3_chat,
    create_rag_chain,
)
from langchain_tidb_bedrock.local import LocalBedrock

LATENCY = 0.02
RERANK_MODEL = "cohere.rerank-v3-5:0"
TOPICS = ["TiDB", "vector search", "Bedrock", "HNSW", "TiFlash", "Llama 3", "Titan", "rerank"]


def _corpus(n: int) -> list[str]:
    return [
        f"Passage {i} on {TOPICS[i % len(TOPICS)]}: note {i * 7919 % 1000} about "
        f"{TOPICS[(i * 3) % len(TOPICS)]} and {TOPICS[(i * 5) % len(TOPICS)]}."
        for i in range(n)
    ]


def _first_token(chain: Any, question: str) -> float:
    start = time.perf_counter()
    first: float | None = None
    for chunk in chain.stream(question):
        if first is None and chunk.get("answer"):
            first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("the chain streamed no answer")
    return first


def rerank_row(url: str, docs: int, questions: int) -> Row:
    """p50 time to the first answer token with and without rerank; Bedrock calls per question."""
    with LocalBedrock(latency=LATENCY) as bedrock:
        endpoint = bedrock.endpoint_url
        embeddings = BedrockTitanEmbeddings(dimensions=256, endpoint_url=endpoint)
        store = TiDBVectorStore(
            embeddings, connection_string=url, table_name=f"b_rr_{uuid.uuid4().hex[:8]}"
        )
        reranker = BedrockReranker(
            model_id=RERANK_MODEL, endpoint_url=endpoint, region_name="us-west-2"
        )
        try:
            store.add_texts(_corpus(docs))
            llm = create_llama3_chat(endpoint_url=endpoint)
            plain = create_rag_chain(store, llm, k=4)
            reranked = create_rag_chain(store, llm, k=4, rerank=reranker)
            asks = [f"What about {TOPICS[i % len(TOPICS)]} ({i})?" for i in range(questions)]
            _first_token(plain, asks[0])  # warm both chains' clients and pools
            _first_token(reranked, asks[0])
            times: dict[str, list[float]] = {"plain": [], "rerank": []}
            calls: dict[str, Counter[str]] = {"plain": Counter(), "rerank": Counter()}
            for i, q in enumerate(asks):
                order = [("plain", plain), ("rerank", reranked)]
                for name, chain in order if i % 2 == 0 else order[::-1]:
                    before = len(bedrock.requests)
                    times[name].append(_first_token(chain, q))
                    calls[name].update(r.op for r in bedrock.requests[before:])
        finally:
            reranker.close()
            store.drop_table()
            store.close()
            embeddings.close()
    p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
    per_q = {k: {op: n / questions for op, n in c.items()} for k, c in calls.items()}
    extra = {op: per_q["rerank"].get(op, 0) - per_q["plain"].get(op, 0) for op in per_q["rerank"]}
    row = Row(
        name=f"first answer token p50 with rerank, {LATENCY * 1000:.0f} ms/call (ms)",
        unit="ms",
        ours=p50["rerank"],
        others={"without rerank": p50["plain"]},
        higher_is_better=False,
        target="<= 1.2x without rerank; one extra Bedrock call per question",
    )
    extra_calls = sum(extra.values())
    row.met = p50["rerank"] <= 1.2 * p50["plain"] and abs(extra_calls - 1.0) < 1e-9
    row.notes = (
        f"{docs:,} docs, {questions} questions, alternating; Bedrock calls per question: "
        f"rerank {dict(sorted(per_q['rerank'].items()))}, "
        f"without {dict(sorted(per_q['plain'].items()))}"
    )
    return row
