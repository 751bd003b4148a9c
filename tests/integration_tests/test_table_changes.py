"""A long-lived store notices another process dropping, recreating or altering its table."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import InvalidInputError, TiDBVectorStore


def _other_process(url: str, code: str) -> None:
    """Run ``code`` (with ``engine`` bound to a plain SQLAlchemy engine) in another process."""
    script = (
        "import sqlalchemy as sa\n"
        f"engine = sa.create_engine({url!r})\n"
        "with engine.begin() as conn:\n" + textwrap.indent(textwrap.dedent(code), "    ")
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)  # noqa: S603


def _store(url: str, table: str, **kwargs: object) -> TiDBVectorStore:
    return TiDBVectorStore(
        DeterministicFakeEmbedding(size=8), connection_string=url, table_name=table, **kwargs
    )


def test_a_dropped_table_is_recreated_by_the_next_write(tidb_url: str, table_name: str) -> None:
    store = _store(tidb_url, table_name)
    store.add_texts(["first"], ids=["1"])
    assert store.count() == 1
    _other_process(tidb_url, f"conn.execute(sa.text('DROP TABLE `{table_name}`'))")
    assert store.similarity_search("first", k=1) == []  # a read sees no table, no error
    store.add_texts(["second"], ids=["2"])  # recreated where the store would create it
    assert [d.id for d in store.similarity_search("second", k=1)] == ["2"]
    assert store.count() == 1


async def test_a_dropped_table_is_recreated_by_an_async_write(
    tidb_url: str, table_name: str
) -> None:
    store = _store(tidb_url, table_name)
    await store.aadd_texts(["first"], ids=["1"])
    _other_process(tidb_url, f"conn.execute(sa.text('DROP TABLE `{table_name}`'))")
    await store.aadd_texts(["second"], ids=["2"])
    assert [d.id for d in await store.aget_by_ids(["1", "2"])] == ["2"]


def test_a_table_recreated_at_another_dimension_is_never_written_with_the_old_one(
    tidb_url: str, table_name: str
) -> None:
    store = _store(tidb_url, table_name)
    store.add_texts(["first"], ids=["1"])
    _other_process(
        tidb_url,
        f"""
        conn.execute(sa.text('DROP TABLE `{table_name}`'))
        conn.execute(sa.text(
            'CREATE TABLE `{table_name}` (id VARCHAR(255) PRIMARY KEY, embedding VECTOR(16) '
            'NOT NULL, document MEDIUMTEXT, meta JSON)'))
        """,
    )
    with pytest.raises(InvalidInputError, match="16-dimensional"):
        store.add_texts(["second"], ids=["2"])
    wide = _store(tidb_url, table_name, embedding_dimension=None)
    wide.embedding = DeterministicFakeEmbedding(size=16)
    wide.add_texts(["third"], ids=["3"])
    assert [d.id for d in store.get_by_ids(["1", "2", "3"])] == ["3"]


def test_a_dropped_metadata_index_does_not_break_filtered_search(
    tidb_url: str, table_name: str
) -> None:
    store = _store(tidb_url, table_name, indexed_metadata={"tenant": str})
    store.add_texts(["a", "b"], [{"tenant": "x"}, {"tenant": "y"}], ids=["1", "2"])
    assert [d.id for d in store.similarity_search("a", k=2, filter={"tenant": "x"})] == ["1"]
    _other_process(
        tidb_url,
        f"""
        cols = [r[0] for r in conn.execute(sa.text(
            "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = '{table_name}' AND COLUMN_NAME NOT IN "
            "('id', 'embedding', 'document', 'meta')"))]
        assert cols, "the store made no generated column for its indexed key"
        for col in cols:
            conn.execute(sa.text(f'ALTER TABLE `{table_name}` DROP COLUMN `{{col}}`'))
        """,
    )
    assert [d.id for d in store.similarity_search("a", k=2, filter={"tenant": "x"})] == ["1"]
    assert [d.id for d in store.similarity_search("b", k=2, filter={"tenant": "y"})] == ["2"]
