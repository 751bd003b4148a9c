"""Embedding under Bedrock quotas: ours vs langchain-aws ``BedrockEmbeddings``.

LocalBedrock runs in its own process with a requests-per-minute quota (a one-second token
bucket per model, as on the service) and 20 ms per request. Each client embeds the same texts;
the row reports the time against the quota's ideal (the texts beyond the bucket's first second,
at the quota rate), the texts that were not embedded, and the share of requests answered 429.

python -m benchmarks.quota            # 1,000 texts at 600 and 2,000/min; 100 at 60/min
python -m benchmarks.quota --quick    # a tenth of the texts (the 60/min row: 20)

At 60 requests/min 1,000 texts take ~17 minutes per client, so that row embeds fewer texts
(``SIXTY_PER_MINUTE_TEXTS``) and says so in its name.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from langchain_aws import BedrockEmbeddings

from benchmarks.common import Row
from benchmarks.embed import (
    MODEL_ID,
    REGION,
    _count_bad,
    _free_port,
    fake_aws_env,
    texts_for,
)
from langchain_tidb_bedrock import BedrockTitanEmbeddings
from langchain_tidb_bedrock.embeddings.titan import PartialEmbeddingError
from langchain_tidb_bedrock.local import _standin_models

LATENCY = 0.02
QUOTAS = (60, 600, 2_000)  # requests per minute
TEXTS = 1_000
SIXTY_PER_MINUTE_TEXTS = 100
TARGET_RATIO = 1.3


@contextlib.contextmanager
def quota_server(requests_per_minute: float) -> Iterator[str]:
    """``python -m langchain_tidb_bedrock.local bedrock`` with a quota, in a child process."""
    import socket
    import subprocess

    port = _free_port()
    cmd = [
        sys.executable, "-m", "langchain_tidb_bedrock.local", "bedrock", "--port", str(port),
        "--latency", str(LATENCY), "--requests-per-minute", str(requests_per_minute),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _count_attempts(client: Any) -> dict[str, int]:
    """Counts every HTTP attempt of ``client`` and the 429s among them (retries included)."""
    counts = {"attempts": 0, "throttled": 0}

    def seen(response: Any = None, **_: Any) -> None:
        counts["attempts"] += 1
        if response is not None and response[0] is not None and response[0].status_code == 429:
            counts["throttled"] += 1

    client.meta.events.register("needs-retry.bedrock-runtime.InvokeModel", seen)
    return counts


def _run(
    make: Callable[[str], Any], embed: Callable[[Any, list[str]], tuple[list[Any], int]], rpm: int
) -> tuple[float, int, float]:
    """(seconds, failed texts, throttled share) for one client on a fresh quota."""
    texts = texts_for(_texts(rpm), salt=f"{rpm} ")
    reference = [_standin_models.embed(t, 1024, normalize=True) for t in texts]
    with quota_server(rpm) as endpoint:
        emb = make(endpoint)
        counts = _count_attempts(emb.client)
        start = time.perf_counter()
        got, failed = embed(emb, texts)
        elapsed = time.perf_counter() - start
    failed = max(failed, _count_bad(got, reference))
    return elapsed, failed, counts["throttled"] / max(1, counts["attempts"])


def _ours(emb: BedrockTitanEmbeddings, texts: list[str]) -> tuple[list[Any], int]:
    try:
        return emb.embed_documents(texts), 0
    except PartialEmbeddingError as err:
        return [v or [] for v in err.vectors], len(err.failed_indices)


def _aws(emb: BedrockEmbeddings, texts: list[str]) -> tuple[list[Any], int]:
    # Its embed_documents raises on the first failure: drive it text by text, as a user would.
    got: list[Any] = []
    failed = 0
    for text in texts:
        try:
            got.append(emb.embed_documents([text])[0])
        except Exception:  # counted: botocore's retries did not get it through
            failed += 1
            got.append([])
    return got, failed


_SCALE = 1.0


def _texts(rpm: int) -> int:
    n = SIXTY_PER_MINUTE_TEXTS if rpm == 60 else TEXTS
    return max(10, int(n * _SCALE))


def ideal_seconds(n: int, rpm: float) -> float:
    """The quota's floor: the first second's bucket at once, the rest at the quota rate."""
    per_second = rpm / 60
    return max(0.0, n - max(1.0, per_second)) / per_second


def quota_rows(scale: float = 1.0) -> list[Row]:
    """One row per quota: time vs ideal, failed texts, throttled share."""
    global _SCALE  # noqa: PLW0603 - a module-level size knob for this script
    _SCALE = scale
    fake_aws_env()
    # langchain-aws logs every failed call with its traceback: keep the table readable.
    logging.getLogger("langchain_aws").setLevel(logging.CRITICAL)
    rows: list[Row] = []
    for rpm in QUOTAS:
        n = _texts(rpm)
        ideal = ideal_seconds(n, rpm)
        ours = _run(
            lambda url: BedrockTitanEmbeddings(endpoint_url=url, region_name=REGION), _ours, rpm
        )
        aws = _run(
            lambda url: BedrockEmbeddings(model_id=MODEL_ID, endpoint_url=url, region_name=REGION),
            _aws,
            rpm,
        )
        scaled = "" if n == TEXTS else f" (scaled from {TEXTS:,})"
        row = Row(
            name=f"quota {rpm:,} requests/min, {n:,} texts{scaled} (time / ideal)",
            unit="x ideal",
            ours=ours[0] / ideal,
            others={"langchain-aws": aws[0] / ideal},
            higher_is_better=False,
            target=f"<= {TARGET_RATIO}x ideal, 0 failed (ours)",
        )
        row.met = ours[0] / ideal <= TARGET_RATIO and ours[1] == 0
        row.notes = (
            f"ideal {ideal:.1f} s; ours {ours[0]:.1f} s, {ours[1]} failed, "
            f"{ours[2]:.0%} of requests throttled; langchain-aws {aws[0]:.1f} s, {aws[1]} "
            f"failed, {aws[2]:.0%} throttled (botocore standard retries, 3 attempts)"
        )
        rows.append(row)
        from benchmarks.run import print_table

        print_table(rows[-1:])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quota")
    parser.add_argument("--quick", action="store_true", help="a tenth of the texts")
    args = parser.parse_args(argv)
    rows = quota_rows(0.1 if args.quick else 1.0)
    from benchmarks.run import print_table

    print("\n=== quota summary ===")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
