"""Store ingest and search latency: ours vs langchain-community vs raw PyMySQL, one run."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pymysql
import sqlalchemy as sa

from benchmarks.common import (
    PrecomputedEmbeddings,
    Row,
    json_meta,
    legacy_store_class,
    metadata,
    vectors,
)
from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.db import bulk

DIM = 512
_DDL = (
    "CREATE TABLE `{t}` (`id` VARCHAR(255) NOT NULL PRIMARY KEY, `embedding` VECTOR({d}) NOT NULL,"
    " `document` MEDIUMTEXT, `meta` JSON)"
)


class Corpus:
    """n documents with ids, texts, metadata and 512-dim unit vectors."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ids = [f"id-{i}" for i in range(n)]
        self.texts = [f"document number {i} about topic {i % 37}" for i in range(n)]
        self.metas = [metadata(i) for i in range(n)]
        self.matrix = vectors(n, DIM)
        self.lists = self.matrix.tolist()
        self.embeddings = PrecomputedEmbeddings(dict(zip(self.texts, self.lists, strict=True)))


def _raw_conn(url: str) -> pymysql.connections.Connection[Any]:
    u = sa.engine.make_url(url)
    return pymysql.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password or "",
        database=u.database,
        local_infile=True,
        autocommit=True,
    )


def _fresh(cur: Any, table: str) -> None:
    cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    cur.execute(_DDL.format(t=table, d=DIM))


def raw_insert(url: str, c: Corpus, batch: int = 500) -> float:
    """Multi-row INSERT via PyMySQL executemany, one transaction per batch. Rows/s."""
    table = f"b_raw_{uuid.uuid4().hex[:8]}"
    conn = _raw_conn(url)
    cur = conn.cursor()
    _fresh(cur, table)
    start = time.perf_counter()
    vec = [orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY).decode() for r in c.matrix]
    rows = [(c.ids[i], vec[i], c.texts[i], json_meta(i)) for i in range(c.n)]
    sql = f"INSERT INTO `{table}` (id, embedding, document, meta) VALUES (%s, %s, %s, %s)"
    for s in range(0, c.n, batch):
        cur.executemany(sql, rows[s : s + batch])
        conn.commit()
    rate = c.n / (time.perf_counter() - start)
    cur.execute(f"DROP TABLE `{table}`")
    conn.close()
    return rate


def raw_load_data(url: str, c: Corpus, batch: int = 500) -> float:
    """LOAD DATA LOCAL INFILE of a TSV per batch (one transaction each). Rows/s."""
    table = f"b_load_{uuid.uuid4().hex[:8]}"
    conn = _raw_conn(url)
    cur = conn.cursor()
    _fresh(cur, table)
    start = time.perf_counter()
    vec = [orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY).decode() for r in c.matrix]
    fd, path = tempfile.mkstemp(suffix=".tsv", dir=bulk._TMP_DIR)  # RAM-backed, as the store
    os.close(fd)
    try:
        for s in range(0, c.n, batch):
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(
                    f"{c.ids[i]}\t{vec[i]}\t{c.texts[i]}\t{json_meta(i)}\n"
                    for i in range(s, min(s + batch, c.n))
                )
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY '\\t' (id, embedding, document, meta)",
                (path,),
            )
            conn.commit()
    finally:
        os.unlink(path)
    rate = c.n / (time.perf_counter() - start)
    cur.execute(f"DROP TABLE `{table}`")
    conn.close()
    return rate


def ours_ingest(url: str, c: Corpus, keep: bool = False) -> tuple[float, TiDBVectorStore]:
    """TiDBVectorStore.add_embeddings. Rows/s."""
    store = TiDBVectorStore(
        c.embeddings, connection_string=url, table_name=f"b_ours_{uuid.uuid4().hex[:8]}"
    )
    store.create_table(DIM)  # like the raw paths: the table exists before the clock starts
    start = time.perf_counter()
    store.add_embeddings(c.texts, c.matrix, c.metas, ids=c.ids)
    rate = c.n / (time.perf_counter() - start)
    if not keep:
        store.drop_table()
    return rate, store


def community_ingest(url: str, c: Corpus, keep: bool = False) -> tuple[float, Any]:
    """langchain-community TiDBVectorStore.add_texts with precomputed vectors. Rows/s."""
    legacy = legacy_store_class()
    store = legacy(
        embedding_function=c.embeddings,
        connection_string=url,
        table_name=f"b_lc_{uuid.uuid4().hex[:8]}",
        distance_strategy="cosine",
    )
    # Its ids column is VARCHAR(36): give it uuids, as its users do.
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, i)) for i in c.ids]
    start = time.perf_counter()
    store.add_texts(c.texts, c.metas, ids=ids)
    rate = c.n / (time.perf_counter() - start)
    if not keep:
        store.drop_vectorstore()
    return rate, store


def ingest_row(url: str, n: int, repeat: int) -> Row:
    c = Corpus(n)
    # Warm-up: first writes into a fresh TiDB pay for region splits and caches.
    ours_ingest(url, Corpus(min(n, 500)))
    contenders: list[tuple[str, Callable[[], float]]] = [
        ("ours", lambda: ours_ingest(url, c)[0]),
        ("community", lambda: community_ingest(url, c)[0]),
        ("insert", lambda: raw_insert(url, c)),
        ("load", lambda: raw_load_data(url, c)),
    ]
    # Round-robin, a different contender first each time: the server drifts during a run
    # (tables created and dropped, compaction), which must not favour whoever runs first.
    runs: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for rep in range(repeat):
        for name, fn in contenders[rep % 4 :] + contenders[: rep % 4]:
            runs[name].append(fn())
    ours, community, insert, load = (statistics.median(runs[k]) for k in runs)
    row = Row(
        name=f"store ingest, {n:,} docs x {DIM}d (rows/s)",
        unit="rows/s",
        ours=ours,
        others={"langchain-community": community, "raw INSERT": insert, "raw LOAD DATA": load},
        target=">= 0.9x raw ceiling, >= 2x langchain-community",
    )
    ceiling = max(insert, load)
    row.met = ours >= 0.9 * ceiling and ours >= 2 * community
    row.notes = f"ceiling = {'LOAD DATA' if load >= insert else 'INSERT'}"
    return row


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[max(0, int(len(ms) * 0.95) - 1)]


def _checker(bad: dict[str, list[int]], filtered: bool, bucket: int, expected: int) -> Any:
    """Count short results (fewer than the rows that could match) and rows that don't match."""

    def check(name: str, metas: list[dict[str, Any]]) -> None:
        if filtered:
            bad[name][0] += len(metas) < expected
            bad[name][1] += sum(m.get("bucket") != bucket for m in metas)

    return check


def _literal(store: TiDBVectorStore, stmt: Any) -> str:
    return str(stmt.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))


def _our_sql(store: TiDBVectorStore, vector: Any, k: int, flt: dict[str, Any] | None) -> str:
    """The one statement the store sends for a query, with every value inlined."""
    q = store._table.queries
    qv = orjson.dumps(vector, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    if flt is None:
        return _literal(store, q.knn(qv, k))
    return _literal(store, q.prefilter_template(k, flt).params(qv=qv))


def search_rows(url: str, n: int, queries: int) -> list[Row]:
    """p50/p95 latency over ``queries`` k=4 searches, unfiltered and with a 1% filter."""
    c = Corpus(n)
    _, ours = ours_ingest(url, c, keep=True)
    _, legacy = community_ingest(url, c, keep=True)
    qs = vectors(queries, DIM, seed=1)
    q_texts = [f"query {i}" for i in range(queries)]
    table = dict(zip(q_texts, qs.tolist(), strict=True))
    c.embeddings.table.update(table)
    raw = _raw_conn(url)
    cur = raw.cursor()
    k, bucket = 4, 7
    flt = {"bucket": bucket}
    rows: list[Row] = []
    for filtered in (False, True):
        lat: dict[str, list[float]] = {"ours": [], "community": [], "raw": []}
        bad: dict[str, list[int]] = {"ours": [0, 0], "community": [0, 0], "raw": [0, 0]}
        matching = sum(1 for m in c.metas if m["bucket"] == bucket)
        check = _checker(bad, filtered, bucket, min(k, matching))

        for i, text in enumerate(q_texts):
            t0 = time.perf_counter()
            res = ours.similarity_search_with_score(text, k=k, filter=flt if filtered else None)
            lat["ours"].append(time.perf_counter() - t0)
            check("ours", [d.metadata for d, _ in res])
            t0 = time.perf_counter()
            res2 = legacy.similarity_search_with_score(text, k=k, filter=flt if filtered else None)
            lat["community"].append(time.perf_counter() - t0)
            check("community", [d.metadata for d, _ in res2])
            # Raw: exactly the statements the store sends, as text prepared beforehand.
            knn_sql = _our_sql(ours, qs[i], k, flt if filtered else None)
            t0 = time.perf_counter()
            cur.execute(knn_sql)
            fetched = cur.fetchall()
            metas = [orjson.loads(r[2]) for r in fetched]
            lat["raw"].append(time.perf_counter() - t0)
            check("raw", metas)
        p = {name: _percentiles(v) for name, v in lat.items()}
        label = "filtered 1%" if filtered else "unfiltered"
        row = Row(
            name=f"search p50 ms, {label}, {n:,} docs, k={k}",
            unit="ms",
            ours=p["ours"][0],
            others={"langchain-community": p["community"][0], "raw SQL": p["raw"][0]},
            higher_is_better=False,
            target="p50 <= 1.1x raw, <= langchain-community; 0 short/wrong",
        )
        short_wrong = {name: tuple(v) for name, v in bad.items()}
        row.met = (
            p["ours"][0] <= 1.1 * p["raw"][0]
            and p["ours"][0] <= p["community"][0]
            and (not filtered or short_wrong["ours"] == (0, 0))
        )
        row.notes = "p95 ms: " + ", ".join(f"{k2} {v[1]:.1f}" for k2, v in p.items())
        if filtered:
            row.notes += "; short/wrong results: " + ", ".join(
                f"{k2} {v[0]}/{v[1]}" for k2, v in short_wrong.items()
            )
        rows.append(row)
    raw.close()  # its open read transaction would block DROP TABLE on the metadata lock
    ours.drop_table()
    legacy.drop_vectorstore()
    ours.close()
    return rows
