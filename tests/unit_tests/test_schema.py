"""Table DDL and identifiers (no server needed)."""

from __future__ import annotations


def test_index_ddl_fits_identifier_limits() -> None:
    from langchain_tidb_bedrock.indexes import add_index_sql
    from langchain_tidb_bedrock.schema import DistanceStrategy, create_table_sql, index_name

    table = "t" * 64
    name = index_name(table)
    assert len(name) == 64
    assert f"VECTOR INDEX `{name}`" in create_table_sql(
        table, 8, DistanceStrategy.COSINE, with_index=True
    )
    assert f"ADD VECTOR INDEX `{name}`" in add_index_sql(
        table, DistanceStrategy.L2, on_demand_replica=False
    )
