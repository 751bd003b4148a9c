"""``make bench-smoke`` in the test suite: every benchmark row at tiny sizes still runs.

No timing is asserted (a shared 2-core CI box is too noisy); only that every row comes out with
positive figures, that ours embeds every text under throttling, and that no LocalBedrock child
process is left behind.
"""

from __future__ import annotations

import re

import psutil
import pytest

from benchmarks import e2e, embed, memory, store
from benchmarks.common import Row
from benchmarks.run import SIZES, print_table

SMOKE = SIZES["smoke"]


def _bedrock_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "langchain_tidb_bedrock.local" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _check(row: Row) -> None:
    assert row.ours > 0, row
    assert row.others, row
    assert all(v > 0 for v in row.others.values()), row
    assert row.unit, row
    assert row.target, row


@pytest.mark.timeout(600)
def test_smoke_rows(tidb_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows: list[Row] = [store.ingest_row(tidb_url, SMOKE["ingest"], SMOKE["repeat"])]
    rows += store.search_rows(tidb_url, SMOKE["search_docs"], SMOKE["queries"])
    embed_rows = embed.embed_rows(SMOKE["embed"], SMOKE["repeat"])
    rows += embed_rows
    assert not _bedrock_children(), "a LocalBedrock process outlived its benchmark"
    rows.append(e2e.e2e_row(tidb_url, SMOKE["e2e"], SMOKE["repeat"]))
    assert not _bedrock_children(), "a LocalBedrock process outlived its benchmark"
    rows.append(memory.memory_row(tidb_url, SMOKE["memory"]))

    assert len(rows) == 7
    for row in rows:
        _check(row)

    assert len(embed_rows) == 2
    throttled = embed_rows[1]
    match = re.search(r"failed texts: ours (\d+), langchain-aws (\d+)", throttled.notes)
    assert match, throttled.notes
    assert int(match.group(1)) == 0, throttled.notes
    assert throttled.met is True

    print_table(rows)
    table = capsys.readouterr().out
    for row in rows:
        assert row.name in table


def test_filter_rows_smoke(tidb_url: str) -> None:
    from benchmarks import filters

    rows = filters.filter_rows(tidb_url, SMOKE["filter_docs"], SMOKE["filter_queries"])
    assert [r.name.split(" (")[0] for r in rows] == [
        "filtered search p50 ms, boolean flag = true",
        "filtered search p50 ms, string equality",
    ]
    for row in rows:
        _check(row)


@pytest.mark.timeout(600)
def test_agent_memory_rows_smoke(tidb_url: str) -> None:
    from benchmarks import agent_memory

    rows = agent_memory.agent_memory_rows(
        tidb_url, SMOKE["agent_steps"], SMOKE["agent_items"], SMOKE["agent_queries"]
    )
    assert [r.name.split(" p50")[0] for r in rows] == [
        "checkpoint put",
        "checkpoint get_tuple",
        "store search",
    ]
    for row in rows:
        _check(row)
        assert row.met is not None


@pytest.mark.timeout(600)
def test_startup_row_smoke(tidb_url: str) -> None:
    from benchmarks import startup

    row = startup.startup_row(tidb_url, SMOKE["startup_runs"])
    _check(row)
    assert row.met is not None
    assert re.search(r"ask \d+\.\d+x the deps' import", row.notes), row.notes
    assert not _bedrock_children(), "the startup benchmark left its LocalBedrock running"


@pytest.mark.timeout(600)
def test_llama_index_rows_smoke(tidb_url: str) -> None:
    import sqlalchemy as sa

    from benchmarks import llamaindex_rows

    rows = llamaindex_rows.llama_index_rows(
        tidb_url,
        SMOKE["llama_index_nodes"],
        SMOKE["llama_index_queries"],
        SMOKE["embed"],
        SMOKE["repeat"],
    )
    assert [r.name.split(",")[0] for r in rows] == [
        "llama_index ingest",
        "llama_index query p50 ms",
        "llama_index query p50 ms",
        "llama_index embed",
    ]
    for row in rows:
        _check(row)
        assert row.met is not None
    # Same results as the plain statement; the filter kept; the same vectors as the other client.
    for row in rows[1:3]:
        assert "results differing from raw: ours 0, tidbvector 0" in row.notes, row.notes
    assert "short/off-filter results: ours 0, theirs 0, raw 0" in rows[2].notes, rows[2].notes
    assert "vectors differing from ours on the first 20 texts: 0" in rows[3].notes, rows[3].notes
    assert not _bedrock_children(), "the llama_index benchmark left its LocalBedrock running"
    engine = sa.create_engine(tidb_url)
    try:
        with engine.connect() as conn:
            left = conn.execute(sa.text("SHOW TABLES LIKE 'b\\_li\\_%'")).fetchall()
    finally:
        engine.dispose()
    assert left == [], "the llama_index benchmark left its tables behind"


@pytest.mark.timeout(600)
def test_rerank_row_smoke(tidb_url: str) -> None:
    from benchmarks import rerank

    row = rerank.rerank_row(tidb_url, SMOKE["rerank_docs"], SMOKE["rerank_questions"])
    _check(row)
    assert row.met is not None
    # Counted, not timed: rerank adds exactly one Rerank call per question and nothing else.
    assert "rerank {'ConverseStream': 1.0, 'InvokeModel': 1.0, 'Rerank': 1.0}" in row.notes
    assert "without {'ConverseStream': 1.0, 'InvokeModel': 1.0}" in row.notes
