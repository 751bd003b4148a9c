"""Store operations driven by a scripted handler: the plans' logic, with no database.

Each operation is a generator of requests; ``drive`` answers them from a script, so these tests
pin what an operation asks for and how it reacts to each answer.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from langchain_tidb_bedrock.db.bulk import LoadRows
from langchain_tidb_bedrock.db.runner import (
    EmbedDocs,
    Read,
    Request,
    Write,
    drive,
    read,
)
from langchain_tidb_bedrock.errors import FilterError
from langchain_tidb_bedrock.vectorstores import documents
from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy, TableInfo
from langchain_tidb_bedrock.vectorstores.search import Search
from langchain_tidb_bedrock.vectorstores.table import TableState
from langchain_tidb_bedrock.vectorstores.writes import Writer

Row = namedtuple("Row", ["id", "document", "meta", "distance"])
COLUMNS = [
    ("id", "varchar(128)", ""),
    ("embedding", "vector(3)", ""),
    ("document", "mediumtext", ""),
    ("meta", "json", ""),
]


def _sql(request: Read | Write) -> str:
    stmt = request.statement if isinstance(request, Read) else request.steps[0]
    if isinstance(stmt, str):
        return stmt
    return str(stmt.compile(dialect=mysql.dialect()))  # type: ignore[union-attr]


def _table(*, index_ready: bool = False, tiflash: bool = False) -> TableState:
    table = TableState(
        "t", strategy=DistanceStrategy.COSINE, dimension=3, vector_index=None, host="127.0.0.1"
    )
    table.info = TableInfo(
        dimension=3,
        id_length=128,
        legacy_metric=None,
        columns=frozenset({"id", "embedding", "document", "meta"}),
    )
    table._tiflash = tiflash
    table.index_ready = index_ready
    return table


class Script:
    """Answers requests in order with the given callables; records every request."""

    def __init__(self, *answers: Callable[[Request], Any]) -> None:
        self.answers = list(answers)
        self.seen: list[Request] = []

    def __call__(self, request: Request) -> Any:
        self.seen.append(request)
        if not self.answers:
            pytest.fail(f"unexpected request {request!r}")
        return self.answers.pop(0)(request)


def _rows(n: int, *, null_first: int = 0) -> list[Row]:
    rows = [Row(f"n{i}", "x", "{}", None) for i in range(null_first)]
    return rows + [Row(f"r{i}", "x", "{}", 0.1 * i) for i in range(n)]


def test_typed_read_helper_returns_the_rows() -> None:
    def op() -> Any:
        rows = yield from read("SELECT 1")
        return rows

    assert drive(op(), lambda req: [(1,)]) == [(1,)]


def test_post_filter_widens_the_candidates_until_k_match() -> None:
    search = Search(_table(index_ready=True), "auto")
    script = Script(
        lambda r: _rows(1),  # 30 candidates: one matches
        lambda r: [(500,)],  # count(*)
        lambda r: _rows(2),  # 120 candidates: two match
        lambda r: _rows(3),  # 480 candidates: k=3 reached
    )
    docs = drive(search.op_by_vector([1.0, 0.0, 0.0], 3, {"a": 1}, None), script)
    assert [d.id for d, _ in docs] == ["r0", "r1", "r2"]
    limits = [_sql(r) for r in script.seen if "count" not in _sql(r)]
    assert ["LIMIT %s" in s for s in limits] == [True, True, True]
    params = [
        r.statement.compile(dialect=mysql.dialect()).params
        for r in script.seen  # type: ignore[union-attr]
        if isinstance(r, Read) and "count" not in _sql(r)
    ]
    assert [p["param_1"] for p in params] == [30, 120, 480]  # k * 10, then x4 each time


def test_post_filter_stops_when_the_table_is_exhausted() -> None:
    search = Search(_table(index_ready=True), "post")
    script = Script(lambda r: _rows(1), lambda r: [(100,)], lambda r: _rows(2))  # 50, then all 100
    docs = drive(search.op_by_vector([1.0, 0.0, 0.0], 5, {"a": 1}, None), script)
    assert len(docs) == 2
    assert len(script.seen) == 3


def test_null_distances_widen_the_limit_and_are_dropped() -> None:
    search = Search(_table(), "pre")
    script = Script(
        lambda r: _rows(2, null_first=2),  # k=4: two NULL rows took slots
        lambda r: _rows(4, null_first=2),  # asked again for 6
    )
    docs = drive(search.op_by_vector([1.0, 0.0, 0.0], 4, None, None), script)
    assert [d.id for d, _ in docs] == ["r0", "r1", "r2", "r3"]
    assert len(script.seen) == 2


def _writer(bulk: bool = True) -> Writer:
    return Writer(_table(), batch_size=10, show_progress=False, bulk_load=bulk)


def _raise(exc: BaseException) -> Callable[[Request], Any]:
    def answer(_: Request) -> Any:
        raise exc

    return answer


def test_load_data_refused_switches_to_insert_for_good() -> None:
    writer = _writer()
    refused = sa.exc.OperationalError("LOAD DATA", {}, Exception(1148, "not allowed"))
    script = Script(_raise(refused), lambda r: 2)
    ids = drive(writer.op_add(["a", "b"], None, ["1", "2"], [[1, 0, 0], [0, 1, 0]], None), script)
    assert ids == ["1", "2"]
    assert isinstance(script.seen[0], Write)
    assert isinstance(script.seen[0].steps[0], LoadRows)
    assert isinstance(script.seen[1], Write)
    assert isinstance(script.seen[1].steps[0], tuple)
    assert writer.bulk_load is False


def test_load_data_passing_fault_retries_the_batch_with_insert_but_keeps_bulk() -> None:
    writer = _writer()
    fault = sa.exc.OperationalError("LOAD DATA", {}, Exception(2013, "lost connection"))
    script = Script(_raise(fault), lambda r: 1)
    drive(writer.op_add(["a"], None, ["1"], [[1, 0, 0]], None), script)
    assert isinstance(script.seen[1], Write)
    assert isinstance(script.seen[1].steps[0], tuple)
    assert writer.bulk_load is True


def test_load_data_refused_file_request_is_not_retried() -> None:
    writer = _writer()
    script = Script(_raise(PermissionError("refused the server's request for local file")))
    with pytest.raises(PermissionError):
        drive(writer.op_add(["a"], None, ["1"], [[1, 0, 0]], None), script)
    assert len(script.seen) == 1


def test_embedding_request_carries_the_whole_batch() -> None:
    writer = _writer(bulk=False)
    script = Script(lambda r: [[1, 0, 0], [0, 1, 0]], lambda r: 2)
    drive(writer.op_add(["a", "b"], None, None, None, None), script)
    assert isinstance(script.seen[0], EmbedDocs)
    assert script.seen[0].texts == ["a", "b"]


def test_absence_is_never_cached() -> None:
    table = TableState("t", strategy=None, dimension=None, vector_index=None, host="127.0.0.1")
    table._tiflash = False
    assert drive(documents.op_count(table), Script(lambda r: [])) == 0
    # Another process creates and fills the table: the next call sees it.
    script = Script(lambda r: COLUMNS, lambda r: [(7,)])
    assert drive(documents.op_count(table), script) == 7


def test_delete_with_ids_and_filter_deletes_only_the_intersection() -> None:
    table = _table()
    script = Script(lambda r: 1)
    drive(documents.op_delete(table, ["a", "b"], {"tenant": "x"}), script)
    assert len(script.seen) == 1
    sql = _sql(script.seen[0])  # type: ignore[arg-type]
    assert "t.id IN (" in sql
    assert ") AND JSON_EXTRACT(t.meta" in sql  # the filter narrows the id list, one statement


@pytest.mark.parametrize("bad", [[], (), 0, False, "", [("a", 1)]])
def test_non_dict_filters_are_refused_even_when_falsy(bad: object) -> None:
    table = _table()
    with pytest.raises(FilterError, match="must be a dict"):
        drive(documents.op_get(table, bad, None), Script())
    with pytest.raises(FilterError, match="must be a dict"):
        drive(Search(table, "pre").op_by_vector([1.0, 0, 0], 1, bad, None), Script())  # type: ignore[arg-type]
    with pytest.raises(FilterError, match="must be a dict"):
        drive(documents.op_delete(table, None, bad), Script())


def test_empty_dict_filter_still_means_no_filter() -> None:
    table = _table()
    script = Script(lambda r: [])
    assert drive(documents.op_get(table, {}, None), script) == []
    assert "WHERE" not in _sql(script.seen[0])  # type: ignore[arg-type]


def test_a_write_failing_mid_input_says_how_many_rows_are_stored() -> None:
    from langchain_tidb_bedrock.errors import WriteError

    writer = Writer(_table(), batch_size=2, show_progress=False, bulk_load=False)
    lost = sa.exc.OperationalError("INSERT", {}, Exception(2013, "Lost connection to 'host'"))
    script = Script(lambda r: 2, _raise(lost))  # batch 0-1 commits, batch 2-3 fails
    texts = ["secret a", "secret b", "secret c", "secret d"]
    with pytest.raises(WriteError) as caught:
        drive(writer.op_add(texts, None, None, [[1, 0, 0]] * 4, None), script)
    assert caught.value.committed == 2
    assert caught.value.position == 2
    message = str(caught.value)
    assert "documents 2-3" in message
    assert "2013" in message
    assert "secret" not in message
    assert "'host'" not in message  # quoted values from the driver are scrubbed
