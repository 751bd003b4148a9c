"""TiDBTranslator: structured queries to filter dicts that compile."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from filter_reference import matches
from langchain_core.structured_query import (
    Comparator,
    Comparison,
    Operation,
    Operator,
    StructuredQuery,
)
from sqlalchemy.dialects import mysql

from langchain_tidb_bedrock.vectorstores.filters import FilterError, compile_filter
from langchain_tidb_bedrock.vectorstores.translator import TiDBTranslator

META = sa.Table("docs", sa.MetaData(), sa.Column("meta", sa.JSON)).c.meta


def _compiles(flt: dict[str, Any]) -> None:
    expr = compile_filter(flt, META)
    assert expr is not None
    str(expr.compile(dialect=mysql.dialect()))


@pytest.mark.parametrize(
    ("comparator", "value", "expected"),
    [
        (Comparator.EQ, "x", {"$eq": "x"}),
        (Comparator.NE, 1, {"$ne": 1}),
        (Comparator.GT, 1.5, {"$gt": 1.5}),
        (Comparator.GTE, 2, {"$gte": 2}),
        (Comparator.LT, "m", {"$lt": "m"}),
        (Comparator.LTE, 3, {"$lte": 3}),
        (Comparator.IN, ["a", "b"], {"$in": ["a", "b"]}),
        (Comparator.NIN, [1], {"$nin": [1]}),
        (Comparator.IN, "a", {"$in": ["a"]}),
        (Comparator.LIKE, "ab%", {"$like": "ab%"}),
        (Comparator.EQ, True, {"$eq": True}),
        (Comparator.GTE, {"date": "2024-01-02", "type": "date"}, {"$gte": "2024-01-02"}),
    ],
)
def test_comparisons(comparator: Comparator, value: Any, expected: dict[str, Any]) -> None:
    flt = Comparison(comparator=comparator, attribute="field", value=value).accept(TiDBTranslator())
    assert flt == {"field": expected}
    _compiles(flt)


def test_contain_matches_literal_substring() -> None:
    flt = Comparison(comparator=Comparator.CONTAIN, attribute="t", value="50%_").accept(
        TiDBTranslator()
    )
    assert matches(flt, {"t": "get 50%_ now"})
    assert not matches(flt, {"t": "get 50xy now"})


def test_contain_matches_list_members() -> None:
    # Self-query's "genre contains 'comedy'" over a list attribute.
    flt = Comparison(comparator=Comparator.CONTAIN, attribute="tags", value="x").accept(
        TiDBTranslator()
    )
    assert matches(flt, {"tags": ["x", "y"]})
    assert not matches(flt, {"tags": ["xy"]})
    number = Comparison(comparator=Comparator.CONTAIN, attribute="ids", value=3).accept(
        TiDBTranslator()
    )
    assert number == {"ids": {"$contains": 3}}
    assert matches(number, {"ids": [1, 3.0]})
    assert not matches(number, {"ids": ["3"]})
    _compiles(flt)


def test_nested_operations() -> None:
    tree = Operation(
        operator=Operator.AND,
        arguments=[
            Comparison(comparator=Comparator.GTE, attribute="year", value=2000),
            Operation(
                operator=Operator.OR,
                arguments=[
                    Comparison(comparator=Comparator.EQ, attribute="genre", value="sf"),
                    Operation(
                        operator=Operator.NOT,
                        arguments=[Comparison(comparator=Comparator.LT, attribute="a.b", value=3)],
                    ),
                ],
            ),
        ],
    )
    flt = tree.accept(TiDBTranslator())
    assert flt == {
        "$and": [
            {"year": {"$gte": 2000}},
            {"$or": [{"genre": {"$eq": "sf"}}, {"$not": {"a.b": {"$lt": 3}}}]},
        ]
    }
    _compiles(flt)
    assert matches(flt, {"year": 2001, "a": {"b": 5}})
    assert not matches(flt, {"year": 2001, "a": {"b": 1}})


def test_not_with_several_arguments_negates_their_conjunction() -> None:
    op = Operation(
        operator=Operator.NOT,
        arguments=[
            Comparison(comparator=Comparator.EQ, attribute="a", value=1),
            Comparison(comparator=Comparator.EQ, attribute="b", value=2),
        ],
    )
    assert op.accept(TiDBTranslator()) == {"$not": {"$and": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}}


def test_structured_query() -> None:
    translator = TiDBTranslator()
    assert translator.visit_structured_query(StructuredQuery(query="q", filter=None)) == ("q", {})
    sq = StructuredQuery(
        query="dinosaurs",
        filter=Comparison(comparator=Comparator.GT, attribute="rating", value=8.5),
        limit=2,
    )
    query, kwargs = translator.visit_structured_query(sq)
    assert query == "dinosaurs"
    assert kwargs == {"filter": {"rating": {"$gt": 8.5}}}
    _compiles(kwargs["filter"])


def test_bad_attribute_raises_filter_error() -> None:
    sq = StructuredQuery(
        query="q", filter=Comparison(comparator=Comparator.EQ, attribute="a'; DROP", value=1)
    )
    with pytest.raises(FilterError, match="DROP"):
        TiDBTranslator().visit_structured_query(sq)


def test_disallowed_comparator_rejected() -> None:
    class Narrow(TiDBTranslator):
        allowed_comparators = (Comparator.EQ,)

    with pytest.raises(ValueError, match="disallowed comparator"):
        Comparison(comparator=Comparator.GT, attribute="a", value=1).accept(Narrow())
