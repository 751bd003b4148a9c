"""Embedding throughput: BedrockTitanEmbeddings vs langchain-aws BedrockEmbeddings.

Both talk to a LocalBedrock running in its own process (so the server's threads do not share the
client's GIL), with a fixed latency per request standing in for Bedrock's round trip. The second
row answers a fixed fraction of requests with 429 ThrottlingException and counts the texts each
client failed to embed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from langchain_aws import BedrockEmbeddings

from benchmarks.common import Row, median_of
from langchain_tidb_bedrock import BedrockEmbeddingError, BedrockTitanEmbeddings

LATENCY = 0.02  # seconds per request at the server
THROTTLE_RATE = 0.10  # fraction of requests answered 429 in the throttled row
MODEL_ID = "amazon.titan-embed-text-v2:0"
REGION = "us-east-1"
_SLOW_REPEAT_ABOVE = 500  # langchain-aws runs once above this many texts (~25 s per 1,000)


def fake_aws_env() -> None:
    """Placeholder credentials: boto3 signs requests, LocalBedrock does not check them."""
    os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)  # a bearer token would force HTTPS
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_ACCESS_KEY_ID"] = "local-bench-key"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "local-bench-secret"  # noqa: S105 - a placeholder
    os.environ["AWS_DEFAULT_REGION"] = REGION


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def local_bedrock_process(
    latency: float = LATENCY, throttle_rate: float = 0.0, timeout: float = 30.0
) -> Iterator[str]:
    """Run ``python -m langchain_tidb_bedrock.local bedrock`` in a child process.

    Yields its endpoint URL; the process is terminated (then killed) on exit.
    """
    port = _free_port()
    cmd = [
        sys.executable, "-m", "langchain_tidb_bedrock.local", "bedrock",
        "--port", str(port), "--latency", str(latency), "--throttle-rate", str(throttle_rate),
    ]  # fmt: skip
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                msg = f"LocalBedrock exited with {proc.returncode} before serving: {err[-2000:]}"
                raise RuntimeError(msg)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                msg = f"LocalBedrock did not listen on port {port} within {timeout:.0f} s"
                raise RuntimeError(msg)
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def texts_for(n: int, salt: str = "") -> list[str]:
    """n distinct short texts (distinct: ours would request a repeated text only once)."""
    return [
        f"{salt}Passage {i}: TiDB stores vectors next to rows; topic {i % 37}, shard {i % 11}."
        for i in range(n)
    ]


def ours(endpoint: str) -> BedrockTitanEmbeddings:
    """This package's client at its default settings (16 requests in flight, 8 retries)."""
    return BedrockTitanEmbeddings(endpoint_url=endpoint, region_name=REGION)


def langchain_aws(endpoint: str) -> BedrockEmbeddings:
    """langchain-aws' client at its default settings (sequential, botocore's retries)."""
    return BedrockEmbeddings(model_id=MODEL_ID, endpoint_url=endpoint, region_name=REGION)


def _rate(fn: Callable[[list[str]], Any], texts: list[str]) -> float:
    start = time.perf_counter()
    fn(texts)
    return len(texts) / (time.perf_counter() - start)


def _count_bad(got: list[list[float]], reference: list[list[float]]) -> int:
    """Texts with a missing, zero or wrong (e.g. reordered) vector."""
    matched = sum(1 for g, r in zip(got, reference, strict=False) if _same(g, r))
    return len(reference) - matched


def _same(got: list[float], want: list[float]) -> bool:
    if not got or len(got) != len(want):
        return False
    g = np.asarray(got, dtype=np.float64)
    return bool(np.any(g) and np.allclose(g, want, atol=1e-6))


def _ours_throttled(
    endpoint: str, texts: list[str], reference: list[list[float]]
) -> tuple[float, int]:
    """(texts/s, failed texts) for one run of ours under throttling."""
    emb = ours(endpoint)
    start = time.perf_counter()
    try:
        got = emb.embed_documents(texts)
        failed = _count_bad(got, reference)
    except BedrockEmbeddingError as err:  # names the texts it could not embed
        failed = len(err.failed_indices)
    except Exception:  # any other error loses the whole call
        failed = len(texts)
    rate = len(texts) / (time.perf_counter() - start)
    emb.close()
    return rate, failed


def _aws_throttled(
    endpoint: str, texts: list[str], reference: list[list[float]]
) -> tuple[float, int]:
    """(texts/s, failed texts) for langchain-aws under throttling.

    Its ``embed_documents`` is a plain loop over the texts that raises on the first error, so it
    is driven here text by text (the same requests in the same order), counting each text whose
    request still failed after botocore's own retries instead of stopping at the first.
    """
    emb = langchain_aws(endpoint)
    got: list[list[float]] = []
    failed = 0
    start = time.perf_counter()
    for text in texts:
        try:
            got.append(emb.embed_documents([text])[0])
        except Exception:  # counted, as a user's own loop would have to
            failed += 1
            got.append([])
    rate = len(texts) / (time.perf_counter() - start)
    bad = _count_bad(got, reference)
    return rate, max(failed, bad)


def embed_rows(n: int, repeat: int) -> list[Row]:
    """Throughput at 20 ms per request, then the same with 10% of requests throttled."""
    fake_aws_env()
    texts = texts_for(n)
    aws_repeat = 1 if n > _SLOW_REPEAT_ABOVE else repeat
    ceiling_limit = 16  # ours' default max_concurrency
    ceiling = n / (LATENCY * n / ceiling_limit)
    rows: list[Row] = []

    with local_bedrock_process(LATENCY) as endpoint:
        emb = ours(endpoint)
        assert emb.max_concurrency == ceiling_limit  # the ceiling assumes it
        emb.embed_documents(texts_for(32, "warm-up "))  # connections, thread pool
        reference = emb.embed_documents(texts)
        ours_rate = median_of(repeat, lambda: _rate(emb.embed_documents, texts))
        emb.close()
        aws = langchain_aws(endpoint)
        aws.embed_documents(texts_for(4, "warm-up "))
        aws_rate = median_of(aws_repeat, lambda: _rate(aws.embed_documents, texts))

    row = Row(
        name=f"embed throughput, {n:,} texts, {LATENCY * 1000:.0f} ms/request (texts/s)",
        unit="texts/s",
        ours=ours_rate,
        others={"langchain-aws": aws_rate, "ceiling 16 in flight": ceiling},
        target=">= 10x langchain-aws",
    )
    row.met = ours_rate >= 10 * aws_rate
    row.notes = (
        f"LocalBedrock in its own process; ceiling = 16 / {LATENCY} s (ours' default "
        f"max_concurrency); median of {repeat} (ours), {aws_repeat} (langchain-aws, sequential)"
    )
    rows.append(row)

    with local_bedrock_process(LATENCY, throttle_rate=THROTTLE_RATE) as endpoint:
        warm = ours(endpoint)
        warm.embed_documents(texts_for(32, "warm-up "))
        warm.close()
        runs = [_ours_throttled(endpoint, texts, reference) for _ in range(repeat)]
        ours_t = float(np.median([r[0] for r in runs]))
        ours_failed = max(r[1] for r in runs)
        aws_runs = [_aws_throttled(endpoint, texts, reference) for _ in range(aws_repeat)]
        aws_t = float(np.median([r[0] for r in aws_runs]))
        aws_failed = max(r[1] for r in aws_runs)

    row = Row(
        name=f"embed, {THROTTLE_RATE:.0%} of requests throttled, {n:,} texts (texts/s)",
        unit="texts/s",
        ours=ours_t,
        others={"langchain-aws": aws_t},
        target="0 failed texts (ours)",
    )
    row.met = ours_failed == 0
    row.notes = (
        f"failed texts: ours {ours_failed}, langchain-aws {aws_failed} "
        f"(worst of {repeat} / {aws_repeat} runs; failed = error, missing/zero or wrong vector "
        "vs the unthrottled run); langchain-aws driven text by text so one failure does not "
        "hide the rest (its embed_documents raises on the first). Every 10th request is "
        "throttled, evenly: a sequential client's retry never meets a second 429, so botocore's "
        "own retries absorb them; ours' adaptive window halves per burst of 429s"
    )
    rows.append(row)
    return rows
