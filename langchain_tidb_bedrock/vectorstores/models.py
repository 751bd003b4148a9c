"""The store's table as a typed SQLAlchemy model, for querying it with SQLAlchemy directly.

The store itself moves vectors as pre-encoded text (``encoding.py``, the fast path); this model
uses tidb-vector's ``VectorType``, so a query built on it takes and returns lists of floats and
has the distance helpers (``t.c.embedding.cosine_distance(q)``).
"""

from __future__ import annotations

import sqlalchemy as sa
from tidb_vector.sqlalchemy import VectorType

from langchain_tidb_bedrock.vectorstores.schema import ID_LENGTH, validate_identifier

__all__ = ["vector_table"]


def vector_table(name: str, dimension: int | None, metadata: sa.MetaData | None = None) -> sa.Table:
    """``sa.Table`` for a store table: ``id``, ``embedding`` (VECTOR), ``document``, ``meta``."""
    return sa.Table(
        validate_identifier(name),
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
        sa.Column("embedding", VectorType(dimension)),
        sa.Column("document", sa.Text),
        sa.Column("meta", sa.JSON),
    )
