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
    # Calls made while tidb-server restarts included: TiDBConnectionError, never a raw driver error.
    kinds = results["kinds"]
    assert sum(t["unclear"] for t in kinds.values()) == 0, _details(kinds)
    for kind, t in kinds.items():
        assert t["ok"] + t["recovered"] == ROUNDS, kind
