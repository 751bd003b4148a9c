"""Filter validation and SQL shape, no database."""

from __future__ import annotations

import math
from typing import Any

import pytest
import sqlalchemy as sa
from filter_reference import filter_strategy, like_to_regex, matches, metadata_strategy
from hypothesis import given, settings
from sqlalchemy.dialects import mysql

from langchain_tidb_bedrock.vectorstores.filters import FilterError, compile_filter, validate_filter

TABLE = sa.Table("docs", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("meta", sa.JSON))


def _sql(flt: Any) -> tuple[str, dict[str, Any]]:
    expr = compile_filter(flt, TABLE.c.meta)
    assert expr is not None
    compiled = sa.select(TABLE.c.id).where(expr).compile(dialect=mysql.dialect())
    return str(compiled), dict(compiled.params)


@pytest.mark.parametrize("flt", [None, {}])
def test_empty_filter_compiles_to_none(flt: Any) -> None:
    assert compile_filter(flt, TABLE.c.meta) is None
    validate_filter(flt)


@pytest.mark.parametrize(
    ("flt", "needle"),
    [
        ([{"a": 1}], "must be a dict"),
        ("a = 1", "must be a dict"),
        ({"a": [1, 2]}, "use $in"),
        ({"a": (1,)}, "use $in"),
        ({"a": {"$eq": [1]}}, "use $in"),
        ({"a": {}}, "empty operator dict"),
        ({"a": {"$regex": "x"}}, "'$regex'"),
        ({"a": {"$gtt": 1}}, "'$gtt'"),
        ({"a": {"gt": 1}}, "'gt'"),
        ({"a": {"$gte": 1, "$lte": 5, "$bogus": 1}}, "'$bogus'"),
        ({"$nor": [{"a": 1}]}, "'$nor'"),
        ({"$and": []}, "non-empty list"),
        ({"$or": {"a": 1}}, "non-empty list"),
        ({"$and": [{"a": 1}, 5]}, "must be a dict"),
        ({"$not": [{"a": 1}, 5]}, "must be a dict"),
        ({"$not": []}, "non-empty list"),
        ({"a": {"$contains": [1]}}, "takes one value"),
        ({"a": {"$ilike": 1}}, "string pattern"),
        ({"a\\b": 1}, "invalid field name"),
        ({"$or": [{"a": {"$in": 3}}]}, "$in needs a list"),
        ({"a": {"$nin": "abc"}}, "$nin needs a list"),
        ({"a": {"$in": [1, [2]]}}, "use $in"),
        ({"a": {"$in": [{"x": 1}]}}, "unsupported value"),
        ({"a": {"$gt": True}}, "number or a string"),
        ({"a": {"$lt": None}}, "number or a string"),
        ({"a": {"$between": [1]}}, "[low, high]"),
        ({"a": {"$between": [1, "z"]}}, "both numbers or both strings"),
        ({"a": {"$between": [False, 2]}}, "number or a string"),
        ({"a": {"$exists": 1}}, "True or False"),
        ({"a": {"$like": 5}}, "string pattern"),
        ({"a": {"$not": 5}}, "operator dict"),
        ({"a": {"$not": {"$gt": 1, "$zz": 2}}}, "'$zz'"),
        ({"a": {"$eq": object()}}, "unsupported value"),
        ({"a": b"bytes"}, "unsupported value"),
        ({"a": 2**64}, "64-bit"),
        ({"a": -(2**63) - 1}, "64-bit"),
        ({"a": "\ud800"}, "UTF-8"),
        ({1: 2}, "must be a string"),
    ],
)
def test_malformed_filters_raise(flt: Any, needle: str) -> None:
    with pytest.raises(FilterError) as info:
        validate_filter(flt)
    assert needle in str(info.value)
    with pytest.raises(FilterError):
        compile_filter(flt, TABLE.c.meta)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("op", ["$eq", "$ne", "$gt", "$lte", "$in", "$between"])
def test_non_finite_numbers_raise(bad: float, op: str) -> None:
    arg: Any = [bad] if op == "$in" else [0, bad] if op == "$between" else bad
    with pytest.raises(FilterError, match="non-finite"):
        validate_filter({"$or": [{"x": 1}, {"a": {op: arg}}]})


@pytest.mark.parametrize(
    "key",
    [
        "a'); DROP TABLE x; --",
        'a"b',
        "$.x",
        "a\\b",
        "a[0]",
        "a.*",
        "a..b",
        ".a",
        "a.",
        "",
        "a`b",
        "a\nb",
        '"a"',
        "a$",
    ],
)
def test_bad_keys_raise_naming_the_key(key: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter({"$and": [{key: 1}]}, TABLE.c.meta)
    assert repr(key) in str(info.value) or key.startswith("$")


def test_error_names_location() -> None:
    with pytest.raises(FilterError, match=r"\$or\[1\]\.year"):
        validate_filter({"$or": [{"a": 1}, {"year": {"$gte": 1, "$regex": "x"}}]})


def test_whole_filter_validated_even_after_valid_parts() -> None:
    # A bad operator deep in the last branch must not be silently dropped.
    with pytest.raises(FilterError, match="gtt"):
        compile_filter(
            {"a": 1, "b": {"$gte": 1}, "$or": [{"c": 2}, {"d": {"$gtt": 3}}]}, TABLE.c.meta
        )


@pytest.mark.parametrize(
    "key", ["a", "a.b", "a.b.c", "with space", "with-hyphen", "under_score", "ünï", "数据", "A1"]
)
def test_valid_keys(key: str) -> None:
    sql, params = _sql({key: 1})
    path = "$" + "".join(f'."{seg}"' for seg in key.split("."))
    assert path in params.values()
    assert path not in sql


def test_deep_nesting_limit() -> None:
    flt: dict[str, Any] = {"a": 1}
    for _ in range(200):
        flt = {"$not": flt}
    with pytest.raises(FilterError, match="nested deeper"):
        validate_filter(flt)


def test_all_operators_on_one_field_are_compiled() -> None:
    sql, params = _sql({"year": {"$gte": 1, "$lte": 5}})
    assert ">=" in sql
    assert "<=" in sql
    assert {"1.0", "5.0"} <= set(params.values())  # small integers go as doubles (_as_double)


INJECTIONS = [
    "x' OR '1'='1",
    "'; DROP TABLE docs; --",
    '" OR 1=1 --',
    "\\'; DELETE FROM docs; #",
    "%' OR meta IS NOT NULL --",
    "$.a",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_values_only_bound(value: str) -> None:
    flt = {
        "a": value,
        "b": {"$like": value, "$in": [value, 1], "$between": [value, value], "$ne": value},
        "$not": {"c": {"$gt": value}},
    }
    sql, params = _sql(flt)
    assert value not in sql
    assert "DROP" not in sql
    assert "DELETE" not in sql
    assert "'" not in sql  # no string literal at all: every value is a parameter
    assert value in params.values()


@given(filter_strategy())
@settings(max_examples=200, deadline=None)
def test_generated_filters_compile_with_only_params(flt: dict[str, Any]) -> None:
    sql, _ = _sql(flt)
    assert "'" not in sql
    assert '"' not in sql


@pytest.mark.parametrize(
    ("flt", "meta", "expected"),
    [
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"a": "1"}, False),
        ({"a": 1}, {"a": True}, False),
        ({"a": True}, {"a": 1}, False),
        ({"a": None}, {"a": None}, True),
        ({"a": None}, {}, False),
        ({"a": {"$ne": None}}, {}, True),
        ({"a": {"$ne": 1}}, {}, True),
        ({"a": {"$nin": [1]}}, {}, True),
        ({"a": {"$nin": []}}, {}, True),
        ({"a": {"$in": []}}, {"a": 1}, False),
        ({"a": {"$exists": False}}, {}, True),
        ({"a": {"$exists": True}}, {"a": None}, True),
        ({"a": {"$gt": 0}}, {"a": "1"}, False),
        ({"a": {"$gt": "0"}}, {"a": 1}, False),
        ({"a": {"$gt": "B"}}, {"a": "a"}, True),
        ({"a": {"$gte": 1, "$lte": 5}}, {"a": 6}, False),
        ({"a": {"$between": [1, 5]}}, {"a": 5.0}, True),
        ({"a": {"$like": "a%"}}, {"a": "A1"}, False),
        ({"a": {"$like": "a_"}}, {"a": "aé"}, True),
        ({"a": {"$like": "a\\%"}}, {"a": "a%"}, True),
        ({"a": {"$like": "a\\%"}}, {"a": "ab"}, False),
        ({"a": {"$like": "1"}}, {"a": 1}, False),
        ({"a": {"$not": {"$gt": 1}}}, {}, True),
        ({"$not": {"a": {"$gt": 1}}}, {"a": 0}, True),
        ({"n.x": 1}, {"n": {"x": 1}}, True),
        ({"n.x": 1}, {"n": 1}, False),
        ({"n.x": {"$exists": False}}, {"n": "x"}, True),
        ({"n": 1}, {"n": {"x": 1}}, False),
        ({"a": 1, "$or": [{"b": 2}, {"c": 3}]}, {"a": 1, "c": 3}, True),
    ],
)
def test_reference_semantics(flt: dict[str, Any], meta: dict[str, Any], expected: bool) -> None:
    assert matches(flt, meta) is expected


@pytest.mark.parametrize("flt", [{"$and": [{}]}, {"$or": [{"a": 1}, {}]}, {"$not": {}}])
def test_nested_empty_filters_are_refused(flt: dict[str, Any]) -> None:
    # An empty sub-filter matches every row; with delete(filter=...) it would empty the table.
    with pytest.raises(FilterError, match="empty filter"):
        validate_filter(flt)


def test_like_to_regex() -> None:
    assert like_to_regex("a%b_").fullmatch("aXXbY")
    assert not like_to_regex("a%b_").fullmatch("aXXb")
    assert like_to_regex("\\_").fullmatch("_")
    assert not like_to_regex("\\_").fullmatch("x")
    assert like_to_regex(".*").fullmatch(".*")
    assert not like_to_regex(".*").fullmatch("ab")


@given(filter_strategy(), metadata_strategy())
@settings(max_examples=100, deadline=None)
def test_reference_total(flt: dict[str, Any], meta: dict[str, Any]) -> None:
    # Every generated filter is valid and evaluates without error.
    assert matches(flt, meta) in (True, False)


def test_list_operators_and_escaped_dots() -> None:
    meta = {"tags": ["x", 2, True], "a.b": "Hello", "a": {"b": "nested"}, "s": "x"}
    assert matches({"tags": {"$contains": "x"}}, meta)
    assert matches({"tags": {"$contains": 2.0}}, meta)  # JSON equality: 2 == 2.0
    assert not matches({"tags": {"$contains": "2"}}, meta)  # ... but never "2"
    assert not matches({"tags": {"$contains": 1}}, meta)  # ... nor true
    assert not matches({"s": {"$contains": "x"}}, meta)  # a string is not a list
    assert matches({"a\\.b": {"$ilike": "hel%"}}, meta)  # the one key "a.b"
    assert not matches({"a\\.b": {"$like": "hel%"}}, meta)
    assert matches({"a.b": "nested"}, meta)  # the nested path
    assert matches({"$not": [{"s": "y"}, {"s": "z"}]}, meta)  # none of them holds
    assert not matches({"$not": [{"s": "y"}, {"s": "x"}]}, meta)
    sql = str(compile_filter({"tags": {"$contains": "x"}}, sa.column("meta")))
    assert "MEMBER OF" in sql
