"""Compiled filters on a real TiDB agree with the Python reference evaluator."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from filter_reference import filter_strategy, matches, metadata_strategy
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import NonInteractiveExampleWarning

from langchain_tidb_bedrock.vectorstores.filters import FilterError, compile_filter

# Tricky stored values: 1 / 1.0 / "1" / true, nulls, precision edges, unicode, wildcards, quotes.
TRICKY: dict[int, dict[str, Any]] = {
    1: {"a": 1},
    2: {"a": 1.0},
    3: {"a": "1"},
    4: {"a": True},
    5: {"a": None},
    6: {},
    7: {"a": 2**53 + 1},
    8: {"a": 2.0**53},
    9: {"a": 2**63 - 1},
    10: {"a": 2**64 - 1},
    11: {"a": -(2**63)},
    12: {"a": -1.5},
    13: {"a": "a"},
    14: {"a": "A"},
    15: {"a": "é"},
    16: {"a": "😀"},
    17: {"a": "50%_off"},
    18: {"a": 'it\'s "q" \\'},
    19: {"a": "a "},
    20: {"a": False},
    21: {"a": 0},
    22: {"a": {"b": 1}},
    23: {"a": [1, 2]},
    24: {"a": "", "n": {"x": 1}},
    25: {"n": {"x": "1", "y": None}},
    26: {"n": 5},
    27: {"a": "abc", "b": 3, "n": {"x": 2.5}},
    28: {"with space": 1, "ü数": "v", "x-y": 2},
    29: {"a": -0.0},
    30: {"a": 0.1},
    31: {"a": "50xoff"},
    32: {"a": 2**63 - 2},
    33: {"a": "\\"},
}


def _make_table(engine: sa.Engine, name: str, rows: Mapping[int, Mapping[str, Any]]) -> sa.Table:
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("meta", sa.JSON),
    )
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"id": i, "meta": m} for i, m in rows.items()])
    return table


def _sql_ids(engine: sa.Engine, table: sa.Table, flt: Any) -> set[int]:
    query = sa.select(table.c.id)
    where = compile_filter(flt, table.c.meta)
    if where is not None:
        query = query.where(where)
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def _ref_ids(flt: Any, rows: Mapping[int, Mapping[str, Any]]) -> set[int]:
    return {i for i, m in rows.items() if matches(flt, m)}


def _assert_agree(
    engine: sa.Engine, table: sa.Table, rows: Mapping[int, Mapping[str, Any]], flt: Any
) -> set[int]:
    got, want = _sql_ids(engine, table, flt), _ref_ids(flt, rows)
    diff = {i: rows[i] for i in got ^ want}
    assert got == want, f"filter {flt!r}: SQL-only {got - want}, ref-only {want - got}: {diff}"
    return got


@pytest.fixture(scope="module")
def tricky(tidb_engine: sa.Engine) -> Iterator[sa.Table]:
    name = f"t_filters_{uuid.uuid4().hex[:12]}"
    table = _make_table(tidb_engine, name, TRICKY)
    yield table
    with tidb_engine.begin() as conn:
        table.drop(conn, checkfirst=True)


# Filters with the exact ids they must select, pinned by hand so a shared mistake in the
# reference and the compiler cannot pass unnoticed.
PINNED: list[tuple[dict[str, Any], set[int]]] = [
    ({"a": 1}, {1, 2}),
    ({"a": 1.0}, {1, 2}),
    ({"a": "1"}, {3}),
    ({"a": True}, {4}),
    ({"a": False}, {20}),
    ({"a": 0}, {21, 29}),
    ({"a": None}, {5}),
    ({"a": {"$exists": True, "$ne": None}}, set(TRICKY) - {5, 6, 25, 26, 28}),
    ({"a": {"$exists": False}}, {6, 25, 26, 28}),
    ({"a": 2**53 + 1}, {7, 8}),  # int vs double compares as doubles on TiDB
    ({"a": 2**63 - 1}, {9}),  # int vs int stays exact
    ({"a": {"$gt": 2**63 - 2}}, {9, 10}),
    ({"a": {"$gte": -(2**63), "$lt": -1}}, {11, 12}),
    ({"a": {"$lt": 0}}, {11, 12}),
    ({"a": {"$between": [0, 1]}}, {1, 2, 21, 29, 30}),
    ({"a": {"$gt": "a"}}, {15, 16, 18, 19, 27}),
    ({"a": {"$lt": "B"}}, {3, 14, 17, 24, 31}),
    ({"a": {"$between": ["a", "b"]}}, {13, 19, 27}),
    ({"a": {"$like": "a%"}}, {13, 19, 27}),
    ({"a": {"$like": "a"}}, {13}),
    ({"a": {"$like": "_"}}, {3, 13, 14, 15, 16, 33}),
    ({"a": {"$like": "50\\%\\_off"}}, {17}),
    ({"a": {"$like": "50%off"}}, {17, 31}),
    ({"a": {"$like": "%\\\\"}}, {18, 33}),
    ({"a": {"$like": 'it\'s "q" %'}}, {18}),
    ({"a": {"$like": "%"}}, {3, 13, 14, 15, 16, 17, 18, 19, 24, 27, 31, 33}),
    ({"a": {"$in": [1, "a", None]}}, {1, 2, 5, 13}),
    ({"a": {"$in": []}}, set()),
    ({"a": {"$nin": []}}, set(TRICKY)),
    ({"a": {"$nin": [1, True]}}, set(TRICKY) - {1, 2, 4}),
    ({"a": {"$ne": 1}}, set(TRICKY) - {1, 2}),
    ({"a": {"$not": {"$gt": 0}}}, set(TRICKY) - {1, 2, 7, 8, 9, 10, 30, 32}),
    ({"a": "é"}, {15}),
    ({"a": "😀"}, {16}),
    ({"a": "a "}, {19}),
    ({"a": 'it\'s "q" \\'}, {18}),
    ({"n.x": 1}, {24}),
    ({"n.x": "1"}, {25}),
    ({"n.y": None}, {25}),
    ({"n.x": {"$exists": True}}, {24, 25, 27}),
    ({"n": 5}, {26}),
    ({"n.x": {"$gt": 1}}, {27}),
    ({"with space": 1, "ü数": "v", "x-y": {"$gte": 2}}, {28}),
    ({"$or": [{"a": True}, {"b": 3}]}, {4, 27}),
    ({"$not": {"$or": [{"a": {"$exists": True}}, {"n": 5}]}}, {6, 25, 28}),
    ({"$and": [{"a": {"$gte": 1}}, {"a": {"$lte": 1}}]}, {1, 2}),
    ({"a": {"$gte": 1, "$lte": 1}}, {1, 2}),  # every operator honoured, not just the first
]


@pytest.mark.parametrize(("flt", "expected"), PINNED)
def test_pinned_cases(
    tidb_engine: sa.Engine, tricky: sa.Table, flt: dict[str, Any], expected: set[int]
) -> None:
    assert _ref_ids(flt, TRICKY) == expected
    assert _assert_agree(tidb_engine, tricky, TRICKY, flt) == expected


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.mark.parametrize(
    "value",
    [
        "x' OR '1'='1",
        "'; DROP TABLE {t}; --",
        '"; DELETE FROM {t}; --',
        "\\'; UPDATE {t} SET meta = NULL; #",
        "%' OR 1=1 --",
        '$."a"',
        "') OR JSON_EXTRACT(meta, '$.a') IS NOT NULL OR ('",
    ],
)
def test_injection_through_values_is_inert(
    tidb_engine: sa.Engine, tricky: sa.Table, value: str
) -> None:
    value = value.replace("{t}", tricky.name)
    before = _count(tidb_engine, tricky)
    for flt in (
        {"a": value},
        {"a": {"$like": value}},
        {"a": {"$in": [value]}, "n.x": {"$nin": [value]}},
        {"a": {"$gt": value, "$lt": value + "z"}},
        {"$not": {"a": {"$ne": value}}},
    ):
        assert _assert_agree(tidb_engine, tricky, TRICKY, flt) == set()
    assert _count(tidb_engine, tricky) == before
    with tidb_engine.connect() as conn:  # rows untouched too
        metas = {r.id: r.meta for r in conn.execute(sa.select(tricky.c.id, tricky.c.meta))}
    assert metas == TRICKY


@pytest.mark.parametrize(
    "key",
    [
        "a'); DROP TABLE {t}; --",
        'a"b',
        "$.a",
        "a' OR 1=1 --",
        'a" || "b',
        "a.*",
        "a[0]",
        "a\\",
        "**",
    ],
)
def test_injection_through_keys_fails_cleanly(
    tidb_engine: sa.Engine, tricky: sa.Table, key: str
) -> None:
    key = key.replace("{t}", tricky.name)
    before = _count(tidb_engine, tricky)
    with pytest.raises(FilterError) as info:
        compile_filter({key: 1}, tricky.c.meta)
    assert repr(key) in str(info.value)
    with pytest.raises(FilterError):
        compile_filter(
            {"$or": [{"a": 1}, {"b": {"$exists": True}, key: {"$ne": 2}}]}, tricky.c.meta
        )
    assert _count(tidb_engine, tricky) == before


def test_filter_inside_larger_query(tidb_engine: sa.Engine, tricky: sa.Table) -> None:
    # The compiled expression composes with the store's own predicates and ordering.
    where = compile_filter({"$or": [{"a": {"$gt": 0}}, {"a": "a"}]}, tricky.c.meta)
    assert where is not None
    query = (
        sa.select(tricky.c.id)
        .where(sa.and_(tricky.c.id < 14, sa.not_(where)))
        .order_by(tricky.c.id.desc())
        .limit(3)
    )
    with tidb_engine.connect() as conn:
        got = list(conn.execute(query).scalars())
    want = sorted(
        (
            i
            for i in TRICKY
            if i < 14 and not matches({"$or": [{"a": {"$gt": 0}}, {"a": "a"}]}, TRICKY[i])
        ),
        reverse=True,
    )[:3]
    assert got == want == [12, 11, 6]


def _generated_rows(n: int) -> dict[int, dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        generated = [metadata_strategy().example() for _ in range(n)]
    # Tricky rows guarantee the edge cases are present whatever was generated.
    rows = {i: dict(m) for i, m in TRICKY.items()}
    rows.update({100 + i: m for i, m in enumerate(generated)})
    return rows


def test_property_sql_matches_reference(tidb_engine: sa.Engine, table_name: str) -> None:
    rows = _generated_rows(40)
    table = _make_table(tidb_engine, table_name, rows)
    seen_nonempty = 0

    @given(filter_strategy())
    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def check(flt: dict[str, Any]) -> None:
        nonlocal seen_nonempty
        got = _assert_agree(tidb_engine, table, rows, flt)
        seen_nonempty += 0 < len(got) < len(rows)

    check()
    # Guard against a vacuous run (e.g. every filter matching nothing).
    assert seen_nonempty >= 5


async def test_aiomysql_driver_agrees(tidb_url: str, tricky: sa.Table) -> None:
    # The store's async path binds the same parameters through aiomysql.
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(sa.make_url(tidb_url).set(drivername="mysql+aiomysql"))
    try:
        async with engine.connect() as conn:
            for flt, expected in PINNED:
                where = compile_filter(flt, tricky.c.meta)
                assert where is not None
                got = set((await conn.execute(sa.select(tricky.c.id).where(where))).scalars())
                assert got == expected, flt
    finally:
        await engine.dispose()
