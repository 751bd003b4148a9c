"""Table DDL and identifiers (no server needed)."""

from __future__ import annotations


def test_index_ddl_fits_identifier_limits() -> None:
    from langchain_tidb_bedrock.vectorstores.indexes import add_index_sql
    from langchain_tidb_bedrock.vectorstores.schema import (
        DistanceStrategy,
        create_table_sql,
        index_name,
    )

    table = "t" * 64
    name = index_name(table)
    assert len(name) == 64
    assert f"VECTOR INDEX `{name}`" in create_table_sql(
        table, 8, DistanceStrategy.COSINE, with_index=True
    )
    assert f"ADD VECTOR INDEX `{name}`" in add_index_sql(
        table, DistanceStrategy.L2, on_demand_replica=False
    )


def test_existing_vector_index_is_recognised_per_metric() -> None:
    from langchain_tidb_bedrock.vectorstores.indexes import has_vector_index
    from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy

    ddl = (
        "CREATE TABLE `docs` (\n  `id` varchar(255) NOT NULL,\n  `embedding` vector(8) NOT NULL,\n"
        "  PRIMARY KEY (`id`) /*T![clustered_index] CLUSTERED */,\n"
        "  VECTOR INDEX `idx_docs_embedding`((VEC_COSINE_DISTANCE(`embedding`))) USING HNSW\n)"
    )
    assert has_vector_index(ddl, DistanceStrategy.COSINE)
    assert not has_vector_index(ddl, DistanceStrategy.L2)
    assert not has_vector_index(ddl, DistanceStrategy.INNER_PRODUCT)
    legacy = (
        "CREATE TABLE `t` (\n  `embedding` vector(8) NOT NULL COMMENT 'hnsw(distance=cosine)'\n)"
    )
    assert not has_vector_index(legacy, DistanceStrategy.COSINE)  # a comment is no index
