"""``TiDBStore``: LangGraph's long-term memory store on TiDB, with semantic search in SQL."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import orjson
import sqlalchemy as sa
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from langchain_tidb_bedrock.db.component import TiDBComponent
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.runner import Op as DbOp
from langchain_tidb_bedrock.db.runner import read, write
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.langgraph._keys import check_key
from langchain_tidb_bedrock.langgraph.store_ops import (
    ItemKey,
    Upsert,
    VectorQuery,
    op_get,
    op_list_namespaces,
    op_put,
    op_search,
)
from langchain_tidb_bedrock.langgraph.store_schema import (
    FIELD_CHARS,
    KEY_CHARS,
    PREFIX_CHARS,
    StoreTables,
)
from langchain_tidb_bedrock.vectorstores import indexes
from langchain_tidb_bedrock.vectorstores.filters import compile_filter
from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

__all__ = ["TiDBIndexConfig", "TiDBStore"]

T = TypeVar("T")
# The vectors table's column type and how many vector indexes it has (ours are "vec_<metric>").
_VECTORS_COLUMN = (
    "SELECT COLUMN_TYPE AS column_type, (SELECT COUNT(*) FROM INFORMATION_SCHEMA.TIDB_INDEXES i"
    " WHERE i.TABLE_SCHEMA = DATABASE() AND i.TABLE_NAME = %(t)s AND i.KEY_NAME LIKE 'vec\\_%%')"
    " AS vector_indexes FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
    " AND TABLE_NAME = %(t)s AND COLUMN_NAME = 'embedding'"
)


class TiDBIndexConfig(IndexConfig, total=False):
    """LangGraph's ``IndexConfig`` (``dims``, ``embed``, ``fields``) plus the distance.

    ``embed`` defaults to ``BedrockTitanEmbeddings(dimensions=dims)``; ``distance_type`` is
    ``"cosine"`` (default), ``"l2"`` or ``"inner_product"``. Scores are ``1 - distance`` for
    cosine, ``-distance`` for l2 and the inner product itself, as ``PostgresStore`` reports.
    """

    distance_type: Literal["cosine", "l2", "inner_product"]


def _when(seconds: Any) -> datetime:
    return datetime.fromtimestamp(float(seconds), tz=timezone.utc)


def _namespace(text: str) -> tuple[str, ...]:
    return tuple(text.split("."))


def _adapt_filter(filter: Mapping[str, Any], column: Any) -> sa.ColumnElement[bool] | None:
    """LangGraph's filter as SQL over the JSON value, through the package's filter compiler.

    A key maps to a value, a nested dict, or ``$eq``/``$ne``/``$gt``/``$gte``/``$lt``/``$lte``.
    Keys are literal (a dot is part of the key), nested plain dicts match nested fields, and a
    list or dict compared for (in)equality is compared as JSON.
    """
    parts: list[sa.ColumnElement[bool]] = []
    scalar: dict[str, Any] = {}

    def walk(prefix: list[str], node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            if not isinstance(key, str):
                msg = f"filter keys must be strings, got {key!r}"
                raise InvalidInputError(msg)
            path = [*prefix, key]
            if isinstance(value, Mapping) and not any(str(k).startswith("$") for k in value):
                walk(path, value)
                continue
            ops = dict(value) if isinstance(value, Mapping) else {"$eq": value}
            dotted = ".".join(p.replace(".", "\\.") for p in path)
            for op, operand in ops.items():
                if op in ("$eq", "$ne") and isinstance(operand, (list, tuple, dict)):
                    parts.append(_json_equal(column, path, operand, negate=op == "$ne"))
                else:
                    scalar.setdefault(dotted, {})[op] = operand

    walk([], filter)
    compiled = compile_filter(scalar, column) if scalar else None
    if compiled is not None:
        parts.append(compiled)
    return sa.and_(*parts) if parts else None


def _json_equal(column: Any, path: list[str], value: Any, *, negate: bool) -> Any:
    json_path = "$" + "".join(
        '."' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in path
    )
    stored = sa.func.JSON_EXTRACT(
        sa.cast(column, sa.JSON), sa.bindparam(None, json_path, sa.String)
    )
    wanted = sa.cast(sa.bindparam(None, orjson.dumps(value).decode(), sa.String), sa.JSON)
    same = sa.func.COALESCE(stored == wanted, sa.false())
    return sa.not_(same) if negate else same


class TiDBStore(TiDBComponent, BaseStore):
    """LangGraph store on TiDB: namespaced JSON items, semantic search, TTL.

    Setup:
        ```bash
        pip install -U "langchain-tidb-bedrock[langgraph]"
        ```

    Key init args:
        engine: TiDBEngine | None
            A shared engine (never closed by the store); else ``connection_string``, else
            ``TiDBEngine.from_env()``.
        index: TiDBIndexConfig | None
            ``{"dims": 1024, "embed": ..., "fields": ["text"]}`` enables ``search(query=...)``;
            ``embed`` defaults to Titan (``BedrockTitanEmbeddings(dimensions=dims)``).
        ttl: TTLConfig | None
            ``{"default_ttl": minutes, "refresh_on_read": True}``; expired items vanish from
            reads at once and are deleted by TiDB's TTL job (every ``sweep_interval_minutes``).
        table_prefix: str
            Tables ``<prefix>store`` and ``<prefix>store_vectors``.

    Instantiate:
        ```python
        from langchain_tidb_bedrock import BedrockTitanEmbeddings, TiDBEngine
        from langchain_tidb_bedrock.langgraph import TiDBStore

        store = TiDBStore(
            engine=TiDBEngine.from_env(),
            index={"dims": 512, "embed": BedrockTitanEmbeddings(dimensions=512),
                   "fields": ["text"]},
            ttl={"default_ttl": 60 * 24 * 30, "refresh_on_read": True},
        )
        ```

    Put, get, delete:
        ```python
        store.put(("users", "ana", "memories"), "m1", {"text": "likes green tea", "kind": "pref"})
        item = store.get(("users", "ana", "memories"), "m1")
        store.delete(("users", "ana", "memories"), "m1")
        ```

    Search:
        ```python
        hits = store.search(("users", "ana"), query="what does she drink?", limit=3)
        for hit in hits:
            print(hit.key, hit.score, hit.value["text"])
        prefs = store.search(("users",), filter={"kind": "pref", "stars": {"$gte": 4}})
        ```

    List namespaces:
        ```python
        store.list_namespaces(prefix=("users",), max_depth=2)
        ```

    Use with an agent:
        ```python
        agent = create_agent(model, tools, checkpointer=TiDBSaver(engine=engine), store=store)
        ```

    Async:
        ```python
        await store.aput(("users", "ana"), "m2", {"text": "lives in Lisbon"})
        hits = await store.asearch(("users", "ana"), query="city")
        ```
    """

    supports_ttl: bool = True

    def __init__(
        self,
        engine: TiDBEngine | None = None,
        *,
        connection_string: str | None = None,
        index: TiDBIndexConfig | None = None,
        ttl: TTLConfig | None = None,
        table_prefix: str = "langgraph_",
        tls: bool | None = None,
        ca_path: str | None = None,
    ) -> None:
        """Build the store; no connection is made (and nothing is embedded) until first use.

        Args:
            engine: the shared ``TiDBEngine`` to run on.
            connection_string: a TiDB URL (the store owns the engine made from it).
            index: enables semantic search (see :class:`TiDBIndexConfig`).
            ttl: time-to-live settings (minutes).
            table_prefix: prefix of the table names.
            tls: force TLS on or off for an engine made from ``connection_string``.
            ca_path: CA bundle for that engine's TLS.
        """
        TiDBComponent.__init__(
            self, engine=engine, connection_string=connection_string, tls=tls, ca_path=ca_path
        )
        self.tables = StoreTables(table_prefix)
        self.ttl_config = ttl
        self.index_config: TiDBIndexConfig | None = None
        self.embeddings: Embeddings | None = None
        self._fields: list[tuple[str, Any]] = []
        self._strategy = DistanceStrategy.COSINE
        if index is not None:
            self._configure_index(index)
        self._ready = False
        self._hnsw = False

    def _configure_index(self, index: TiDBIndexConfig) -> None:
        dims = index.get("dims")
        if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 16383:
            msg = f"index['dims'] must be an integer from 1 to 16383, got {dims!r}"
            raise InvalidInputError(msg)
        fields = index.get("fields") or ["$"]
        if isinstance(fields, str):
            fields = [fields]
        self._fields = [(f, "$" if f == "$" else tokenize_path(f)) for f in fields]
        self._strategy = DistanceStrategy.parse(index.get("distance_type", "cosine"))
        embed = index.get("embed")
        if embed is None:
            from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings

            embed = BedrockTitanEmbeddings(dimensions=dims)
        self.embeddings = ensure_embeddings(embed)
        self.index_config = cast(TiDBIndexConfig, {**index, "embed": self.embeddings})

    # ------------------------------------------------------------------ running operations

    @property
    def _omit_expired(self) -> bool:
        return bool((self.ttl_config or {}).get("omit_expired", True))

    def _op_setup(self) -> DbOp[bool]:
        t = self.tables
        sweep = (self.ttl_config or {}).get("sweep_interval_minutes") or 60
        interval = max(1, math.ceil(sweep))
        yield from write(sa.text(t.store_ddl(interval)))
        if self.index_config is None:
            return False
        dims = self.index_config["dims"]
        hnsw = False
        if self._strategy.indexable:
            try:
                rows = yield from read(indexes.TIFLASH_COUNT_SQL)
                hnsw = bool(rows[0][0])
            except sa.exc.DBAPIError:
                hnsw = indexes.is_tidb_cloud_host(self.tidb_engine.url.host)
        ddl = t.vectors_ddl(dims, self._strategy, hnsw=hnsw, ttl_job_interval_minutes=interval)
        yield from write(sa.text(ddl))
        rows = yield from read(_VECTORS_COLUMN, {"t": t.vectors_name})
        column_type, vector_indexes = rows[0].column_type, rows[0].vector_indexes
        if str(column_type).lower() != f"vector({dims})":
            msg = (
                f"table {t.vectors_name} holds {column_type} embeddings; the index is "
                f"configured with dims={dims}: use another table_prefix"
            )
            raise InvalidInputError(msg)
        return bool(vector_indexes)

    def setup(self) -> None:
        """Create the tables when missing (also done on first use; safe to repeat)."""
        self._hnsw = TiDBComponent._run(self, self._op_setup())
        self._ready = True

    async def asetup(self) -> None:
        """Async :meth:`setup`."""
        self._hnsw = await TiDBComponent._arun(self, self._op_setup())
        self._ready = True

    def _run(self, op: DbOp[T], embeddings: Embeddings | None = None) -> T:
        if not self._ready:
            self.setup()
        return TiDBComponent._run(self, op, self.embeddings)

    async def _arun(self, op: DbOp[T], embeddings: Embeddings | None = None) -> T:
        if not self._ready:
            await self.asetup()
        return await TiDBComponent._arun(self, op, self.embeddings)

    # ------------------------------------------------------------------ batches

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run get, search, list-namespaces and put operations; results in input order."""
        plan = _Plan(self, ops)
        return self._run(plan.op())

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async :meth:`batch`."""
        plan = _Plan(self, ops)
        return await self._arun(plan.op())

    def sweep_ttl(self) -> int:
        """Delete expired items now (TiDB's TTL job also does it); returns how many."""
        return self._run(self._op_sweep())

    async def asweep_ttl(self) -> int:
        """Async :meth:`sweep_ttl`."""
        return await self._arun(self._op_sweep())

    def _op_sweep(self) -> DbOp[int]:
        s, v = self.tables.store, self.tables.vectors
        now: Any = sa.literal_column("NOW(6)")
        if self.index_config is not None:
            yield from write(sa.delete(v).where(v.c.expires_at <= now))
        return (yield from write(sa.delete(s).where(s.c.expires_at <= now)))


class _Plan:
    """One batch: ops grouped by kind, run as few statements as the kinds allow."""

    def __init__(self, store: TiDBStore, ops: Iterable[Op]) -> None:
        self.store = store
        self.ops = list(ops)
        for op in self.ops:
            validate_op_namespace(op)
        self.results: list[Result] = [None] * len(self.ops)

    def op(self) -> DbOp[list[Result]]:
        store, t = self.store, self.store.tables
        gets = [(i, op) for i, op in enumerate(self.ops) if isinstance(op, GetOp)]
        if gets:
            yield from self._gets(gets)
        for i, op in enumerate(self.ops):
            if isinstance(op, SearchOp):
                self.results[i] = yield from self._search(op)
            elif isinstance(op, ListNamespacesOp):
                conditions = [(c.match_type, c.path) for c in op.match_conditions or ()]
                names = yield from op_list_namespaces(
                    t,
                    conditions,
                    op.max_depth,
                    op.limit,
                    op.offset,
                    omit_expired=store._omit_expired,
                )
                self.results[i] = [_namespace(n) for n in names]
        puts = [op for op in self.ops if isinstance(op, PutOp)]
        if puts:
            yield from self._puts(puts)
        return self.results

    def _gets(self, gets: list[tuple[int, GetOp]]) -> DbOp[None]:
        keys = [(".".join(op.namespace), op.key) for _, op in gets]
        refresh = [k for k, (_, op) in zip(keys, gets, strict=True) if op.refresh_ttl]
        rows = yield from op_get(
            self.store.tables,
            keys,
            refresh,
            omit_expired=self.store._omit_expired,
            indexed=self.store.index_config is not None,
        )
        found = {(r.prefix, r.key): r for r in rows}
        for (i, op), k in zip(gets, keys, strict=True):
            row = found.get(k)
            self.results[i] = None if row is None else _item(op.namespace, row)

    def _search(self, op: SearchOp) -> DbOp[list[SearchItem]]:
        store = self.store
        condition = _adapt_filter(op.filter, store.tables.store.c.value) if op.filter else None
        query = None
        if op.query and store.index_config is not None:
            from langchain_tidb_bedrock.db.runner import embed_query

            vector = yield from embed_query(op.query)
            query = VectorQuery(vector, store._strategy, ann=store._hnsw)
        rows = yield from op_search(
            store.tables,
            labels=op.namespace_prefix,
            condition=condition,
            query=query,
            limit=op.limit,
            offset=op.offset,
            fields_per_item=max(len(store._fields), 1),
            omit_expired=store._omit_expired,
            refresh=op.refresh_ttl,
            indexed=store.index_config is not None,
        )
        return [_search_item(row, store._strategy) for row in rows]

    def _puts(self, puts: list[PutOp]) -> DbOp[None]:
        store = self.store
        last: dict[ItemKey, PutOp] = {}
        for op in puts:  # the last put of a key wins, as in PostgresStore
            ns = check_key(".".join(op.namespace), "namespace (labels joined by '.')", PREFIX_CHARS)
            last[(ns, check_key(op.key, "key", KEY_CHARS))] = op
        deletes = [k for k, op in last.items() if op.value is None]
        upserts: list[Upsert] = []
        to_embed: list[tuple[str, str, str, str]] = []
        for (ns, key), op in last.items():
            if op.value is None:
                continue
            if not isinstance(op.value, Mapping):
                msg = f"the value of {key!r} must be a dict, got {type(op.value).__name__}"
                raise InvalidInputError(msg)
            ttl = op.ttl
            if ttl is not None and (not isinstance(ttl, (int, float)) or not ttl > 0):
                msg = f"ttl of {key!r} must be a positive number of minutes, got {ttl!r}"
                raise InvalidInputError(msg)
            upserts.append((ns, key, orjson.dumps(dict(op.value)).decode(), ttl))
            if store.index_config is None or op.index is False:
                continue
            paths = store._fields if op.index is None else [(p, tokenize_path(p)) for p in op.index]
            for path, tokens in paths:
                texts = get_text_at_path(op.value, tokens)
                for n, text in enumerate(texts):
                    field = f"{path}.{n}" if len(texts) > 1 else path
                    field = check_key(field, "indexed field path", FIELD_CHARS)
                    to_embed.append((ns, key, field, text))
        dims = store.index_config["dims"] if store.index_config else None
        yield from op_put(
            store.tables,
            deletes,
            upserts,
            _unique(to_embed),
            indexed=store.index_config is not None,
            dims=dims,
        )


def _unique(rows: Sequence[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    seen: dict[tuple[str, str, str], tuple[str, str, str, str]] = {}
    for row in rows:
        seen[row[:3]] = row
    return list(seen.values())


def _item(namespace: tuple[str, ...], row: Any) -> Item:
    return Item(
        value=orjson.loads(row.value),
        key=row.key,
        namespace=tuple(namespace),
        created_at=_when(row.created),
        updated_at=_when(row.updated),
    )


def _search_item(row: Any, strategy: DistanceStrategy) -> SearchItem:
    score = None
    if row.dist is not None:
        dist = float(row.dist)
        score = 1.0 - dist if strategy is DistanceStrategy.COSINE else -dist
    return SearchItem(
        namespace=_namespace(row.prefix),
        key=row.key,
        value=orjson.loads(row.value),
        created_at=_when(row.created),
        updated_at=_when(row.updated),
        score=score,
    )
