"""The record manager and semantic-cache benchmark rows run at tiny sizes (no timing asserted)."""

from __future__ import annotations

import psutil
import pytest

from benchmarks import indexing
from benchmarks.run import SIZES

SMOKE = SIZES["smoke"]


@pytest.mark.timeout(300)
def test_indexing_and_cache_rows(tidb_url: str) -> None:
    rows = indexing.index_rows(tidb_url, SMOKE["indexing"], 1)
    rows.append(indexing.semantic_cache_row(tidb_url, SMOKE["cache_queries"]))
    assert len(rows) == 3
    for row in rows:
        assert row.ours > 0, row
        assert row.others, row
        assert all(v > 0 for v in row.others.values()), row
        assert row.target, row
    left = [
        c for c in psutil.Process().children(recursive=True)
        if "langchain_tidb_bedrock.local" in " ".join(c.cmdline())
    ]  # fmt: skip
    assert not left, "a LocalBedrock process outlived its benchmark"
