"""Plain-Python reference semantics for metadata filters, plus hypothesis strategies.

``matches(filter, metadata)`` evaluates a filter the way ``compile_filter`` must on TiDB; the
property tests compare the two. Validation is shared (``validate_filter``); evaluation here is
independent of the SQL compiler.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from langchain_tidb_bedrock.vectorstores.filters import split_path, validate_filter

__all__ = [
    "FIELD_KEYS",
    "filter_strategy",
    "ilike_fold",
    "like_to_regex",
    "matches",
    "metadata_strategy",
    "scalar_strategy",
]

_MISSING = object()
_DOTTED_CAPITAL_I = "\u0130"  # İ: the one character whose full lowercase is two ("i̇")
_ORDER = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _lookup(metadata: Mapping[str, Any], path: str) -> Any:
    cur: Any = metadata
    for seg in split_path(path):
        # A path through a non-object (scalar, list, null) is missing, as in JSON_EXTRACT.
        if not isinstance(cur, dict) or seg not in cur:
            return _MISSING
        cur = cur[seg]
    return cur


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"  # objects and arrays never equal / order against a scalar


def _cmp(stored: Any, op: str, value: Any) -> bool:
    if stored is _MISSING or _kind(stored) != _kind(value):
        return False
    if _kind(value) == "number" and isinstance(stored, float) != isinstance(value, float):
        # TiDB compares an integer with a double as two doubles (2**53 + 1 == 2.0**53).
        stored, value = float(stored), float(value)
    if op == "=":
        return bool(stored == value)
    if _kind(value) not in ("number", "string"):
        return False
    return bool(_ORDER[op](stored, value))


def like_to_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE with the default escape ``\\``: ``%`` any run, ``_`` one character."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def ilike_fold(text: str) -> str:
    """TiDB's ``LOWER``: each character's simple lowercase, one for one.

    Not ``str.lower()``: that turns "İ" into "i" plus a combining dot (two characters) and a
    word-final capital sigma into the final sigma U+03C2; TiDB gives "i" and the sigma U+03C3.
    """
    return "".join("i" if ch == _DOTTED_CAPITAL_I else ch.lower() for ch in text)


_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _ops(stored: Any, ops: Mapping[str, Any]) -> bool:
    for op, arg in ops.items():
        if op == "$eq":
            ok = _cmp(stored, "=", arg)
        elif op == "$ne":
            ok = not _cmp(stored, "=", arg)
        elif op in _RANGE:
            ok = _cmp(stored, _RANGE[op], arg)
        elif op == "$in":
            ok = any(_cmp(stored, "=", v) for v in arg)
        elif op == "$nin":
            ok = not any(_cmp(stored, "=", v) for v in arg)
        elif op == "$between":
            ok = _cmp(stored, ">=", arg[0]) and _cmp(stored, "<=", arg[1])
        elif op == "$exists":
            ok = (stored is not _MISSING) == arg
        elif op == "$like":
            ok = isinstance(stored, str) and like_to_regex(arg).fullmatch(stored) is not None
        elif op == "$ilike":
            ok = (
                isinstance(stored, str)
                and like_to_regex(ilike_fold(arg)).fullmatch(ilike_fold(stored)) is not None
            )
        elif op == "$contains":
            ok = isinstance(stored, list) and any(_cmp(item, "=", arg) for item in stored)
        elif op == "$size":
            ok = isinstance(stored, list) and len(stored) == arg
        elif op == "$not":
            ok = not _ops(stored, arg)
        else:  # pragma: no cover - validate_filter rejects it first
            raise AssertionError(op)
        if not ok:
            return False
    return True


def _eval(node: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    for key, value in node.items():
        if key == "$and":
            ok = all(_eval(c, metadata) for c in value)
        elif key == "$or":
            ok = any(_eval(c, metadata) for c in value)
        elif key == "$not":
            negated = value if isinstance(value, list) else [value]
            ok = not any(_eval(c, metadata) for c in negated)
        else:
            stored = _lookup(metadata, key)
            ok = _ops(stored, value) if isinstance(value, Mapping) else _cmp(stored, "=", value)
        if not ok:
            return False
    return True


def matches(filter: Mapping[str, Any] | None, metadata: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` satisfies ``filter`` (None / {} match everything)."""
    validate_filter(filter)
    return True if not filter else _eval(filter, metadata)


# --------------------------------------------------------------------------- strategies

#: Field paths the filters use; ``n`` is a nested object (sometimes a scalar, then missing),
#: ``t`` a list (sometimes a scalar), ``d.k`` the one key "d.k" (an escaped dot).
FIELD_KEYS = ("a", "b", "c", "n.x", "n.y", "t", "d\\.k")

_NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, -1.0, 2.5, -1.5, 0.1, 1e-3, 1e20, -0.0]),
    # Precision edges: ints beyond 2**53, int64 / uint64 limits and the doubles next to them.
    st.sampled_from([2**53, 2**53 + 1, 2.0**53, 2**63 - 1, -(2**63), 2**64 - 1, 2.0**63, 2.0**64]),
)
_STRINGS = st.text(alphabet="aAb1 %_\\'\"é😀İ\u03a3\u03c2", max_size=4)


def scalar_strategy() -> st.SearchStrategy[Any]:
    """Scalars with deliberate collisions: 1 / 1.0 / "1" / True, "a" / "A", null."""
    return st.one_of(_NUMBERS, _STRINGS, st.booleans(), st.none(), st.sampled_from(["1", "a"]))


def metadata_strategy() -> st.SearchStrategy[dict[str, Any]]:
    """Metadata over keys a, b, c, a nested object n = {x, y}, a list t and the key "d.k".

    Any key may be missing.
    """
    leaf = scalar_strategy()
    nested = st.one_of(
        st.fixed_dictionaries({}, optional={"x": leaf, "y": leaf}),
        leaf,  # n is a scalar: n.x / n.y are then missing
    )
    tags = st.one_of(st.lists(leaf, max_size=3), leaf)
    return st.fixed_dictionaries(
        {}, optional={"a": leaf, "b": leaf, "c": leaf, "n": nested, "t": tags, "d.k": leaf}
    )


def _orderable() -> st.SearchStrategy[Any]:
    return st.one_of(_NUMBERS, _STRINGS)


def _operator_pair() -> st.SearchStrategy[tuple[str, Any]]:
    scalar = scalar_strategy()
    between = st.one_of(st.tuples(_NUMBERS, _NUMBERS), st.tuples(_STRINGS, _STRINGS)).map(list)
    return st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), scalar),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), _orderable()),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(scalar, max_size=3)),
        st.tuples(st.just("$between"), between),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$like"), st.text(alphabet="aA1%_\\é", max_size=4)),
        st.tuples(st.just("$ilike"), st.text(alphabet="aAÉé1%_iİ\u03a3\u03c3\u03c2", max_size=4)),
        st.tuples(st.just("$contains"), scalar),
        st.tuples(st.just("$size"), st.integers(0, 3)),
    )


def _operator_dict() -> st.SearchStrategy[dict[str, Any]]:
    flat = st.lists(_operator_pair(), min_size=1, max_size=3).map(dict)
    with_not = st.tuples(flat, flat).map(lambda p: {**p[0], "$not": p[1]})
    return st.one_of(flat, flat, with_not)


def _field_filter() -> st.SearchStrategy[dict[str, Any]]:
    value = st.one_of(scalar_strategy(), _operator_dict(), _operator_dict())
    return st.dictionaries(st.sampled_from(FIELD_KEYS), value, min_size=1, max_size=2)


def filter_strategy() -> st.SearchStrategy[dict[str, Any]]:
    """Random nested filters over FIELD_KEYS using every operator."""
    return st.recursive(
        _field_filter(),
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"$and": c}),
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"$or": c}),
            children.map(lambda c: {"$not": c}),
            st.lists(children, min_size=1, max_size=2).map(lambda c: {"$not": c}),
            st.tuples(_field_filter(), children).map(lambda p: {**p[0], "$or": [p[1]]}),
        ),
        max_leaves=6,
    )
