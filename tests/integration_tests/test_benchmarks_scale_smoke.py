"""The issue-12 benchmark rows at tiny sizes: each still runs and yields positive figures.

No timing is asserted (a shared CI box is too noisy); the full figures are in BENCHMARKS.md.
"""

from __future__ import annotations

from benchmarks import scale
from benchmarks.common import Row


def _check(row: Row) -> None:
    assert row.ours > 0, row
    assert row.others, row
    assert all(v > 0 for v in row.others.values()), row
    assert row.target, row
    assert row.met is not None, row


def test_network_rows_count_one_round_trip_per_search(tidb_url: str) -> None:
    rows = scale.network_rows(tidb_url, 100, 2)
    assert [r.name.split(",")[1].strip() for r in rows] == ["unfiltered", "filtered 1%"]
    for row in rows:
        _check(row)
        assert set(row.others) == {"ours async", "one raw statement", "langchain-community"}
        assert row.notes.endswith(": 1.00"), row.notes  # counted by the proxy


def test_async_ingest_row(tidb_url: str) -> None:
    (row,) = scale.ingest_rows(tidb_url, 200, 1)
    _check(row)
    assert set(row.others) == {"ours sync", "raw LOAD DATA"}


def test_scale_rows_cover_every_size_and_selectivity(tidb_url: str) -> None:
    rows = scale.scale_rows(tidb_url, [200, 400], 1)
    assert len(rows) == 2 * 3 + 1
    for row in rows:
        _check(row)
    assert rows[-1].name.startswith("indexed key filter")
