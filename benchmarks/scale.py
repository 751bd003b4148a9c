"""Issue 12 rows: searches through a 20 ms round trip, filtered search at scale, indexed keys,
async vs sync ingest. Each row compares contenders within one run.
"""

# ruff: noqa: B023 - every lambda here is timed and called at once, inside its loop iteration

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa

from benchmarks.common import Row, legacy_store_class, vectors
from benchmarks.store import DIM, Corpus, _literal, _raw_conn, raw_load_data
from langchain_tidb_bedrock import TiDBVectorStore
from tests.helpers.latency_proxy import LatencyProxy

K = 4
SELECTIVITY = {"1%": 1, "10%": 10, "30%": 30}


def _filter(percent: int) -> dict[str, Any]:
    """``bucket`` is i % 100: one value is 1% of the rows, n values n%."""
    if percent == 1:
        return {"bucket": 7}
    return {"bucket": {"$in": list(range(percent))}}


def _qv(vector: Any) -> str:
    return orjson.dumps(vector, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _plain_sql(store: TiDBVectorStore, qv: str, flt: dict[str, Any] | None) -> str:
    """One plain statement: ``WHERE <our JSON filter> ORDER BY distance LIMIT k``."""
    q = store._table.queries
    stmt = q.knn_template(K)
    if flt is not None:
        stmt = stmt.where(q._condition(flt, q.table.c.meta))
    return _literal(store, stmt.params(qv=qv))


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


# --------------------------------------------------------------------------- network


def network_rows(url: str, n: int, queries: int, rtt: float = 0.02) -> list[Row]:
    """p50 of searches through a proxy adding ``rtt`` per round trip (small table: the server
    part is a few ms, as with the HNSW index on TiDB Cloud)."""
    c = Corpus(n)
    table = f"b_net_{uuid.uuid4().hex[:8]}"
    seed = TiDBVectorStore(c.embeddings, connection_string=url, table_name=table)
    seed.add_embeddings(c.texts, c.matrix, c.metas, ids=c.ids)
    seed.close()
    legacy_table = f"b_netlc_{uuid.uuid4().hex[:8]}"
    legacy = legacy_store_class()(
        embedding_function=c.embeddings,
        connection_string=url,
        table_name=legacy_table,
        distance_strategy="cosine",
    )
    legacy.add_texts(
        c.texts[:n], c.metas, ids=[str(uuid.uuid5(uuid.NAMESPACE_URL, i)) for i in c.ids]
    )
    qs = vectors(queries, DIM, seed=3)
    texts = [f"net query {i}" for i in range(queries)]
    c.embeddings.table.update(zip(texts, qs.tolist(), strict=True))
    rows: list[Row] = []
    with LatencyProxy(sa.engine.make_url(url).port or 4000, rtt=rtt, max_connections=64) as px:
        purl = px.url(url)
        ours = TiDBVectorStore(c.embeddings, connection_string=purl, table_name=table)
        lc = legacy_store_class()(
            embedding_function=c.embeddings,
            connection_string=purl,
            table_name=legacy_table,
            distance_strategy="cosine",
        )
        raw = _raw_conn(purl)
        cur = raw.cursor()

        async def measure(flt: dict[str, Any] | None) -> tuple[dict[str, list[float]], int]:
            # Every contender answers each query in turn, async included: drift on the shared
            # machine hits all of them alike.
            await ours.asimilarity_search(texts[0], k=K, filter=flt)  # warm this loop's pools
            ours.similarity_search(texts[0], k=K, filter=flt)  # and the sync ones
            lc.similarity_search(texts[0], k=K, filter=flt)
            lat: dict[str, list[float]] = {"ours": [], "ours async": [], "raw": [], "community": []}
            trips = 0
            for i, t in enumerate(texts):
                # The same search as the one statement a user would write: ``WHERE filter
                # ORDER BY distance LIMIT k`` (ours sends its remembered branch, or the guarded
                # statement on a filter's first search and every 32nd).
                sql = _plain_sql(ours, _qv(qs[i]), flt)
                px.reset()
                lat["ours"].append(
                    _timed(lambda: ours.similarity_search_with_score(t, k=K, filter=flt))
                )
                trips += px.round_trips
                t0 = time.perf_counter()
                await ours.asimilarity_search_with_score(t, k=K, filter=flt)
                lat["ours async"].append(time.perf_counter() - t0)
                lat["raw"].append(_timed(lambda: (cur.execute(sql), cur.fetchall())))
                lat["community"].append(
                    _timed(lambda: lc.similarity_search_with_score(t, k=K, filter=flt))
                )
            await ours.aclose()
            return lat, trips

        for label, flt in (("unfiltered", None), ("filtered 1%", _filter(1))):
            lat, trips = asyncio.run(measure(flt))
            p = {name: _median_ms(v) for name, v in lat.items()}
            row = Row(
                name=f"search p50 ms via {rtt * 1000:.0f} ms RTT, {label}, {n:,} docs",
                unit="ms",
                ours=p["ours"],
                others={
                    "ours async": p["ours async"],
                    "one raw statement": p["raw"],
                    "langchain-community": p["community"],
                },
                higher_is_better=False,
                target="sync and async <= 1.1x one raw statement",
            )
            row.met = max(p["ours"], p["ours async"]) <= 1.1 * p["raw"]
            row.notes = (
                f"round trips per search (ours, counted by the proxy): {trips / len(texts):.2f}"
            )
            rows.append(row)
        raw.close()
        ours.close()
    cleanup = TiDBVectorStore(None, connection_string=url, table_name=table)
    cleanup.drop_table()
    cleanup.close()
    legacy.drop_vectorstore()
    return rows


# --------------------------------------------------------------------------- ingest


def ingest_rows(url: str, n: int, repeat: int) -> list[Row]:
    """aadd_embeddings vs add_embeddings vs raw LOAD DATA, round-robin repeats."""
    c = Corpus(n)

    def sync_run() -> float:
        store = TiDBVectorStore(
            None, connection_string=url, table_name=f"b_sy_{uuid.uuid4().hex[:8]}"
        )
        store.create_table(DIM)
        rate = n / _timed(lambda: store.add_embeddings(c.texts, c.matrix, c.metas, ids=c.ids))
        store.drop_table()
        store.close()
        return rate

    def async_run() -> float:
        store = TiDBVectorStore(
            None, connection_string=url, table_name=f"b_as_{uuid.uuid4().hex[:8]}"
        )
        store.create_table(DIM)

        async def go() -> float:
            t0 = time.perf_counter()
            await store.aadd_embeddings(c.texts, c.matrix, c.metas, ids=c.ids)
            rate = n / (time.perf_counter() - t0)
            await store.aclose()
            return rate

        rate = asyncio.run(go())
        store.drop_table()
        store.close()
        return rate

    contenders: list[tuple[str, Callable[[], float]]] = [
        ("sync", sync_run),
        ("async", async_run),
        ("load", lambda: raw_load_data(url, c)),
    ]
    runs: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for rep in range(repeat):
        for name, fn in contenders[rep % 3 :] + contenders[: rep % 3]:
            runs[name].append(fn())
    sync, asyn, load = (statistics.median(runs[k]) for k in ("sync", "async", "load"))
    row = Row(
        name=f"async ingest, {n:,} docs x {DIM}d (rows/s)",
        unit="rows/s",
        ours=asyn,
        others={"ours sync": sync, "raw LOAD DATA": load},
        target="async >= 0.9x sync; sync >= 0.9x raw LOAD DATA",
    )
    row.met = asyn >= 0.9 * sync and sync >= 0.9 * load
    row.notes = "runs (rows/s): " + "; ".join(
        f"{k} " + ", ".join(f"{v:,.0f}" for v in vs) for k, vs in runs.items()
    )
    return [row]


# --------------------------------------------------------------------------- scale


def _pytidb_search(url: str, table: str) -> Callable[[Any, dict[str, Any]], Any] | None:
    """pytidb's pre-filtered search on our table, or None when pytidb is not installed."""
    # pytidb hands result vectors to pydantic as arrays; its serializer warns on every row.
    warnings.filterwarnings("ignore", category=UserWarning, module="pydantic")
    try:
        from pytidb import TiDBClient
        from pytidb.datatype import JSON, TEXT
        from pytidb.schema import Field, TableModel, VectorField
    except ImportError:
        return None
    client = TiDBClient.connect(url)
    model = type(
        f"Bench_{table}",
        (TableModel,),
        {
            "__tablename__": table,
            "__annotations__": {"id": str, "embedding": list[float], "document": str, "meta": dict},
            "id": Field(primary_key=True),
            "embedding": VectorField(dimensions=DIM),
            "document": Field(sa_type=TEXT),
            "meta": Field(sa_type=JSON),
        },
        table=True,
    )
    t = client.create_table(schema=model, if_exists="skip")

    def search(vector: Any, flt: dict[str, Any]) -> Any:
        meta_flt = {f"meta.{k}": v for k, v in flt.items()}
        return t.search(vector.tolist()).filter(meta_flt, prefilter=True).limit(K).to_list()

    return search


def _fill_copy(url: str, src: str, dst: str, n: int) -> None:
    """The first n rows of ``src`` into another table, server-side (no client round trips)."""
    conn = _raw_conn(url)
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO `{dst}` (id, embedding, document, meta) SELECT id, embedding, document,"
            f" meta FROM `{src}` WHERE CAST(SUBSTRING(id, 4) AS UNSIGNED) < %s",
            (n,),
        )
    conn.close()


def _regions(cur: Any, table: str) -> int:
    cur.execute(f"SHOW TABLE `{table}` REGIONS")
    return len(cur.fetchall())


def scale_rows(url: str, sizes: list[int], queries: int) -> list[Row]:
    """Filtered exact search at each size and selectivity; then an indexed key at the largest."""
    biggest = max(sizes)
    c = Corpus(biggest)
    tables: dict[int, str] = {}
    stores: dict[int, TiDBVectorStore] = {}
    # Every measured table, ours and the others', is a server-side copy of one seed table, so
    # all have the same region layout. (The local store splits a table into regions on large
    # writes only: the seed, grown 500 rows a transaction, stays one region and is scanned by
    # one thread, while a copy of it is split and scanned in parallel. TiKV splits by size.)
    seed = TiDBVectorStore(None, connection_string=url, table_name=f"b_seed_{uuid.uuid4().hex[:6]}")
    seed.create_table(DIM)
    seed.add_embeddings(c.texts, c.matrix, c.metas, ids=c.ids)
    for n in sorted(sizes, reverse=True):
        name = f"b_sc{n}_{uuid.uuid4().hex[:6]}"
        store = TiDBVectorStore(None, connection_string=url, table_name=name, filter_strategy="pre")
        store.create_table(DIM)
        _fill_copy(url, seed.table_name, name, n)
        tables[n], stores[n] = name, store
    seed.drop_table()
    seed.close()
    # langchain-community on copies of the same rows (its ids must be uuids: VARCHAR(36)).
    legacy: dict[int, Any] = {}
    regions: dict[int, tuple[int, int]] = {}
    for n in sizes:
        lc_name = f"b_sclc{n}_{uuid.uuid4().hex[:6]}"
        lc = legacy_store_class()(
            embedding_function=c.embeddings,
            connection_string=url,
            table_name=lc_name,
            distance_strategy="cosine",
        )
        lc.add_texts([c.texts[0]], [{}], ids=[str(uuid.uuid4())])  # creates its table
        conn = _raw_conn(url)
        with conn.cursor() as lc_cur:
            lc_cur.execute(f"DELETE FROM `{lc_name}`")
            lc_cur.execute(
                f"INSERT INTO `{lc_name}` (id, embedding, document, meta) "
                f"SELECT UUID(), embedding, document, meta FROM `{tables[n]}`"
            )
            regions[n] = (_regions(lc_cur, tables[n]), _regions(lc_cur, lc_name))
        conn.close()
        legacy[n] = lc
    raw = _raw_conn(url)
    cur = raw.cursor()
    qs = vectors(queries, DIM, seed=5)
    q_texts = [f"scale query {i}" for i in range(queries)]
    c.embeddings.table.update(zip(q_texts, qs.tolist(), strict=True))
    rows: list[Row] = []
    for n in sizes:
        store = stores[n]
        pytidb = _pytidb_search(url, tables[n])
        for label, percent in SELECTIVITY.items():
            flt = _filter(percent)
            lat: dict[str, list[float]] = {"ours": [], "plain": [], "community": [], "pytidb": []}
            lc_flt = {"bucket": flt["bucket"]} if percent == 1 else flt
            for i in range(queries):
                v, sql = qs[i], _plain_sql(store, _qv(qs[i]), flt)
                calls: list[tuple[str, Callable[[], Any]]] = [
                    ("ours", lambda: store.similarity_search_with_score_by_vector(v, K, flt)),
                    ("plain", lambda: (cur.execute(sql), cur.fetchall())),
                    (
                        "community",
                        lambda: legacy[n].similarity_search_with_score(q_texts[i], K, lc_flt),
                    ),
                ]
                if pytidb is not None:
                    calls.append(("pytidb", lambda: pytidb(v, flt)))
                # A different contender first each query: whoever runs second meets a warm cache.
                for name, call in calls[i % len(calls) :] + calls[: i % len(calls)]:
                    lat[name].append(_timed(call))
            p = {k2: _median_ms(v2) for k2, v2 in lat.items() if v2}
            ratio = p["ours"] / p["plain"]
            goal = {1: 0.4, 30: 1.0}.get(percent) if n == biggest else None
            row = Row(
                name=f"filtered search p50 ms, {n:,} docs, {label} match",
                unit="ms",
                ours=p["ours"],
                others={
                    "one plain filtered statement": p["plain"],
                    "langchain-community": p["community"],
                    **({"pytidb (prefilter)": p["pytidb"]} if "pytidb" in p else {}),
                },
                higher_is_better=False,
                target=f"<= {goal}x plain" if goal else "<= 1.0x plain (no cliff)",
            )
            row.met = ratio <= (goal or 1.0)
            row.notes = (
                f"ours / plain = {ratio:.2f}; regions: ours and plain {regions[n][0]}, "
                f"langchain-community {regions[n][1]}"
            )
            rows.append(row)
    # Indexed key at the largest size, 1%: the same filter, now narrowed by an index.
    store = stores[biggest]
    store.create_metadata_index("bucket", int)
    flt = _filter(1)
    lat = {"indexed": [], "json plain": []}
    for i in range(queries):
        v = qs[i]
        lat["indexed"].append(
            _timed(lambda: store.similarity_search_with_score_by_vector(v, k=K, filter=flt))
        )
        sql = _plain_sql(store, _qv(v), flt)
        lat["json plain"].append(_timed(lambda: (cur.execute(sql), cur.fetchall())))
    p = {k2: _median_ms(v2) for k2, v2 in lat.items()}
    row = Row(
        name=f"indexed key filter p50 ms, {biggest:,} docs, 1% match",
        unit="ms",
        ours=p["indexed"],
        others={"JSON-filtered plain statement": p["json plain"]},
        higher_is_better=False,
        target="<= 0.1x the JSON-filtered plain statement",
    )
    row.met = p["indexed"] <= 0.1 * p["json plain"]
    rows.append(row)
    raw.close()
    for n in sizes:
        stores[n].drop_table()
        stores[n].close()
        legacy[n].drop_vectorstore()
    return rows


__all__ = ["ingest_rows", "network_rows", "scale_rows"]
