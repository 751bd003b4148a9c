"""Filter SQL cost: a boolean and a string-equality filter against one plain statement.

The store's filters keep JSON typing (``true`` is not ``1``, ``"1"`` is not ``1``); these rows
show what that costs over the statement a user would write by hand on the same table:
``WHERE JSON_EXTRACT(meta, '$.flag') = true ORDER BY distance LIMIT k``.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import pymysql
import sqlalchemy as sa

from benchmarks.common import Row, vectors
from langchain_tidb_bedrock import TiDBVectorStore

K = 4
DIM = 128

# (label, our filter, the hand-written condition, share of rows matching)
CASES = [
    ("boolean flag = true", {"flag": True}, "JSON_EXTRACT(meta, '$.flag') = true", "30%"),
    ("string equality", {"k": "v7"}, "JSON_UNQUOTE(JSON_EXTRACT(meta, '$.k')) = 'v7'", "1%"),
]


def _connect(url: str) -> Any:
    u = sa.engine.make_url(url)
    return pymysql.connect(
        host=u.host, port=u.port or 4000, user=u.username or "root", database=u.database
    )


def filter_rows(url: str, n: int, queries: int) -> list[Row]:
    """p50 of a pre-filtered search through the store vs the plain statement, interleaved."""
    table = f"bench_filters_{uuid.uuid4().hex[:8]}"
    store = TiDBVectorStore(None, connection_string=url, table_name=table, filter_strategy="pre")
    matrix = vectors(n, DIM, seed=7)
    metas = [{"flag": (i * 7919) % 10 < 3, "k": f"v{i % 100}", "n": i} for i in range(n)]
    store.add_embeddings(
        [f"doc {i}" for i in range(n)], matrix, metas, ids=[str(i) for i in range(n)]
    )
    qs = vectors(queries, DIM, seed=11)
    rows: list[Row] = []
    conn = _connect(url)
    try:
        cur = conn.cursor()
        for label, flt, plain, share in CASES:
            ours_ms: list[float] = []
            plain_ms: list[float] = []
            for i in range(queries + 2):  # two warm-ups (plan, branch memory)
                qv = "[" + ",".join(f"{x:.6f}" for x in qs[i % queries]) + "]"
                sql = (
                    f"SELECT id, document, meta, VEC_COSINE_DISTANCE(embedding, %s) AS d "
                    f"FROM `{table}` WHERE {plain} ORDER BY d LIMIT {K}"
                )
                # Rotating order, so neither contender always runs on a warmer cache.
                for who in ("ours", "plain") if i % 2 else ("plain", "ours"):
                    t = time.perf_counter()
                    if who == "ours":
                        got = store.similarity_search_by_vector(
                            list(qs[i % queries]), k=K, filter=flt
                        )
                    else:
                        cur.execute(sql, (qv,))
                        got = cur.fetchall()
                    ms = (time.perf_counter() - t) * 1000
                    assert len(got) == K
                    if i >= 2:
                        (ours_ms if who == "ours" else plain_ms).append(ms)
            ours, hand = statistics.median(ours_ms), statistics.median(plain_ms)
            rows.append(
                Row(
                    name=f"filtered search p50 ms, {label} ({share}), {n:,} docs",
                    unit="ms",
                    ours=ours,
                    others={"one plain statement": hand},
                    higher_is_better=False,
                    target="<= 1.1x plain",
                    met=ours <= 1.1 * hand,
                    notes=f"ours / plain = {ours / hand:.2f}; exact search (no vector index)",
                )
            )
    finally:
        conn.close()
        store.drop_table()
        store.close()
    return rows
