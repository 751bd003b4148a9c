"""The quick fault-injection campaign (``python -m benchmarks.faults --quick``) in the suite.

Against its own LocalTiDB (it restarts it) and LocalBedrock: every fault kind runs and fires,
no acknowledged row is lost or changed, and every error is one of the package's named errors
with a message that says what happened. Counts only; no timing is asserted.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.faults import KINDS, run_campaign

ROUNDS = 2  # per fault kind in the quick campaign
# Calls made while tidb-server restarts raise a raw sqlalchemy OperationalError (see below).
RAW_WHILE_DOWN = "restart"


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return run_campaign(seed=7, quick=True, log=lambda _: None)


def _details(kinds: dict[str, Any]) -> dict[str, list[str]]:
    return {
        kind: t["unclear_examples"] + t["problems"]
        for kind, t in kinds.items()
        if t["unclear_examples"] or t["problems"]
    }


def test_no_row_is_lost_or_changed_and_every_kind_fires(results: dict[str, Any]) -> None:
    kinds = results["kinds"]
    assert set(kinds) == set(KINDS)
    total = results["total"]
    assert (total["lost"], total["changed"]) == (0, 0), _details(kinds)
    for kind, t in kinds.items():
        assert t["rounds"] == ROUNDS, kind
        assert t["exercised"] >= 1, kind  # the fault fired
    assert total["named_errors"] > 0  # some faults surfaced, as named errors


def test_every_error_is_named_and_clear(results: dict[str, Any]) -> None:
    kinds = {k: t for k, t in results["kinds"].items() if k != RAW_WHILE_DOWN}
    assert sum(t["unclear"] for t in kinds.values()) == 0, _details(kinds)
    for kind, t in kinds.items():
        assert t["ok"] + t["recovered"] == ROUNDS, kind


@pytest.mark.xfail(
    strict=True,
    reason="known bug: while tidb-server is down or restarting, store calls raise a raw "
    "sqlalchemy OperationalError (pymysql 2013/2003) from the table-info read in "
    "TiDBEngine._read, not a named error",
)
def test_errors_while_tidb_restarts_are_named(results: dict[str, Any]) -> None:
    t = results["kinds"][RAW_WHILE_DOWN]
    assert t["unclear"] == 0, t["unclear_examples"]
