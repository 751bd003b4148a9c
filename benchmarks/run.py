"""``make bench``: every benchmark on a local TiDB and LocalBedrock, one table of ratios.

python -m benchmarks.run            # full sizes (several minutes)
python -m benchmarks.run --smoke    # tiny sizes, seconds: keeps the benchmarks working in CI
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

from benchmarks.common import Row, dumps
from langchain_tidb_bedrock.local import LocalTiDB

SIZES = {
    "full": {
        "ingest": 20_000,
        "search_docs": 20_000,
        "queries": 200,
        "repeat": 3,
        "embed": 1_000,
        "e2e": 1_000,
        "memory": 100_000,
        "network_docs": 500,
        "network_queries": 60,
        "scale": [20_000, 80_000, 200_000],
        "scale_queries": 9,
        "async_ingest": 20_000,
        "indexing": 10_000,
        "cache_queries": 50,
        "chat_turns": 200,
        "filter_docs": 60_000,
        "filter_queries": 30,
        "quality_docs": 20_000,
        "quality_queries": 100,
        "rerank_docs": 2_000,
        "rerank_questions": 40,
        "agent_steps": 200,
        "agent_items": 10_000,
        "agent_queries": 100,
        "startup_runs": 7,
        "llama_index_nodes": 20_000,
        "llama_index_queries": 200,
    },
    "smoke": {
        "ingest": 300,
        "search_docs": 300,
        "queries": 10,
        "repeat": 1,
        "embed": 40,
        "e2e": 30,
        "memory": 2_000,
        "network_docs": 200,
        "network_queries": 3,
        "scale": [300, 600],
        "scale_queries": 1,
        "async_ingest": 300,
        "indexing": 300,
        "cache_queries": 3,
        "chat_turns": 10,
        "filter_docs": 600,
        "filter_queries": 3,
        "quality_docs": 600,
        "quality_queries": 10,
        "rerank_docs": 200,
        "rerank_questions": 4,
        "agent_steps": 20,
        "agent_items": 500,
        "agent_queries": 10,
        "startup_runs": 1,
        "llama_index_nodes": 300,
        "llama_index_queries": 10,
    },
}


def _fmt(v: float) -> str:
    return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"


def print_table(rows: list[Row]) -> None:
    print()
    print(f"{'benchmark':<52} {'ours':>10}  {'alternatives (ratio: >1 = ours leads)':<60} target")
    for r in rows:
        others = "  ".join(f"{k} {_fmt(v)} ({r.ratio(k):.2f}x)" for k, v in r.others.items())
        verdict = "" if r.met is None else ("MET" if r.met else "MISSED")
        print(f"{r.name:<52} {_fmt(r.ours):>10}  {others:<60} {verdict}")
        if r.notes:
            print(f"{'':<52} {'':>10}  {r.notes}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="subset: ingest search embed e2e network async_ingest scale memory indexing cache "
        "chat filters quality agent_memory startup llama_index rerank",
    )
    args = parser.parse_args(argv)
    logging.getLogger("langchain_tidb_bedrock").setLevel(logging.ERROR)  # "exact kNN" notices
    size = SIZES["smoke" if args.smoke else "full"]
    everything = [
        "ingest", "search", "embed", "e2e", "network", "async_ingest", "scale", "memory",
        "indexing", "cache", "chat", "filters", "quality", "agent_memory", "startup",
        "llama_index", "rerank",
    ]  # fmt: skip
    wanted = set(args.only or everything)
    rows: list[Row] = []
    started = time.time()
    with LocalTiDB() as tidb:
        from benchmarks import store

        if "ingest" in wanted:
            # Ingest swings most between runs here: five round-robin repeats.
            rows.append(store.ingest_row(tidb.url, size["ingest"], max(1, size["repeat"] * 5 // 3)))
            print_table(rows[-1:])
        if "search" in wanted:
            rows += store.search_rows(tidb.url, size["search_docs"], size["queries"])
            print_table(rows[-2:])
        if "embed" in wanted:
            from benchmarks import embed

            rows += embed.embed_rows(size["embed"], size["repeat"])
            print_table(rows[-2:])
        if "e2e" in wanted:
            from benchmarks import e2e

            rows.append(e2e.e2e_row(tidb.url, size["e2e"], size["repeat"]))
            print_table(rows[-1:])
        if "network" in wanted:
            from benchmarks import scale

            rows += scale.network_rows(tidb.url, size["network_docs"], size["network_queries"])
            print_table(rows[-2:])
        if "async_ingest" in wanted:
            from benchmarks import scale

            rows += scale.ingest_rows(tidb.url, size["async_ingest"], size["repeat"])
            print_table(rows[-1:])
        if "scale" in wanted:
            from benchmarks import scale

            scale_rows = scale.scale_rows(tidb.url, size["scale"], size["scale_queries"])
            rows += scale_rows
            print_table(scale_rows)
        if "indexing" in wanted:
            from benchmarks import indexing

            rows += indexing.index_rows(tidb.url, size["indexing"], size["repeat"])
            print_table(rows[-2:])
        if "cache" in wanted:
            from benchmarks import indexing

            rows.append(indexing.semantic_cache_row(tidb.url, size["cache_queries"]))
            print_table(rows[-1:])
        if "chat" in wanted:
            from benchmarks import chat_history

            rows.append(chat_history.chat_history_row(tidb.url, size["chat_turns"]))
            print_table(rows[-1:])
        if "filters" in wanted:
            from benchmarks import filters

            rows += filters.filter_rows(tidb.url, size["filter_docs"], size["filter_queries"])
            print_table(rows[-2:])
        if "quality" in wanted:
            from benchmarks import quality

            quality_rows = quality.run(tidb.url, size)
            rows += quality_rows
            print_table(quality_rows)
        if "agent_memory" in wanted:
            from benchmarks import agent_memory

            rows += agent_memory.agent_memory_rows(
                tidb.url, size["agent_steps"], size["agent_items"], size["agent_queries"]
            )
            print_table(rows[-3:])
        if "startup" in wanted:
            from benchmarks import startup

            rows.append(startup.startup_row(tidb.url, size["startup_runs"]))
            print_table(rows[-1:])
        if "rerank" in wanted:
            from benchmarks import rerank

            rows.append(rerank.rerank_row(tidb.url, size["rerank_docs"], size["rerank_questions"]))
            print_table(rows[-1:])
        if "llama_index" in wanted:
            from benchmarks import llamaindex_rows

            li_rows = llamaindex_rows.llama_index_rows(
                tidb.url,
                size["llama_index_nodes"],
                size["llama_index_queries"],
                size["embed"],
                size["repeat"],
            )
            rows += li_rows
            print_table(li_rows)
        if "memory" in wanted:
            from benchmarks import memory

            rows.append(memory.memory_row(tidb.url, size["memory"]))
            print_table(rows[-1:])
    print("\n=== summary", "(smoke sizes)" if args.smoke else "", "===")
    print_table(rows)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / ("smoke.json" if args.smoke else "latest.json")).write_text(
        dumps(
            {
                "machine": f"{platform.platform()} / {platform.processor() or platform.machine()}",
                "python": sys.version.split()[0],
                "seconds": round(time.time() - started, 1),
                "rows": [r.__dict__ for r in rows],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
