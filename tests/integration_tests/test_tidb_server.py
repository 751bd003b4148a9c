"""The foundation: a real TiDB answers vector SQL the way the store relies on."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

ROWS = {1: [1, 0, 0], 2: [0.9, 0.1, 0], 3: [0, 1, 0], 4: [-1, 0, 0]}


def _cosine(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a), np.asarray(b)
    return float(1 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def test_vector_roundtrip_and_exact_knn(tidb_engine: sa.Engine, table_name: str) -> None:
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, v VECTOR(3))"))
        conn.execute(
            sa.text(f"INSERT INTO `{table_name}` VALUES (:id, :v)"),
            [{"id": k, "v": str(v)} for k, v in ROWS.items()],
        )
    with tidb_engine.connect() as conn:
        stored = conn.execute(sa.text(f"SELECT v FROM `{table_name}` WHERE id = 2")).scalar()
        assert stored == "[0.9,0.1,0]"
        cos = (
            conn.execute(
                sa.text(
                    f"SELECT id FROM `{table_name}` ORDER BY VEC_COSINE_DISTANCE(v, :q) LIMIT 3"
                ),
                {"q": "[1, 0.1, 0]"},
            )
            .scalars()
            .all()
        )
        expected = sorted(ROWS, key=lambda k: _cosine(ROWS[k], [1, 0.1, 0]))[:3]
        assert cos == expected == [2, 1, 3]
        l2 = conn.execute(
            sa.text(
                f"SELECT id, VEC_L2_DISTANCE(v, :q) AS d FROM `{table_name}` ORDER BY d LIMIT 4"
            ),
            {"q": "[0.5, 2, 0]"},
        ).all()
        q = np.array([0.5, 2, 0])
        ref = {k: float(np.linalg.norm(np.asarray(v) - q)) for k, v in ROWS.items()}
        assert [r.id for r in l2] == sorted(ref, key=ref.__getitem__)
        assert [r.d for r in l2] == pytest.approx(sorted(ref.values()), rel=1e-6)


def test_vector_functions_match_reference(tidb_engine: sa.Engine) -> None:
    with tidb_engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT VEC_L2_DISTANCE('[0,3]','[4,0]'), VEC_COSINE_DISTANCE('[1,1]','[-1,-1]'),"
                " VEC_NEGATIVE_INNER_PRODUCT('[1,2]','[3,4]'), VEC_DIMS('[1,2,3]')"
            )
        ).one()
    assert tuple(row) == pytest.approx((5.0, 2.0, -11.0, 3))


def test_wrong_dimension_insert_is_rejected(tidb_engine: sa.Engine, table_name: str) -> None:
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, v VECTOR(3))"))
    with (
        pytest.raises(sa.exc.DBAPIError, match="vector has 2 dimensions, does not fit VECTOR"),
        tidb_engine.begin() as conn,
    ):
        conn.execute(sa.text(f"INSERT INTO `{table_name}` VALUES (1, '[1, 2]')"))


def test_vector_index_needs_tiflash(
    tidb_engine: sa.Engine, table_name: str, tidb_has_tiflash: bool
) -> None:
    if tidb_has_tiflash:
        pytest.skip("this server has TiFlash: the index is created, see the tiflash-marked tests")
    with pytest.raises(sa.exc.DBAPIError) as info, tidb_engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, v VECTOR(3),"
                " VECTOR INDEX idx_v ((VEC_COSINE_DISTANCE(v))))"
            )
        )
    assert info.value.orig.args[0] == 8200
    assert "TiFlash" in str(info.value.orig.args[1])


@pytest.mark.tiflash
def test_vector_index_with_tiflash(tidb_engine: sa.Engine, table_name: str) -> None:
    with tidb_engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, v VECTOR(3),"
                " VECTOR INDEX idx_v ((VEC_COSINE_DISTANCE(v))))"
            )
        )
        names = (
            conn.execute(
                sa.text(
                    "SELECT KEY_NAME FROM INFORMATION_SCHEMA.TIDB_INDEXES"
                    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
                ),
                {"t": table_name},
            )
            .scalars()
            .all()
        )
    assert "idx_v" in names
