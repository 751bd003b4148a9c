"""Self-query translator: LangChain structured queries to this package's metadata filters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.structured_query import (
    Comparator,
    Comparison,
    Operation,
    Operator,
    StructuredQuery,
    Visitor,
)

from langchain_tidb_bedrock.vectorstores.filters import validate_filter

__all__ = ["TiDBTranslator"]


def _escape_like(text: str) -> str:
    # Escape LIKE wildcards so "contain" means a literal substring.
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _plain_value(value: Any) -> Any:
    # The query-constructor parser emits dates as {"date": "...", "type": "date"} (and
    # {"datetime": ..., "type": "datetime"}); metadata stores them as ISO strings.
    if isinstance(value, dict) and value.get("type") in ("date", "datetime"):
        return value.get(value["type"])
    return value


class TiDBTranslator(Visitor):
    """Translate a ``StructuredQuery`` into the ``filter=`` dict of the TiDB vector store.

    ``contain`` matches a list attribute that has the value (``$contains``) or, for a string
    value, a string attribute that has it as a substring (``$like`` with ``%value%``, wildcards
    escaped); ``in`` / ``nin`` with a scalar are treated as a one-element list.
    """

    # Every comparator and operator LangChain defines is supported.
    allowed_comparators: Sequence[Comparator] | None = tuple(Comparator)
    allowed_operators: Sequence[Operator] | None = tuple(Operator)

    def visit_operation(self, operation: Operation) -> dict[str, Any]:
        """Translate ``and`` / ``or`` / ``not`` into ``$and`` / ``$or`` / ``$not``."""
        self._validate_func(operation.operator)
        args = [arg.accept(self) for arg in operation.arguments]
        if operation.operator == Operator.NOT:
            return {"$not": args[0] if len(args) == 1 else {"$and": args}}
        return {f"${operation.operator.value}": args}

    def visit_comparison(self, comparison: Comparison) -> dict[str, Any]:
        """Translate one comparison into ``{attribute: {"$op": value}}``."""
        self._validate_func(comparison.comparator)
        comparator = comparison.comparator
        value = _plain_value(comparison.value)
        if comparator == Comparator.CONTAIN:
            member = {comparison.attribute: {"$contains": value}}
            if not isinstance(value, str):
                return member
            substring = {comparison.attribute: {"$like": f"%{_escape_like(value)}%"}}
            return {"$or": [member, substring]}
        if comparator in (Comparator.IN, Comparator.NIN):
            value = (
                [_plain_value(v) for v in value] if isinstance(value, (list, tuple)) else [value]
            )
        return {comparison.attribute: {f"${comparator.value}": value}}

    def visit_structured_query(
        self, structured_query: StructuredQuery
    ) -> tuple[str, dict[str, Any]]:
        """Return ``(query, {"filter": ...})``, or ``(query, {})`` without a filter.

        Raises:
            FilterError: If the translated filter is invalid (e.g. a bad attribute name).
        """
        if structured_query.filter is None:
            return structured_query.query, {}
        flt = structured_query.filter.accept(self)
        validate_filter(flt)
        return structured_query.query, {"filter": flt}
