"""``python -m benchmarks.quality --smoke`` in the test suite: the quality rows still come out.

No timing is asserted (a shared CI box is too noisy), only that every row is there with sane
figures, and that on keyword queries the vector leg misses, hybrid search finds the answer.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import quality
from benchmarks.run import SIZES


@pytest.mark.timeout(600)
def test_quality_rows_at_smoke_size(tidb_url: str) -> None:
    rows = quality.run(tidb_url, SIZES["smoke"])
    names = [r.name for r in rows]
    assert len(rows) == 6, names
    for row in rows:
        assert row.unit
        assert row.target
        assert row.ours >= 0
        assert not math.isnan(row.ours), row
    recall = [r for r in rows if r.name.startswith("recall@4, ") and "misses" not in r.name]
    assert len(recall) == 3
    for row in recall:
        assert set(row.others) == {"vector", "vector+rerank", "hybrid+rerank"}
        assert all(0.0 <= v <= 1.0 for v in row.others.values())
    keyword = next(r for r in recall if r.name.startswith("recall@4, keyword queries"))
    assert keyword.ours > keyword.others["vector"]  # identifiers: the keyword leg's job
    latency, ingest = rows[-2], rows[-1]
    assert latency.others["vector only"] > 0
    assert ingest.others["without"] > 0
