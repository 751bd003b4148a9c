"""LlamaIndex ``MetadataFilters`` as this package's filter dict, with LlamaIndex's semantics.

The result goes through the same compiler as the LangChain store's filters
(:mod:`langchain_tidb_bedrock.vectorstores.filters`), so indexed metadata keys and the search
plans serve both. What each operator means is what ``SimpleVectorStore`` (its
``build_metadata_filter_fn``) does, where it differs from the LangChain filters:

* A key is one top-level metadata key: a dot in it is part of the name, not a path.
* A missing key and a stored ``null`` are the same: ``!=`` and ``nin`` hold for them, every
  other operator (``is_empty`` aside) fails.
* ``contains`` tests list membership, or a substring when the stored value is a string;
  ``any`` / ``all`` apply ``contains`` to each of their values (``all([])`` holds for any
  present value, ``any([])`` for none).
* ``text_match`` is a case-sensitive substring test, ``text_match_insensitive`` lower-cases
  both sides; ``is_empty`` holds for a missing key, ``null``, ``""`` and ``[]``.
* Condition ``not`` holds when none of its filters does; an empty ``MetadataFilters`` at the
  top means no filter, nested it is ``all([])`` / ``any([])`` / ``not any([])`` of nothing.

Values ``SimpleVectorStore`` would compare across types (a stored ``True`` equals ``1`` in
Python) compare as JSON here: a boolean never equals a number. Cases ``SimpleVectorStore``
cannot evaluate either (a list value for ``==`` or ``>``, a scalar for ``in``/``any``/``all``)
raise :class:`~langchain_tidb_bedrock.errors.FilterError`.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from langchain_tidb_bedrock.errors import FilterError

__all__ = ["to_filter_dict"]

# Constant filters for an empty nested group (any key works: $in [] is SQL FALSE).
_NOTHING: dict[str, Any] = {"_node_type": {"$in": []}}
_EVERYTHING: dict[str, Any] = {"_node_type": {"$nin": []}}

_COMPARE = {
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
}


def _key(key: object, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise FilterError(f"filter key {key!r} at {where} must be a non-empty string")
    if "\\" in key:
        raise FilterError(f"filter key {key!r} at {where}: a backslash cannot be filtered on")
    # One top-level key: a dot is part of the name (our paths split on unescaped dots).
    return key.replace(".", "\\.")


def _like_literal(text: str) -> str:
    r"""``text`` as a LIKE pattern matching itself (``%``, ``_`` and ``\`` escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _present(key: str) -> dict[str, Any]:
    # Present and not null: what SimpleVectorStore's `metadata.get(key) is not None` means.
    return {key: {"$exists": True, "$ne": None}}


def _is_list(value: object) -> bool:
    return isinstance(value, (list, tuple))


def _contains(key: str, value: object, where: str) -> dict[str, Any]:
    """``value in stored``: list membership, or a substring of a stored string."""
    if _is_list(value) or value is None:
        raise FilterError(f"contains at {where} takes one value, got {value!r}")
    member: dict[str, Any] = {key: {"$contains": value}}
    if not isinstance(value, str):
        return member
    return {"$or": [member, {key: {"$like": f"%{_like_literal(value)}%"}}]}


def _leaf(f: MetadataFilter, where: str) -> dict[str, Any]:
    key = _key(f.key, where)
    op, value = f.operator, f.value
    if op == FilterOperator.IS_EMPTY:
        return {
            "$or": [
                {key: {"$exists": False}},
                {key: {"$in": [None, ""]}},
                {key: {"$size": 0}},
            ]
        }
    if op in (FilterOperator.EQ, FilterOperator.NE):
        if _is_list(value):
            raise FilterError(f"{op.value!r} at {where} compares with one value, got a list")
        if value is None:  # a stored null counts as missing: == None never holds
            return _NOTHING if op == FilterOperator.EQ else _EVERYTHING
        return {key: {"$eq" if op == FilterOperator.EQ else "$ne": value}}
    if op in _COMPARE:
        if value is None or _is_list(value):
            raise FilterError(f"{op.value!r} at {where} needs a number or a string, got {value!r}")
        return {key: {_COMPARE[op]: value}}
    if op in (FilterOperator.IN, FilterOperator.NIN):
        if not _is_list(value):
            raise FilterError(f"{op.value!r} at {where} needs a list of values, got {value!r}")
        return {key: {"$in" if op == FilterOperator.IN else "$nin": list(value)}}  # type: ignore[arg-type]
    if op == FilterOperator.CONTAINS:
        return _contains(key, value, where)
    if op in (FilterOperator.ANY, FilterOperator.ALL):
        if not _is_list(value):
            raise FilterError(f"{op.value!r} at {where} needs a list of values, got {value!r}")
        parts = [_contains(key, v, f"{where}[{n}]") for n, v in enumerate(value)]  # type: ignore[arg-type]
        if op == FilterOperator.ANY:
            return {"$or": parts} if parts else _NOTHING
        return {"$and": parts} if parts else _present(key)
    if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        if not isinstance(value, str):
            raise FilterError(f"{op.value!r} at {where} needs a string, got {value!r}")
        like = "$like" if op == FilterOperator.TEXT_MATCH else "$ilike"
        return {key: {like: f"%{_like_literal(value)}%"}}
    raise FilterError(f"unsupported filter operator {op!r} at {where}")


def _group(filters: MetadataFilters, where: str) -> dict[str, Any]:
    condition = filters.condition or FilterCondition.AND
    parts: list[dict[str, Any]] = []
    for n, child in enumerate(filters.filters):
        at = f"{where}.filters[{n}]"
        if isinstance(child, MetadataFilters):
            parts.append(_group(child, at))
        elif isinstance(child, MetadataFilter):
            parts.append(_leaf(child, at))
        else:
            raise FilterError(
                f"expected a MetadataFilter or MetadataFilters at {at}, got {child!r}"
            )
    if condition == FilterCondition.AND:
        return {"$and": parts} if parts else _EVERYTHING
    if condition == FilterCondition.OR:
        return {"$or": parts} if parts else _NOTHING
    if condition == FilterCondition.NOT:
        return {"$not": parts} if parts else _EVERYTHING
    raise FilterError(f"unsupported filter condition {condition!r} at {where}")


def to_filter_dict(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """Translate LlamaIndex filters (nested, every operator and condition) to a filter dict.

    Args:
        filters: The query's filters; None or an empty top-level list means no filter.

    Returns:
        A filter dict for :class:`~langchain_tidb_bedrock.vectorstores.base.TiDBVectorStore`,
        or None.

    Raises:
        FilterError: An operator, condition or value this store cannot apply (the message
            names its position, e.g. ``filters.filters[1]``).
    """
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise FilterError(f"filters must be a MetadataFilters, got {type(filters).__name__}")
    if not filters.filters:  # SimpleVectorStore: no filter list, no filtering
        return None
    return _group(filters, "filters")
