"""Bulk embedding: Bedrock batch inference vs on-demand Titan V2 under per-minute quotas.

python -m benchmarks.batch                 # 20,000 chunks; on-demand measured on samples
python -m benchmarks.batch --chunks 300 --sample-60 10 --sample-2000 200   # seconds (smoke)

Everything talks over HTTP to one in-process LocalBedrock (LocalS3 behind its batch jobs):

* batch: ``BedrockBatchEmbeddings`` on all chunks (no per-minute quota applies to jobs);
* on-demand: ``BedrockTitanEmbeddings`` with LocalBedrock's requests-per-minute quota set to
  2,000 (Titan V2's default) and 60 (some new accounts). 20,000 requests take 10 minutes at
  2,000/min and 5.6 hours at 60/min, so each runs on a measured sample and its full time is
  projected from the sample's steady rate (the first second's burst allowance excluded);
* load: the vectors go into TiDB through the store's bulk path (``add_embeddings``, batched
  ``LOAD DATA``) when a TiDB is at hand (``--tidb-url``, or a LocalTiDB if one is built).

The batch job's wall time here is the stand-in's: real jobs queue for minutes to hours before
they start (AWS targets completion within the job timeout, 24 h by default). Its price is half
of on-demand (Bedrock pricing: Titan Text Embeddings V2 $0.00002 per 1,000 input tokens on
demand, $0.00001 in batch).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from typing import Any

import boto3

from benchmarks.embed import fake_aws_env

ROLE = "arn:aws:iam::123456789012:role/BedrockBatchInference"
REGION = "us-east-1"
DIM = 512
PRICE_ON_DEMAND = 0.00002 / 1000  # USD per input token, Titan Text Embeddings V2
PRICE_BATCH = PRICE_ON_DEMAND / 2


def chunks_for(n: int, salt: str = "") -> list[str]:
    """n distinct ~700-character chunks, the size ingest's splitter produces for prose."""
    body = (
        "TiDB stores vectors next to rows and ranks them with VEC_COSINE_DISTANCE; an HNSW "
        "index on TiFlash keeps large searches fast while writes stay transactional. "
    )
    return [f"{salt}Section {i}, topic {i % 97}, shard {i % 13}. " + body * 4 for i in range(n)]


def run_batch(bedrock: Any, s3_url: str, texts: list[str]) -> dict[str, Any]:
    """Embed all texts through batch jobs; time, requests and tokens."""
    from langchain_tidb_bedrock import BedrockBatchEmbeddings

    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_url, region_name=REGION).create_bucket(Bucket=bucket)
    emb = BedrockBatchEmbeddings(
        f"s3://{bucket}/embeddings",
        ROLE,
        dimensions=DIM,
        endpoint_url=bedrock.endpoint_url,
        s3_endpoint_url=s3_url,
        region_name=REGION,
        poll_interval=0.5,
        show_progress=False,
    )
    s3_calls = [0]
    emb._s3.client.meta.events.register(
        "before-call.s3", lambda **_: s3_calls.__setitem__(0, s3_calls[0] + 1)
    )
    bedrock.reset()
    start = time.perf_counter()
    vectors = emb.embed_documents(texts)
    seconds = time.perf_counter() - start
    jobs = [j for j in bedrock.batch_jobs.jobs.values() if j.name.startswith("tidbbedrock-")]
    tokens = _manifest_tokens(s3_url, bucket)
    return {
        "seconds": seconds,
        "vectors": vectors,
        "bedrock_requests": len(bedrock.requests),
        "s3_requests": s3_calls[0],
        "jobs": len(jobs),
        "tokens": tokens,
        "on_demand_retries": emb.last_run["retried_on_demand"],
    }


def _manifest_tokens(s3_url: str, bucket: str) -> int:
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name=REGION)
    total = 0
    for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        if obj["Key"].endswith("manifest.json.out"):
            import json

            total += json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())[
                "inputTokenCount"
            ]
    return total


def run_on_demand(bedrock: Any, texts: list[str], rpm: float) -> dict[str, Any]:
    """Embed a sample on demand under ``rpm``; its steady rate projects the full run."""
    from langchain_tidb_bedrock import BedrockTitanEmbeddings

    bedrock.reset()
    bedrock.requests_per_minute = rpm
    emb = BedrockTitanEmbeddings(
        endpoint_url=bedrock.endpoint_url, region_name=REGION, dimensions=DIM
    )
    start = time.perf_counter()
    emb.embed_documents(texts)
    seconds = time.perf_counter() - start
    emb.close()
    requests = bedrock.requests
    bedrock.requests_per_minute = None
    throttled = sum(1 for r in requests if r.status == 429)
    return {
        "seconds": seconds,
        "requests": len(requests),
        "throttled": throttled,
        "usage": emb.usage,
    }


def load_into_tidb(url: str, texts: list[str], vectors: list[list[float]]) -> float:
    """Bulk-load precomputed vectors; seconds."""
    from langchain_tidb_bedrock import TiDBVectorStore

    store = TiDBVectorStore(
        None,
        connection_string=url,
        table_name=f"b_batch_{uuid.uuid4().hex[:8]}",
        embedding_dimension=DIM,
    )
    try:
        start = time.perf_counter()
        store.add_embeddings(texts, vectors, [{"i": i} for i in range(len(texts))])
        return time.perf_counter() - start
    finally:
        store.drop_table()
        store.close()


def _fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch")
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--sample-60", type=int, default=30, help="on-demand sample at 60/min")
    parser.add_argument("--sample-2000", type=int, default=2_000, help="sample at 2,000/min")
    parser.add_argument("--tidb-url", help="TiDB for the load step (default: a LocalTiDB)")
    args = parser.parse_args(argv)
    fake_aws_env()
    logging.getLogger("langchain_tidb_bedrock").setLevel(logging.ERROR)
    from langchain_tidb_bedrock.local import LocalBedrock, LocalS3

    texts = chunks_for(args.chunks)
    with LocalS3() as s3, LocalBedrock(s3_endpoint_url=s3.endpoint_url) as bedrock:
        batch = run_batch(bedrock, s3.endpoint_url, texts)
        print(f"batch: {batch['seconds']:.1f} s, {batch['jobs']} job(s)", file=sys.stderr)
        samples = {}
        for rpm, n in ((2000.0, args.sample_2000), (60.0, args.sample_60)):
            samples[rpm] = run_on_demand(bedrock, chunks_for(n, f"od{rpm:.0f}-"), rpm)
            print(f"on-demand {rpm:.0f}/min sample of {n}: {samples[rpm]}", file=sys.stderr)
    load_seconds = _load(args.tidb_url, texts, batch["vectors"])

    tokens = batch["tokens"]
    cost_on_demand, cost_batch = tokens * PRICE_ON_DEMAND, tokens * PRICE_BATCH
    n = args.chunks
    rows = [
        (
            "batch inference (1 job, no per-minute quota)",
            _fmt_time(batch["seconds"]) + " (stand-in; real jobs queue min-h)",
            f"{batch['bedrock_requests']} Bedrock + {batch['s3_requests']} S3",
            f"${cost_batch:.4f}",
        )
    ]
    for rpm, sample_n in ((2000.0, args.sample_2000), (60.0, args.sample_60)):
        s = samples[rpm]
        # Projected from the sample's measured rate; the quota alone allows n / rpm minutes.
        projected = n * s["seconds"] / sample_n
        floor = n / (rpm / 60.0)
        per_text = s["requests"] / max(1, sample_n)
        rows.append(
            (
                f"on-demand at {rpm:,.0f} requests/min",
                f"{_fmt_time(projected)} projected from {sample_n} in "
                f"{_fmt_time(s['seconds'])} (quota floor {_fmt_time(floor)})",
                f"~{per_text * n:,.0f} InvokeModel ({s['throttled']}/{s['requests']} "
                "throttled in sample)",
                f"${cost_on_demand:.4f}",
            )
        )
    print(f"\n{n:,} chunks of ~{len(texts[0])} characters, {tokens:,} input tokens, {DIM} dims")
    print(f"{'path':<46} {'wall time (embedding)':<58} {'requests':<52} cost")
    for row in rows:
        print(f"{row[0]:<46} {row[1]:<58} {row[2]:<52} {row[3]}")
    print(f"cost ratio batch / on-demand: {cost_batch / cost_on_demand:.2f}")
    if load_seconds is not None:
        print(
            f"bulk load into TiDB (same for every path): {_fmt_time(load_seconds)} "
            f"({n / load_seconds:,.0f} rows/s)"
        )
    else:
        print("bulk load into TiDB: skipped (no TiDB: pass --tidb-url or build a LocalTiDB)")
    return 0


def _load(url: str | None, texts: list[str], vectors: list[list[float]]) -> float | None:
    if url:
        return load_into_tidb(url, texts, vectors)
    from langchain_tidb_bedrock.local import LocalTiDB, find_tidb_server

    if find_tidb_server() is None:
        return None
    with LocalTiDB() as tidb:
        return load_into_tidb(tidb.url, texts, vectors)


if __name__ == "__main__":
    sys.exit(main())
