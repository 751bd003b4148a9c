"""Retrieval quality: recall@4 and MRR@10 for vector, hybrid, and each with a Bedrock rerank.

python -m benchmarks.quality            # 20,000 passages, 100 queries per class (~5 min;
                                        # the first run also reads site-packages, 2-4 min)
python -m benchmarks.quality --smoke    # 600 passages, 10 per class (about a minute)

The labelled set and the (non-lexical) embedding model are in ``quality_data.py``. Every method
answers the same queries from the same table: ``vector`` is ``similarity_search``, ``hybrid``
is ``hybrid_search`` (default weighted fusion of the vector leg and the BM25 keyword leg, 20 each),
and ``+rerank`` sends their 20 candidates to ``BedrockReranker`` (``cohere.rerank-v3-5:0``)
on LocalBedrock and keeps its best. LocalBedrock scores rerank requests by word overlap, not
with Cohere's model: the rerank columns show the pipeline and its cost, not Cohere's quality.

Also measured on the same data: hybrid search latency against vector-only (p50 over the
queries, the two interleaved), and ingest with the keyword index against without it (rows/s,
precomputed vectors, fresh tables, interleaved, median of repeats).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.documents import Document

from benchmarks.common import Row
from benchmarks.quality_data import CooccurrenceEmbeddings, Dataset, Query, build
from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.document_compressors import COHERE_RERANK_MODEL_ID, BedrockReranker

K = 4
FETCH_K = 20
METHODS = ("vector", "hybrid", "vector+rerank", "hybrid+rerank")


@dataclass
class Scores:
    """Per method: ranks of the answer (None: not in the 20 candidates) and latencies (s)."""

    ranks: dict[str, list[int | None]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, method: str, rank: int | None, seconds: float) -> None:
        self.ranks.setdefault(method, []).append(rank)
        self.seconds.setdefault(method, []).append(seconds)

    def recall(self, method: str, k: int = K, only: list[int] | None = None) -> float:
        ranks = self.ranks[method]
        picked = [ranks[i] for i in only] if only is not None else ranks
        if not picked:
            return float("nan")
        return sum(1 for r in picked if r is not None and r <= k) / len(picked)

    def mrr(self, method: str, k: int = 10) -> float:
        ranks = self.ranks[method]
        return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks)

    def p50_ms(self, method: str) -> float:
        return statistics.median(self.seconds[method]) * 1000


def _rank(docs: list[Document], answer: str) -> int | None:
    for n, doc in enumerate(docs, start=1):
        if doc.id == answer:
            return n
    return None


def _timed(fn: Callable[[], list[Document]]) -> tuple[list[Document], float]:
    start = time.perf_counter()
    docs = fn()
    return docs, time.perf_counter() - start


def ingest_rates(
    url: str, data: Dataset, vectors: np.ndarray, repeat: int
) -> tuple[float, float, TiDBVectorStore]:
    """rows/s without and with the keyword index (median of ``repeat``); the last keyword store."""
    texts = list(data.passages.values())
    ids = list(data.passages)
    metas = [{"package": data.sources[i].split("/")[0]} for i in ids]
    rates: dict[bool, list[float]] = {False: [], True: []}
    kept: TiDBVectorStore | None = None
    for r in range(repeat):
        for keyword in (False, True) if r % 2 == 0 else (True, False):
            store = TiDBVectorStore(
                None,
                connection_string=url,
                table_name=f"q_{uuid.uuid4().hex[:12]}",
                keyword_search=keyword,
            )
            start = time.perf_counter()
            store.add_embeddings(texts, vectors, metas, ids=ids)
            rates[keyword].append(len(texts) / (time.perf_counter() - start))
            if keyword and r == repeat - 1:
                kept = store
            else:
                store.drop_table()
                store.close()
    assert kept is not None  # the loop keeps the last keyword store
    return statistics.median(rates[False]), statistics.median(rates[True]), kept


def evaluate(store: TiDBVectorStore, queries: list[Query], reranker: BedrockReranker) -> Scores:
    """Every query through the four methods (vector and hybrid alternate who goes first)."""
    scores = Scores()
    for n, q in enumerate(queries):
        legs = {
            "vector": lambda q=q: store.similarity_search(q.text, k=FETCH_K),
            "hybrid": lambda q=q: store.hybrid_search(q.text, k=FETCH_K, fetch_k=FETCH_K),
        }
        order = ("vector", "hybrid") if n % 2 == 0 else ("hybrid", "vector")
        for method in order:
            docs, seconds = _timed(legs[method])
            scores.add(method, _rank(docs, q.answer), seconds)
            reranked, rerank_s = _timed(
                lambda docs=docs, q=q: reranker.compress_documents(docs, q.text)
            )
            scores.add(f"{method}+rerank", _rank(list(reranked), q.answer), seconds + rerank_s)
    return scores


def quality_rows(url: str, endpoint: str, n_docs: int, per_class: int, repeat: int) -> list[Row]:
    """Rows: recall@4 per query class, the vector misses, latency, and ingest."""
    data = build(n_docs, per_class)
    texts = list(data.passages.values())
    embeddings = CooccurrenceEmbeddings(texts)
    vectors = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
    without, with_kw, store = ingest_rates(url, data, vectors, repeat)
    store.embedding = embeddings
    reranker = BedrockReranker(
        model_id=COHERE_RERANK_MODEL_ID,
        endpoint_url=endpoint,
        region_name="us-west-2",
        top_n=FETCH_K,
    )
    rows: list[Row] = []
    every = Scores()
    try:
        for kind, queries in data.by_kind().items():
            scores = evaluate(store, queries, reranker)
            for method in METHODS:
                for r, s in zip(scores.ranks[method], scores.seconds[method], strict=True):
                    every.add(method, r, s)
            recall = {m: scores.recall(m) for m in METHODS}
            row = Row(
                name=f"recall@4, {kind} queries ({len(queries)}, {len(texts):,} passages)",
                unit="recall@4",
                ours=recall["hybrid"],
                others={m: recall[m] for m in METHODS if m != "hybrid"},
                target="hybrid >= vector",
                met=recall["hybrid"] >= recall["vector"],
                notes="recall@4: "
                + ", ".join(f"{m} {recall[m]:.2f}" for m in METHODS)
                + "; MRR@10: "
                + ", ".join(f"{m} {scores.mrr(m):.3f}" for m in METHODS)
                + "; p50 ms: "
                + ", ".join(f"{m} {scores.p50_ms(m):.1f}" for m in METHODS),
            )
            rows.append(row)
            if kind == "keyword":
                missed = [i for i, r in enumerate(scores.ranks["vector"]) if r is None or r > K]
                rows.append(
                    Row(
                        name=f"recall@4, keyword queries the vector leg misses ({len(missed)})",
                        unit="recall@4",
                        ours=scores.recall("hybrid", only=missed),
                        others={
                            "vector": 0.0,
                            "hybrid+rerank": scores.recall("hybrid+rerank", only=missed),
                        },
                        target=">= 0.9",
                        met=scores.recall("hybrid", only=missed) >= 0.9,
                        notes=f"hybrid {scores.recall('hybrid', only=missed):.2f}, hybrid+rerank "
                        f"{scores.recall('hybrid+rerank', only=missed):.2f}",
                    )
                )
    finally:
        reranker.close()
        store.drop_table()
        store.close()
    hybrid_ms, vector_ms = every.p50_ms("hybrid"), every.p50_ms("vector")
    rows.append(
        Row(
            name=f"hybrid search p50, {len(texts):,} passages, k={FETCH_K} (ms)",
            unit="ms",
            ours=hybrid_ms,
            others={"vector only": vector_ms},
            higher_is_better=False,
            target="<= 1.5x vector only",
            met=hybrid_ms <= 1.5 * vector_ms,
            notes=f"{len(every.ranks['vector'])} queries, interleaved; exact kNN (no TiFlash)",
        )
    )
    rows.append(
        Row(
            name=f"ingest with the keyword index, {len(texts):,} passages (rows/s)",
            unit="rows/s",
            ours=with_kw,
            others={"without": without},
            target=">= 0.7x without",
            met=with_kw >= 0.7 * without,
            notes=f"{vectors.shape[1]}d precomputed vectors; median of {repeat}, interleaved",
        )
    )
    return rows


def run(url: str, size: dict[str, Any]) -> list[Row]:
    """The rows at ``benchmarks.run`` sizes, with a LocalBedrock for the reranker."""
    from benchmarks.embed import fake_aws_env, local_bedrock_process

    fake_aws_env()
    with local_bedrock_process(0.0) as endpoint:  # no added latency: the rerank's own cost
        return quality_rows(
            url, endpoint, size["quality_docs"], size["quality_queries"], size["repeat"]
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    args = parser.parse_args(argv)
    logging.getLogger("langchain_tidb_bedrock").setLevel(logging.ERROR)
    from benchmarks.run import SIZES, print_table
    from langchain_tidb_bedrock.local import LocalTiDB

    with LocalTiDB() as tidb:
        rows = run(tidb.url, SIZES["smoke" if args.smoke else "full"])
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
