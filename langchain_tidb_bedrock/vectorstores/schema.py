"""Table layout of the store: identifiers, DDL, and reading an existing table back.

The column names (``id``, ``embedding``, ``document``, ``meta``) are the ones langchain-community's
TiDB store uses, so a table it created opens as-is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.db.identifiers import quote_identifier, validate_identifier
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = [
    "DistanceStrategy",
    "TableInfo",
    "create_table_sql",
    "index_name",
    "quote_identifier",
    "read_table_info",
    "table_object",
    "validate_identifier",
]

MAX_DIMENSION = 16383
ID_LENGTH = 255
_VECTOR_TYPE = re.compile(r"^vector(?:\((\d+)\))?$", re.IGNORECASE)
_VARCHAR_TYPE = re.compile(r"^varchar\((\d+)\)$", re.IGNORECASE)
_LEGACY_METRIC = re.compile(r"distance\s*=\s*(cosine|l2)", re.IGNORECASE)


class DistanceStrategy(str, Enum):
    """Distance used for search; each maps to one TiDB function."""

    COSINE = "cosine"
    L2 = "l2"
    INNER_PRODUCT = "inner_product"

    @property
    def sql_function(self) -> str:
        """The TiDB function computing this distance."""
        return {
            DistanceStrategy.COSINE: "VEC_COSINE_DISTANCE",
            DistanceStrategy.L2: "VEC_L2_DISTANCE",
            DistanceStrategy.INNER_PRODUCT: "VEC_NEGATIVE_INNER_PRODUCT",
        }[self]

    @property
    def indexable(self) -> bool:
        """TiDB's HNSW index serves cosine and L2 only."""
        return self is not DistanceStrategy.INNER_PRODUCT

    @classmethod
    def parse(cls, value: DistanceStrategy | str) -> DistanceStrategy:
        """Accept an enum member or its name, case-insensitively, with a clear error."""
        if isinstance(value, DistanceStrategy):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            options = ", ".join(repr(m.value) for m in cls)
            msg = f"distance_strategy must be one of {options}, got {value!r}"
            raise InvalidInputError(msg) from None


def index_name(table: str) -> str:
    """Name of the store's vector index (identifiers stop at 64 characters)."""
    return f"idx_{table}_embedding"[:64]


def create_table_sql(
    table: str, dimension: int, strategy: DistanceStrategy, *, with_index: bool
) -> str:
    """DDL for a new store table, with an inline HNSW index when ``with_index``."""
    if not 1 <= dimension <= MAX_DIMENSION:
        msg = f"embedding dimension must be between 1 and {MAX_DIMENSION}, got {dimension}"
        raise InvalidInputError(msg)
    index = ""
    if with_index:
        index = (
            f",\n  VECTOR INDEX `{index_name(table)}` "
            f"(({strategy.sql_function}(`embedding`))) USING HNSW"
        )
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(table)} (\n"
        # NO PAD binary collation: ids are compared exactly ('a' and 'a ' are two documents).
        f"  `id` VARCHAR({ID_LENGTH}) CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin NOT NULL "
        "PRIMARY KEY,\n"
        f"  `embedding` VECTOR({int(dimension)}) NOT NULL,\n"
        "  `document` MEDIUMTEXT,\n"
        "  `meta` JSON"
        f"{index}\n)"
    )


def table_object(table: str) -> sa.Table:
    """A Core table for DML. Vectors and JSON travel as pre-encoded text (see encoding.py)."""
    return sa.Table(
        validate_identifier(table),
        sa.MetaData(),
        sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
        sa.Column("embedding", sa.Text),
        sa.Column("document", sa.Text),
        sa.Column("meta", sa.Text),
    )


@dataclass(frozen=True)
class TableInfo:
    """What an existing table tells us about itself."""

    dimension: int | None
    id_length: int | None
    legacy_metric: DistanceStrategy | None
    columns: frozenset[str]
    # (index name, comment) of indexes whose comment may describe an indexed metadata key.
    index_comments: tuple[tuple[str, str], ...] = ()
    # The comment of the keyword index's postings table (``<table>_kw``), when it exists.
    keyword_comment: str | None = None


# Columns, commented secondary indexes and the keyword index's table in one read (the last
# column says which), so a store learns its table, indexed metadata keys and keyword index
# included, in one round trip.
COLUMNS_QUERY = sa.text(
    "SELECT COLUMN_NAME, COLUMN_TYPE, COLUMN_COMMENT, 'column' FROM INFORMATION_SCHEMA.COLUMNS "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table "
    "UNION ALL SELECT DISTINCT INDEX_NAME, '', INDEX_COMMENT, 'index' "
    "FROM INFORMATION_SCHEMA.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
    "AND TABLE_NAME = :table AND INDEX_COMMENT <> '' "
    "UNION ALL SELECT TABLE_NAME, '', TABLE_COMMENT, 'keyword' FROM INFORMATION_SCHEMA.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = CONCAT(:table, '_kw')"
)


def _kind(row: Any) -> str:
    return str(row[3]) if len(row) > 3 else "column"


def read_table_info(rows: list[Any], table: str) -> TableInfo | None:
    """Interpret ``COLUMNS_QUERY`` rows; None when the table does not exist."""
    index_comments = tuple(
        sorted((str(r[0]), str(r[2] or "")) for r in rows if _kind(r) == "index")
    )
    keyword = [str(r[2] or "") for r in rows if _kind(r) == "keyword"]
    rows = [r for r in rows if _kind(r) == "column"]
    if not rows:
        return None
    cols = {str(r[0]).lower(): (str(r[1]), str(r[2] or "")) for r in rows}
    missing = {"id", "embedding", "document", "meta"} - set(cols)
    if missing:
        msg = (
            f"table {table!r} exists but is not a vector store table: "
            f"missing column(s) {', '.join(sorted(missing))}"
        )
        raise InvalidInputError(msg)
    vec = _VECTOR_TYPE.match(cols["embedding"][0])
    if vec is None:
        msg = f"table {table!r}: column `embedding` is {cols['embedding'][0]}, not VECTOR"
        raise InvalidInputError(msg)
    varchar = _VARCHAR_TYPE.match(cols["id"][0])
    legacy = _LEGACY_METRIC.search(cols["embedding"][1])
    return TableInfo(
        dimension=int(vec.group(1)) if vec.group(1) else None,
        id_length=int(varchar.group(1)) if varchar else None,
        legacy_metric=DistanceStrategy(legacy.group(1).lower()) if legacy else None,
        columns=frozenset(cols),
        index_comments=index_comments,
        keyword_comment=keyword[0] if keyword else None,
    )
