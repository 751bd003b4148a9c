"""Indexed metadata keys: real TiDB indexes behind chosen keys of the JSON ``meta`` column.

``indexed_metadata={"tenant": str, "year": int, "tags": list[str]}`` gives each key an index:

- ``str``: a VIRTUAL generated column holding the key's string value (first 255 characters,
  ``utf8mb4_0900_bin``: code-point order, no padding), NULL for any other JSON type, plus a
  secondary index. ``ALTER TABLE ... ADD COLUMN`` can add a VIRTUAL column to an existing table
  (not a STORED one), so the same DDL serves new and existing tables.
- ``int`` / ``float``: the same with a DOUBLE column holding any JSON number (integers and
  floats alike: ``{"year": 2024.0}`` must still be found by ``{"year": 2024}``).
- ``list[str]``: a multi-valued index, ``CAST(meta->'$.key' AS CHAR(255) ARRAY)``, which
  ``MEMBER OF`` uses. TiDB refuses writes whose value there is not an array of strings (or a
  string) of at most 255 characters: a declared list key must hold such values.

Filters do not change meaning. The index conditions built here are *supersets* of the exact
JSON conditions (bounds loosened to ``>=``/``<=``, values truncated like the column) and are
ANDed to them: the index narrows the rows, the JSON condition keeps the typing rules ("1" never
matches 1). Only conjunctive parts of a filter (top level, ``$and``) are narrowed.

Each index records its key and type in its comment, so any store that opens the table later
recognises it from the table's metadata alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.vectorstores.filters import split_path, validate_filter
from langchain_tidb_bedrock.vectorstores.schema import quote_identifier

__all__ = [
    "COMMENT_PREFIX",
    "MetadataIndex",
    "add_index_ddl",
    "declare",
    "declare_all",
    "narrowing",
    "parse_comment",
    "refusal",
    "same_kind",
]

COMMENT_PREFIX = "ltb-meta:"
STRING_LENGTH = 255
_NUMERIC = "'INTEGER', 'UNSIGNED INTEGER', 'DOUBLE', 'DECIMAL'"
# Declared type -> kind of index. bool is left out on purpose: two values, no selectivity.
_KINDS: dict[str, str] = {"str": "str", "int": "number", "float": "number", "list[str]": "list"}


@dataclass(frozen=True)
class MetadataIndex:
    """One indexed key: its filter key, declared type and the names of its column and index."""

    key: str
    type: str  # "str", "int", "float" or "list[str]"

    @property
    def kind(self) -> str:
        """What the index holds: "str", "number" or "list"."""
        return _KINDS[self.type]

    @property
    def path(self) -> tuple[str, ...]:
        """The key's JSON path segments (``a.b`` -> ``("a", "b")``)."""
        return tuple(split_path(self.key))

    @property
    def json_path(self) -> str:
        """``$."a"."b"``: the same text the filter compiler binds, so TiDB matches the index."""
        return "$" + "".join(f'."{seg}"' for seg in self.path)

    @property
    def _digest(self) -> str:
        return hashlib.sha1(json.dumps(self.path).encode(), usedforsecurity=False).hexdigest()[:12]

    @property
    def column(self) -> str | None:
        """The VIRTUAL column's name (None for a list key: its index is on an expression)."""
        return None if self.kind == "list" else f"ltb_meta_{self._digest}"

    @property
    def index(self) -> str:
        """The secondary index's name."""
        return f"ltb_meta_{self._digest}_idx"

    @property
    def comment(self) -> str:
        """Recorded on the index, so the table says which key and type it serves."""
        return COMMENT_PREFIX + json.dumps({"key": self.key, "type": self.type}, sort_keys=True)


def _type_name(tp: object) -> str:
    if isinstance(tp, str):
        name = tp.replace(" ", "")
    elif tp is bool:
        name = "bool"
    elif isinstance(tp, type):
        name = tp.__name__
    else:
        name = str(tp).replace(" ", "").replace("typing.", "").replace("List[", "list[")
    return name


def declare(key: object, tp: object) -> MetadataIndex:
    """Validate one ``key: type`` declaration.

    Raises:
        ValueError: an invalid key (as filters define keys) or an unsupported type.
    """
    if not isinstance(key, str) or not key or key.startswith("$"):
        msg = f"indexed_metadata key must be a metadata field name, got {key!r}"
        raise InvalidInputError(msg)
    try:
        validate_filter({key: {"$exists": True}})
    except Exception as exc:
        msg = f"indexed_metadata key {key!r} is not a valid metadata field: {exc}"
        raise InvalidInputError(msg) from None
    name = _type_name(tp)
    if name not in _KINDS:
        msg = (
            f"indexed_metadata[{key!r}]: unsupported type {tp!r}; use str, int, float or "
            "list[str]" + (" (a boolean index would not narrow anything)" if name == "bool" else "")
        )
        raise InvalidInputError(msg)
    return MetadataIndex(key, name)


def declare_all(spec: Mapping[str, Any] | None) -> dict[tuple[str, ...], MetadataIndex]:
    """Validate ``indexed_metadata=``; keyed by path, so ``a.b`` is one key however spelled."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        msg = f"indexed_metadata must be a dict of key -> type, got {spec!r}"
        raise InvalidInputError(msg)
    out: dict[tuple[str, ...], MetadataIndex] = {}
    for key, tp in spec.items():
        idx = declare(key, tp)
        out[idx.path] = idx
    return out


def parse_comment(comment: str) -> MetadataIndex | None:
    """The index an index comment describes, or None when it is not one of ours."""
    if not comment.startswith(COMMENT_PREFIX):
        return None
    try:
        data = json.loads(comment[len(COMMENT_PREFIX) :])
        return declare(data["key"], data["type"])
    except (ValueError, KeyError, TypeError):
        return None


def add_index_ddl(table: str, idx: MetadataIndex) -> list[tuple[str, tuple[str, ...]]]:
    """``(sql, params)`` statements adding the index (and its column) to ``table``.

    The JSON path and the comment are driver-bound parameters (the generated column's
    expression needs them as literals); names are derived, validated identifiers.
    """
    t = quote_identifier(table)
    index = quote_identifier(idx.index)
    if idx.kind == "list":
        return [
            (
                f"ALTER TABLE {t} ADD INDEX {index} "
                f"((CAST(JSON_EXTRACT(`meta`, %s) AS CHAR({STRING_LENGTH}) ARRAY))) COMMENT %s",
                (idx.json_path, idx.comment),
            )
        ]
    column = quote_identifier(idx.column or "")
    value = "JSON_EXTRACT(`meta`, %s)"
    if idx.kind == "str":
        definition = (
            f"VARCHAR({STRING_LENGTH}) CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin "
            f"GENERATED ALWAYS AS (CASE WHEN JSON_TYPE({value}) = 'STRING' "
            f"THEN LEFT(JSON_UNQUOTE({value}), {STRING_LENGTH}) END) VIRTUAL"
        )
    else:
        definition = (
            f"DOUBLE GENERATED ALWAYS AS (CASE WHEN JSON_TYPE({value}) IN ({_NUMERIC}) "
            f"THEN CAST({value} AS DOUBLE) END) VIRTUAL"
        )
    return [
        (
            f"ALTER TABLE {t} ADD COLUMN {column} {definition}",
            (idx.json_path, idx.json_path),
        ),
        (f"ALTER TABLE {t} ADD INDEX {index} ({column}) COMMENT %s", (idx.comment,)),
    ]


# --------------------------------------------------------------------------- narrowing


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar_conditions(
    idx: MetadataIndex, column: sa.ColumnElement[Any], ops: Mapping[str, Any]
) -> list[sa.ColumnElement[bool]]:
    if idx.kind == "str":
        fits: Any = lambda v: isinstance(v, str)  # noqa: E731
        cast: Any = lambda v: v[:STRING_LENGTH]  # noqa: E731 - as the column truncates
        type_: Any = sa.String
    else:
        fits, cast, type_ = _is_number, float, sa.Float
    bind = lambda v: sa.bindparam(None, cast(v), type_=type_)  # noqa: E731
    out: list[sa.ColumnElement[bool]] = []
    for op, arg in ops.items():
        if op == "$eq" and fits(arg):
            out.append(column == bind(arg))
        elif op == "$in" and isinstance(arg, (list, tuple)) and arg and all(map(fits, arg)):
            out.append(column.in_([bind(v) for v in arg]))
        elif op in ("$gt", "$gte") and fits(arg):
            # Loosened to >=: truncation and double rounding are monotonic, never strict.
            out.append(column >= bind(arg))
        elif op in ("$lt", "$lte") and fits(arg):
            out.append(column <= bind(arg))
        elif op == "$between" and isinstance(arg, (list, tuple)) and all(map(fits, arg)):
            out.append(column.between(bind(arg[0]), bind(arg[1])))
    return out


def _list_conditions(
    idx: MetadataIndex, meta: sa.ColumnElement[Any], ops: Mapping[str, Any]
) -> list[sa.ColumnElement[bool]]:
    arg = ops.get("$contains")
    if not isinstance(arg, str):
        return []
    # A plain string MEMBER OF the same JSON_EXTRACT text the index is built on: TiDB then
    # answers it from the multi-valued index.
    path = sa.bindparam(None, idx.json_path, type_=sa.String)
    array = sa.func.JSON_EXTRACT(meta, path, type_=sa.types.NullType)
    value = sa.bindparam(None, arg, type_=sa.String)
    return [value.op("MEMBER OF", is_comparison=True)(sa.sql.elements.Grouping(array))]


def narrowing(
    filter: Mapping[str, Any] | None,
    indexes: Mapping[tuple[str, ...], MetadataIndex],
    meta: sa.ColumnElement[Any],
    column: Any,
) -> list[sa.ColumnElement[bool]]:
    """Index conditions implied by ``filter`` (a validated filter); [] when none applies.

    ``column(name)`` returns the SQL column for a generated column's name.
    """
    if not filter or not indexes:
        return []
    out: list[sa.ColumnElement[bool]] = []

    def walk(node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            if key == "$and":
                for child in value:
                    walk(child)
                continue
            if key.startswith("$"):
                continue  # $or / $not: no conjunctive condition to narrow by
            idx = indexes.get(tuple(split_path(key)))
            if idx is None:
                continue
            ops = value if isinstance(value, Mapping) else {"$eq": value}
            if idx.kind == "list":
                out.extend(_list_conditions(idx, meta, ops))
            else:
                out.extend(_scalar_conditions(idx, column(idx.column), ops))

    walk(filter)
    return out


def same_kind(a: MetadataIndex, b: MetadataIndex) -> bool:
    """Whether two declarations need the same index (``int`` and ``float`` share one)."""
    return a.kind == b.kind


def refusal(idx: MetadataIndex, exc: BaseException) -> str:
    """The error for an index TiDB would not build, with the likely reason."""
    orig = getattr(exc, "orig", exc)
    hint = ""
    if idx.kind == "list":
        hint = (
            f"; every stored value of {idx.key!r} must be an array of strings of at most "
            f"{STRING_LENGTH} characters, a string, or absent"
        )
    return f"TiDB refused the index for metadata key {idx.key!r} ({idx.type}): {orig}{hint}"
