"""Peak resident memory while ingesting documents that come from a generator.

Each contender runs in its own process (``python -m benchmarks.memory {ours,community} URL N``) so
neither inherits the other's heap; the child measures its RSS once idle (imports done, store
built) and its peak during the ingest (a psutil sampling thread plus ``ru_maxrss``), and prints
one JSON line. Embeddings are ``HashEmbeddings(64)``: cheap, so the store's own memory shows.

    python -m benchmarks.memory ours mysql+pymysql://root@127.0.0.1:4000/test 100000 [--trace]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import HashEmbeddings, Row, legacy_store_class, metadata

DIM = 64
TARGET_MB = 150.0
_MB = 1024 * 1024


def _texts(n: int) -> Iterator[str]:
    return (f"document number {i} about topic {i % 37}, shard {i % 11}" for i in range(n))


def _metas(n: int) -> Iterator[dict[str, Any]]:
    return (metadata(i) for i in range(n))


class PeakSampler:
    """Samples this process's RSS every ``interval`` seconds in a daemon thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.proc = psutil.Process()
        self.interval = interval
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def _ru_maxrss() -> int:
    """Lifetime peak RSS in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _top_allocations(snapshot: tracemalloc.Snapshot, limit: int = 15) -> list[str]:
    stats = snapshot.statistics("traceback")[:limit]
    lines = []
    for stat in stats:
        frames = [f"{f.filename}:{f.lineno}" for f in stat.traceback[-4:]]
        lines.append(f"{stat.size / _MB:8.1f} MB {stat.count:>8} blocks  " + " <- ".join(frames))
    return lines


def child(who: str, url: str, n: int, trace: bool = False) -> dict[str, Any]:
    """Ingest n generated documents with ``who``'s store; returns the measurements."""
    emb = HashEmbeddings(DIM)
    table = f"b_mem_{who}_{uuid.uuid4().hex[:8]}"
    store: Any
    if who == "ours":
        from langchain_tidb_bedrock import TiDBVectorStore

        store = TiDBVectorStore(emb, connection_string=url, table_name=table)
    else:
        legacy = legacy_store_class()
        store = legacy(embedding_function=emb, connection_string=url, table_name=table,
                       distance_strategy="cosine")  # fmt: skip
    gc.collect()
    proc = psutil.Process()
    idle = proc.memory_info().rss
    ru_before = _ru_maxrss()  # may already exceed idle (import-time transients)
    if trace:
        tracemalloc.start(25)
    start = time.perf_counter()
    with PeakSampler() as sampler:
        if who == "ours":
            # Generators all the way: the store reads them batch by batch.
            store.add_texts(_texts(n), _metas(n))
        else:
            # Its add_texts calls list(texts) to embed, then zips the exhausted generator with
            # the vectors: a generator inserts nothing. So its users must materialise lists.
            store.add_texts(list(_texts(n)), list(_metas(n)))
    seconds = time.perf_counter() - start
    traced: dict[str, Any] = {}
    if trace:
        current, peak_traced = tracemalloc.get_traced_memory()
        traced = {
            "traced_current_mb": current / _MB,
            "traced_peak_mb": peak_traced / _MB,
            "top_retained": _top_allocations(tracemalloc.take_snapshot()),
        }
        tracemalloc.stop()
    ru_after = _ru_maxrss()
    # ru_maxrss is a lifetime peak: it says something about the ingest only if it rose during it.
    peak = max(sampler.peak, ru_after) if ru_after > ru_before else sampler.peak
    if who == "ours":
        rows = store.count()
        store.drop_table()
        store.close()
    else:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.begin() as conn:
            rows = conn.execute(sa.text(f"SELECT COUNT(*) FROM `{table}`")).scalar_one()
        store.drop_vectorstore()
        engine.dispose()
    return {
        "who": who,
        "n": n,
        "rows": rows,
        "idle_mb": idle / _MB,
        "peak_mb": peak / _MB,
        "growth_mb": (peak - idle) / _MB,
        "seconds": seconds,
        **traced,
    }


def run_child(who: str, url: str, n: int, trace: bool = False) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, "-m", "benchmarks.memory", who, url, str(n)]
    if trace:
        cmd.append("--trace")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        cmd, cwd=root, capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:
        msg = f"{' '.join(cmd[2:4])} failed ({done.returncode}): {done.stderr[-3000:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["rows"] != n:
        msg = f"{who} stored {result['rows']} of {n} documents"
        raise RuntimeError(msg)
    return result


def memory_row(tidb_url: str, n: int) -> Row:
    """Peak RSS growth (MB) ingesting n generated documents: ours vs langchain-community."""
    ours = run_child("ours", tidb_url, n)
    community = run_child("community", tidb_url, n)
    row = Row(
        name=f"peak RSS growth, ingest {n:,} docs from a generator (MB)",
        unit="MB",
        ours=ours["growth_mb"],
        others={"langchain-community": community["growth_mb"]},
        higher_is_better=False,
        target=f"ours < {TARGET_MB:.0f} MB whatever n",
    )
    row.met = ours["growth_mb"] < TARGET_MB
    row.notes = (
        f"{DIM}d HashEmbeddings, one process each; idle RSS ours {ours['idle_mb']:.0f} MB, "
        f"community {community['idle_mb']:.0f} MB; ingest s: ours {ours['seconds']:.1f}, "
        f"community {community['seconds']:.1f}; community given lists (its add_texts inserts "
        "nothing from a generator), list building counted in its growth"
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("who", choices=["ours", "community"])
    parser.add_argument("url")
    parser.add_argument("n", type=int)
    parser.add_argument("--trace", action="store_true", help="tracemalloc: top retained sites")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("langchain_tidb_bedrock").setLevel(logging.ERROR)
    result = child(args.who, args.url, args.n, trace=args.trace)
    for line in result.pop("top_retained", []):
        print(line, file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
