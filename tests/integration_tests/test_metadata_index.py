"""Indexed metadata keys: DDL on a real TiDB, recognition on reopen, plans, unchanged semantics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.vectorstores import search
from langchain_tidb_bedrock.vectorstores.metadata_index import declare

DIM = 3
INDEXED = {"tenant": str, "year": int, "tags": list[str]}
LONG = "x" * 300  # longer than the 255 characters the column keeps

StoreFactory = Callable[..., TiDBVectorStore]


@pytest.fixture
def make_store(tidb_url: str) -> Iterator[StoreFactory]:
    made: list[TiDBVectorStore] = []
    name = f"mi_{uuid.uuid4().hex[:12]}"

    def make(**kwargs: Any) -> TiDBVectorStore:
        kwargs.setdefault("table_name", name)
        store = TiDBVectorStore(None, connection_string=tidb_url, embedding_dimension=DIM, **kwargs)
        made.append(store)
        return store

    yield make
    made[0].drop_table()
    for store in made:
        store.close()


def _rows() -> tuple[list[str], list[list[float]], list[dict[str, Any]]]:
    metas: list[dict[str, Any]] = [
        {"tenant": "acme", "year": 2024, "tags": ["a", "b"]},
        {"tenant": "1", "year": 2024.0, "tags": ["b"]},
        {"tenant": 1, "year": "2024", "tags": "a"},  # wrong JSON types on purpose
        {"tenant": LONG, "year": 2**53 + 1, "tags": []},
        {"tenant": LONG + "y", "year": 2**53},
        {"year": True},
    ]
    vectors = [[1.0, 0.1 * i, 0.0] for i in range(len(metas))]
    return [f"doc {i}" for i in range(len(metas))], vectors, metas


def _ids(store: TiDBVectorStore, filter: dict[str, Any], strategy: str = "pre") -> list[str]:
    hits = store.similarity_search_with_score_by_vector(
        [1.0, 0.0, 0.0], k=10, filter=filter, filter_strategy=strategy
    )
    return sorted(str(d.id) for d, _ in hits)


def _plan(store: TiDBVectorStore, filter: dict[str, Any]) -> str:
    stmt = store._table.queries.prefilter_template(4, filter).params(qv="[1,0,0]")
    sql = str(stmt.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        return "\n".join(
            str(r[0]) + " " + str(r[3]) for r in conn.exec_driver_sql("EXPLAIN " + sql)
        )


def _rare_and_common(make_store: StoreFactory) -> TiDBVectorStore:
    """60 rows: ``rare`` holds for one of them, ``common`` for all."""
    store = make_store()
    n = 60
    store.add_embeddings(
        [f"d{i}" for i in range(n)],
        [[1.0, float(i), 0.0] for i in range(n)],
        [{"rare": i == 7, "common": True} for i in range(n)],
        ids=[f"{i:03d}" for i in range(n)],
    )
    return store


def _reads(store: TiDBVectorStore) -> list[str]:
    """The SQL of every statement the store's read pool sends from now on."""
    sent: list[str] = []
    sa.event.listen(store._engines.sync_read, "before_cursor_execute", lambda *a: sent.append(a[2]))
    return sent


def test_declarations_are_validated() -> None:
    assert declare("a.b", "str").path == ("a", "b")
    assert declare("tags", list[str]).kind == "list"
    assert declare("year", int).kind == declare("score", float).kind == "number"
    with pytest.raises(ValueError, match="unsupported type"):
        declare("flag", bool)
    with pytest.raises(ValueError, match="unsupported type"):
        declare("ids", list[int])
    for bad in ("", "$and", "a'b", 'x"); DROP TABLE t; --'):
        with pytest.raises(ValueError, match="indexed_metadata key"):
            declare(bad, str)
    with pytest.raises(ValueError, match="dict of key -> type"):
        TiDBVectorStore(None, connection_string="mysql+pymysql://u@h/db", indexed_metadata=["a"])  # type: ignore[arg-type]


def test_indexes_are_created_with_the_table_and_recognised_on_reopen(
    make_store: StoreFactory,
) -> None:
    store = make_store(indexed_metadata=INDEXED)
    store.add_embeddings(*_rows())
    assert store.indexed_metadata == {"tenant": "str", "year": "int", "tags": "list[str]"}
    reopened = TiDBVectorStore.from_existing_table(
        None, store.table_name, connection_string=store._url
    )
    try:
        assert reopened.indexed_metadata == store.indexed_metadata
        assert len(reopened._table.metadata_indexes) == 3
        # The selective branch reads the index; the scan branch is folded away.
        for flt, index in (
            ({"tenant": "acme"}, store._table.metadata_indexes[("tenant",)].index),
            ({"tenant": {"$in": ["acme", "x"]}}, store._table.metadata_indexes[("tenant",)].index),
            ({"tags": {"$contains": "a"}}, store._table.metadata_indexes[("tags",)].index),
        ):
            plan = _plan(reopened, flt)
            assert f"index:{index}" in plan, plan
            assert "TableDual" in plan
    finally:
        reopened.close()


@pytest.mark.parametrize("strategy", ["pre", "post"])
def test_json_typing_is_unchanged_on_indexed_keys(make_store: StoreFactory, strategy: str) -> None:
    store = make_store(indexed_metadata=INDEXED)
    store.add_embeddings(*_rows(), ids=[str(i) for i in range(6)])
    assert _ids(store, {"tenant": "1"}, strategy) == ["1"]  # never the number 1
    assert _ids(store, {"tenant": 1}, strategy) == ["2"]  # never the string "1"
    assert _ids(store, {"year": 2024}, strategy) == ["0", "1"]  # 2024 == 2024.0, not "2024"
    assert _ids(store, {"year": {"$in": [2024, "2024"]}}, strategy) == ["0", "1", "2"]
    assert _ids(store, {"year": 2**53 + 1}, strategy) == ["3"]  # integers compare exactly
    assert _ids(store, {"year": {"$gt": 2**53}}, strategy) == ["3"]  # not loosened
    assert _ids(store, {"year": {"$gte": 2024, "$lt": 2025}}, strategy) == ["0", "1"]
    assert _ids(store, {"year": True}, strategy) == ["5"]
    # Past the 255 characters the column keeps, the JSON condition still tells them apart.
    assert _ids(store, {"tenant": LONG}, strategy) == ["3"]
    assert _ids(store, {"tenant": {"$gt": LONG}}, strategy) == ["4"]
    assert _ids(store, {"tenant": {"$between": ["a", LONG]}}, strategy) == ["0", "3"]
    assert _ids(store, {"tags": {"$contains": "a"}}, strategy) == ["0"]  # a string is no list
    assert _ids(store, {"$or": [{"tenant": "acme"}, {"year": 2**53}]}, strategy) == ["0", "4"]
    assert _ids(store, {"$and": [{"tenant": {"$ne": "acme"}}, {"tags": {"$contains": "b"}}]}) == [
        "1"
    ]


def test_each_plan_branch_gives_the_expected_answer(make_store: StoreFactory) -> None:
    store = make_store(indexed_metadata=INDEXED)
    store.add_embeddings(*_rows(), ids=[str(i) for i in range(6)])
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"tenant": "acme"}, ["0"]),
        ({"year": {"$gte": 2024}}, ["0", "1", "3", "4"]),  # numbers only: not "2024", not true
        ({"tags": {"$contains": "b"}}, ["0", "1"]),
        ({"other": {"$exists": False}}, ["0", "1", "2", "3", "4", "5"]),  # no indexed key
    ]
    forced = (
        (search.PrefilterPlan(join_max=10**6, index_cap=10**6), "selective"),
        (search.PrefilterPlan(join_max=-1, index_cap=-1), "broad"),
    )
    for flt, expected in cases:
        for plan, branch in forced:
            queries = store._table.queries
            # The guarded statement takes the branch the plan forces, and that branch, guarded
            # or alone, returns exactly the matching rows.
            for stmt in (
                queries.prefilter_template(10, flt, plan=plan),
                queries.prefilter_template(10, flt, branch=branch),
            ):
                with store.engine.connect() as conn:
                    rows = conn.execute(stmt, {"qv": "[1,0,0]"}).all()
                assert {r.plan for r in rows} == {branch}, (flt, branch)
                assert sorted(r.id for r in rows) == expected, (flt, branch)
            # And the store's search, with that plan in force.
            search_plan = search._PLAN
            search._PLAN = plan
            try:
                assert _ids(store, flt) == expected, (flt, branch)
            finally:
                search._PLAN = search_plan


def test_get_and_delete_by_filter_use_the_same_semantics(make_store: StoreFactory) -> None:
    store = make_store(indexed_metadata=INDEXED)
    store.add_embeddings(*_rows(), ids=[str(i) for i in range(6)])
    assert [d.id for d in store.get(filter={"year": 2024})] == ["0", "1"]
    store.delete(filter={"tenant": {"$in": ["1", "acme"]}})
    assert sorted(str(d.id) for d in store.get()) == ["2", "3", "4", "5"]


def test_create_metadata_index_on_an_existing_table(make_store: StoreFactory) -> None:
    plain = make_store()
    plain.add_embeddings(*_rows(), ids=[str(i) for i in range(6)])
    before = _ids(plain, {"tenant": "acme"})
    other = make_store()  # another store on the same table learns of it when it reads
    assert other.create_metadata_index("tenant", str) is True
    assert other.create_metadata_index("tenant", "str") is False  # already there
    with pytest.raises(ValueError, match="already indexed as str, not float"):
        other.create_metadata_index("tenant", float)
    assert asyncio.run(other.acreate_metadata_index("year", float)) is True
    # The tags of row 2 is a string, row 3 an empty list: both indexable. A number is not.
    assert other.create_metadata_index("tags", list[str]) is True
    fresh = make_store()
    assert _ids(fresh, {"tenant": "acme"}) == before == ["0"]
    assert fresh.indexed_metadata == {"tenant": "str", "year": "float", "tags": "list[str]"}
    # A write a multi-valued index cannot take is refused, nothing half-written.
    with pytest.raises(Exception, match=r"(?i)cast|invalid json"):
        fresh.add_embeddings(["bad"], [[1.0, 1.0, 1.0]], [{"tags": [1, 2]}], ids=["bad"])
    assert fresh.get_by_ids(["bad"]) == []


def test_an_index_the_stored_values_do_not_fit_is_refused_clearly(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    store.add_embeddings(["n"], [[1.0, 0.0, 0.0]], [{"tags": [1, 2]}], ids=["n"])
    with pytest.raises(ValueError, match="must be an array of strings"):
        store.create_metadata_index("tags", list[str])
    assert store.indexed_metadata == {}


def test_create_metadata_index_needs_the_table(make_store: StoreFactory) -> None:
    with pytest.raises(ValueError, match="does not exist yet"):
        make_store().create_metadata_index("tenant", str)


def test_declared_keys_missing_on_an_existing_table_are_added_by_create_table(
    make_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    make_store().add_embeddings(*_rows())
    store = make_store(indexed_metadata={"tenant": str})
    assert store.count() == 6
    assert "no index for indexed_metadata key(s) 'tenant'" in caplog.text
    assert store._table.metadata_indexes == {}
    store.create_table()
    assert list(store._table.metadata_indexes) == [("tenant",)]


def test_a_boolean_and_a_number_on_one_key_never_match_together(
    make_store: StoreFactory,
) -> None:
    # TiDB propagated `x IN (0)` into `x = FALSE` and matched 0: booleans compare as JSON.
    store = make_store()
    store.add_embeddings(
        ["z", "f"], [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], [{"a": 0}, {"a": False}], ids=["z", "f"]
    )
    for strategy in ("pre", "post"):
        assert _ids(store, {"a": 0, "$or": [{"a": False}]}, strategy) == []
        assert _ids(store, {"a": {"$in": [0, True]}, "$or": [{"a": True}]}, strategy) == []
        assert _ids(store, {"a": False}, strategy) == ["f"]


def test_a_filter_seen_before_runs_its_branch_alone_until_the_recheck(
    make_store: StoreFactory,
) -> None:
    store = _rare_and_common(make_store)
    sent = _reads(store)
    store._search.branches.recheck = 2
    for flt, branch in (({"rare": True}, "selective"), ({"common": True}, "broad")):
        sent.clear()
        answers = [_ids(store, flt) for _ in range(4)]
        expected = ["007"] if branch == "selective" else [f"{i:03d}" for i in range(10)]
        assert answers == [expected] * 4, answers  # guarded or alone, the right answer
        guarded = ["UNION" in sql for sql in sent]
        assert guarded == [True, False, False, True], flt  # learned, 2 alone, checked again
        alone = sent[1]
        assert ("INL_JOIN" in alone) == (branch == "selective"), alone
        assert "count(" not in alone.lower(), alone  # no guard evaluated


def test_a_new_metadata_index_makes_the_guard_decide_again(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_embeddings(
        [f"d{i}" for i in range(40)],
        [[1.0, float(i), 0.0] for i in range(40)],
        [{"half": i % 2} for i in range(40)],
    )
    sent = _reads(store)
    before = [_ids(store, {"half": 1}) for _ in range(2)]  # learned: the scan, then alone
    assert store.create_metadata_index("half", int) is True
    sent.clear()
    after = _ids(store, {"half": 1})
    assert before == [after, after]
    assert "UNION" in sent[-1], sent[-1]  # the guard runs again, now over the index


def test_the_index_ddl_binds_the_key(make_store: StoreFactory) -> None:
    # A key with a space and a hyphen (valid in filters) lands in the DDL as a bound literal.
    store = make_store()
    store.add_embeddings(["x"], [[1.0, 0.0, 0.0]], [{"my key-1": "v"}], ids=["x"])
    assert store.create_metadata_index("my key-1", str) is True
    assert _ids(store, {"my key-1": "v"}) == ["x"]
    with store.engine.connect() as conn:
        ddl = conn.exec_driver_sql(f"SHOW CREATE TABLE `{store.table_name}`").one()[1]
    assert '$."my key-1"' in ddl


def test_the_guard_picks_the_join_for_a_selective_json_filter_and_the_scan_for_a_broad_one(
    make_store: StoreFactory,
) -> None:
    store = _rare_and_common(make_store)
    selective = _plan(store, {"rare": True})  # 1 of 60 rows: ids joined back
    broad = _plan(store, {"common": True})  # every row: one filtered scan
    # Point reads of the matches: a merge or hash join would read the whole table again.
    assert "IndexJoin" in selective, selective
    assert "MergeJoin" not in selective, selective
    assert "HashJoin" not in selective, selective
    assert "Join" not in broad, broad
    assert selective.count("TableDual") == broad.count("TableDual") == 1
