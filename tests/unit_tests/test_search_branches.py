"""The memory of which exact-search branch a filter took."""

from __future__ import annotations

from types import SimpleNamespace

from langchain_tidb_bedrock.vectorstores.search import BranchMemory


def _rows(plan: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(plan=plan)]


def test_a_learned_branch_serves_recheck_searches_then_the_guard_decides_again() -> None:
    memory = BranchMemory(recheck=3)
    assert memory.get("f") is None  # never seen: the guarded statement runs
    memory.learn("f", _rows("broad"))
    assert [memory.get("f") for _ in range(4)] == ["broad", "broad", "broad", None]
    memory.learn("f", _rows("selective"))  # the data changed: the guard chose again
    assert memory.get("f") == "selective"


def test_no_row_means_the_selective_branch() -> None:
    memory = BranchMemory()
    memory.learn("nothing matches", [])
    assert memory.get("nothing matches") == "selective"


def test_the_memory_is_bounded() -> None:
    memory = BranchMemory(size=2)
    memory.learn("a", _rows("broad"))
    memory.learn("b", _rows("broad"))
    memory.learn("c", _rows("selective"))  # full: forgets the others first
    assert memory.get("a") is None
    assert memory.get("c") == "selective"
