"""``TiDBVectorStore``: a LangChain vector store on TiDB vector search."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import sqlalchemy as sa
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from tqdm.auto import tqdm

from langchain_tidb_bedrock.vectorstores import bulk, indexes
from langchain_tidb_bedrock.vectorstores.bulk import LoadRows
from langchain_tidb_bedrock.vectorstores.connection import (
    ConnectionConfigError,
    create_engine,
    create_engine_async,
    redact,
    tidb_url_from_env,
)
from langchain_tidb_bedrock.vectorstores.encoding import (
    decode_metadata,
    decode_vector,
    encode_metadata,
    encode_query_vector,
    encode_vectors,
    to_matrix,
)
from langchain_tidb_bedrock.vectorstores.filters import validate_filter
from langchain_tidb_bedrock.vectorstores.queries import Queries
from langchain_tidb_bedrock.vectorstores.runner import (
    EmbedDocs,
    EmbedQuery,
    Op,
    Read,
    Write,
    run_async,
    run_sync,
)
from langchain_tidb_bedrock.vectorstores.schema import (
    COLUMNS_QUERY,
    ID_LENGTH,
    DistanceStrategy,
    TableInfo,
    create_table_sql,
    quote_identifier,
    read_table_info,
    table_object,
    validate_identifier,
)

if TYPE_CHECKING:  # at run time it would pull in the callbacks, tracers and splitters
    from langchain_core.embeddings import Embeddings

__all__ = ["TiDBVectorStore"]

logger = logging.getLogger(__name__)

FilterStrategy = Literal["auto", "pre", "post"]
T = TypeVar("T")
_MISSING = object()
_DELETE_BATCH = 1000
# Write transactions stay far below TiDB's 100 MB limit; one row may not exceed 6 MB.
_TXN_BYTES = 16 * 2**20
_ENTRY_BYTES = 6 * 2**20 - 64 * 2**10


def _check_text(position: int, text: object) -> None:
    if not isinstance(text, str):
        msg = f"text at position {position} must be a string, got {type(text).__name__}"
        raise ValueError(msg)


def _check_entry(position: int, size: int) -> None:
    if size > _ENTRY_BYTES:
        msg = (
            f"document at position {position} is {size / 2**20:.1f} MiB with its vector and "
            f"metadata; TiDB stores at most {_ENTRY_BYTES / 2**20:.0f} MiB per row: split it "
            "into smaller documents"
        )
        raise ValueError(msg)


def _row_bytes(row: tuple[str, ...]) -> int:
    # Characters are a lower bound on UTF-8 bytes; only long text is worth encoding to measure.
    return sum(len(v) if len(v) < 2**18 else len(v.encode()) for v in row)


# A pre-filter matching at most this many rows is ranked by id lookups instead of a scan.
_SELECTIVE_IDS = 1000


def _is_matrix(vectors: object) -> bool:
    return isinstance(vectors, np.ndarray)


async def _dispose_at_loop_shutdown(engine: AsyncEngine) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await engine.dispose()


class TiDBVectorStore(VectorStore):
    """Vector store on TiDB vector search (``VECTOR`` columns, ``VEC_*`` distances, HNSW index).

    Setup:
        Install the package and point it at TiDB (TiDB Cloud Starter or self-managed >= v8.5):

        ```bash
        pip install -U langchain-tidb-bedrock
        export TIDB_HOST=gateway01.us-west-2.prod.aws.tidbcloud.com TIDB_PORT=4000
        export TIDB_USER=xxxx.root TIDB_PASSWORD=... TIDB_DB_NAME=test
        ```

        With none of these set, use ``LocalTiDB`` (a real local tidb-server) for offline work.

    Key init args — indexing params:
        embedding: Embeddings
            The embedding model. Never called at construction.
        table_name: str
            Table to use; created on the first write when missing.
        distance_strategy: "cosine" | "l2" | "inner_product"
            Distance for search and for the HNSW index (cosine and l2 are indexable).
        embedding_dimension: int | None
            Vector size; read from the table or the first batch when omitted.

    Key init args — client params:
        connection_string: str | None
            SQLAlchemy URL (``mysql+pymysql://user:pw@host:4000/db``); defaults to ``TIDB_*``.
        engine: sqlalchemy.Engine | None
            Use an existing engine instead.
        engine_args: dict | None
            Extra ``create_engine`` arguments, applied to every connection (sync and async).

    Instantiate:
        ```python
        from langchain_tidb_bedrock import BedrockTitanEmbeddings, TiDBVectorStore

        vector_store = TiDBVectorStore(
            embedding=BedrockTitanEmbeddings(dimensions=512),
            connection_string="mysql+pymysql://root@127.0.0.1:4000/test",
            table_name="docs",
        )
        ```

    Add Documents:
        ```python
        from langchain_core.documents import Document

        document_1 = Document(page_content="foo", metadata={"baz": "bar"})
        document_2 = Document(page_content="thud", metadata={"bar": "baz"})
        document_3 = Document(page_content="i will be deleted :(")

        documents = [document_1, document_2, document_3]
        ids = ["1", "2", "3"]
        vector_store.add_documents(documents=documents, ids=ids)
        ```

    Update Documents:
        ```python
        updated = Document(page_content="qux", metadata={"bar": "baz"})
        vector_store.add_documents([updated], ids=["2"])
        ```

    Delete Documents:
        ```python
        vector_store.delete(ids=["3"])
        vector_store.delete(filter={"bar": "baz"})
        ```

    Search:
        ```python
        results = vector_store.similarity_search(query="thud", k=1)
        for doc in results:
            print(f"* {doc.page_content} [{doc.metadata}]")
        ```

        ```python
        * thud [{'bar': 'baz'}]
        ```

    Search with filter:
        ```python
        results = vector_store.similarity_search(
            query="thud", k=1, filter={"bar": {"$in": ["baz", "qux"]}}
        )
        ```

        ```python
        * thud [{'bar': 'baz'}]
        ```

    Search with score:
        ```python
        results = vector_store.similarity_search_with_score(query="qux", k=1)
        for doc, score in results:
            print(f"* [SIM={score:3f}] {doc.page_content} [{doc.metadata}]")
        ```

        ```python
        * [SIM=0.000000] qux [{'bar': 'baz'}]
        ```

    Async:
        ```python
        await vector_store.aadd_documents(documents=documents, ids=ids)
        await vector_store.adelete(ids=["3"])
        results = await vector_store.asimilarity_search(query="thud", k=1)
        ```

    Use as Retriever:
        ```python
        retriever = vector_store.as_retriever(
            search_type="mmr",
            search_kwargs={"k": 1, "fetch_k": 2, "lambda_mult": 0.5},
        )
        retriever.invoke("thud")
        ```

        ```python
        [Document(id='2', metadata={'bar': 'baz'}, page_content='thud')]
        ```
    """

    def __init__(
        self,
        embedding: Embeddings | None,
        *,
        connection_string: str | URL | None = None,
        engine: sa.Engine | None = None,
        async_engine: AsyncEngine | None = None,
        table_name: str = "langchain_vector",
        distance_strategy: DistanceStrategy | str | None = None,
        embedding_dimension: int | None = None,
        engine_args: Mapping[str, Any] | None = None,
        vector_index: bool | None = None,
        filter_strategy: FilterStrategy = "auto",
        batch_size: int = 500,
        show_progress: bool = False,
        tls: bool | None = None,
        ca_path: str | None = None,
        bulk_load: bool = True,
    ) -> None:
        """Create the store; no database or embedding call happens here.

        Args:
            embedding: the embedding model (None when you only pass vectors).
            connection_string: SQLAlchemy URL; defaults to the ``TIDB_*`` environment variables.
            engine: an existing sync engine (its pool and TLS settings are used as-is). The
                async methods build their own engine from its URL: pass ``async_engine`` too
                when yours needs custom ``connect_args`` (a CA bundle, an ssl dict).
            async_engine: an existing async engine (aiomysql); built from the URL when None.
            table_name: the table, created on the first write when missing.
            distance_strategy: "cosine" (default), "l2" or "inner_product".
            embedding_dimension: the vector size; inferred when None.
            engine_args: extra ``create_engine`` arguments for every connection.
            vector_index: create an HNSW index with the table: True, False, or None (auto:
                when the server has TiFlash and the metric is indexable).
            filter_strategy: "pre" (exact), "post" (index candidates, then filter), or "auto".
            batch_size: rows embedded and written together; each batch is one transaction, split
                into several when it exceeds 16 MiB.
            show_progress: show a progress bar while adding.
            tls: force TLS on or off; default on for non-loopback hosts.
            ca_path: CA bundle for TLS; the system bundle when None.
            bulk_load: write batches with ``LOAD DATA LOCAL ... REPLACE`` (about 2x faster than
                multi-row INSERT on TiDB); falls back to INSERT by itself where refused.
        """
        self.table_name = validate_identifier(table_name)
        if distance_strategy is not None:
            self._strategy: DistanceStrategy | None = DistanceStrategy.parse(distance_strategy)
        else:
            self._strategy = None
        if filter_strategy not in ("auto", "pre", "post"):
            msg = f"filter_strategy must be 'auto', 'pre' or 'post', got {filter_strategy!r}"
            raise ValueError(msg)
        if not isinstance(batch_size, int) or batch_size < 1:
            msg = f"batch_size must be a positive integer, got {batch_size!r}"
            raise ValueError(msg)
        if embedding_dimension is not None and embedding_dimension < 1:
            msg = f"embedding_dimension must be positive, got {embedding_dimension}"
            raise ValueError(msg)
        self.embedding = embedding
        self.filter_strategy: FilterStrategy = filter_strategy
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.vector_index = vector_index
        self._dimension = embedding_dimension

        if engine is None:
            url = connection_string if connection_string is not None else tidb_url_from_env()
            if url is None:
                msg = (
                    "no TiDB connection configured: pass connection_string= or engine=, or set "
                    "TIDB_HOST (with TIDB_PORT, TIDB_USER, TIDB_PASSWORD, TIDB_DB_NAME) or "
                    "TIDB_URL; for offline work use langchain_tidb_bedrock.local.LocalTiDB"
                )
                raise ConnectionConfigError(msg)
            self._url: URL = sa.engine.make_url(url)
            self._engine = create_engine(
                self._url, engine_args, tls=tls, ca_path=ca_path, local_infile=bulk_load
            )
            self._owns_engine = True
        else:
            self._url = engine.url
            self._engine = engine
            self._owns_engine = False
        self._engine_args = dict(engine_args or {})
        self._tls, self._ca_path = tls, ca_path
        self._given_async_engine = async_engine
        # aiomysql connections belong to one event loop: one async engine per loop.
        self._async_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_guards: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[None, None]
        ] = weakref.WeakKeyDictionary()
        self._table = table_object(self.table_name)
        self._info: Any = _MISSING
        self._tiflash: bool | None = None
        self._index_ready = False
        self._lock = threading.Lock()
        self._warned_exact = False
        self._bulk_load = bulk_load
        self._q: Queries | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def embeddings(self) -> Embeddings | None:
        """The embedding model."""
        return self.embedding

    @property
    def distance_strategy(self) -> DistanceStrategy:
        """The distance used for search (cosine unless set or read from a legacy table)."""
        return self._strategy or DistanceStrategy.COSINE

    @property
    def engine(self) -> sa.Engine:
        """The sync SQLAlchemy engine."""
        return self._engine

    def _queries(self) -> Queries:
        strategy = self.distance_strategy
        if self._q is None or self._q.strategy is not strategy:
            self._q = Queries(self._table, strategy)
        return self._q

    def _run(self, op: Op[T]) -> T:
        return run_sync(op, self._engine, self.embedding)

    async def _aengine(self) -> AsyncEngine:
        if self._given_async_engine is not None:
            return self._given_async_engine
        loop = asyncio.get_running_loop()
        engine = self._async_engines.get(loop)
        if engine is None:
            engine = create_engine_async(
                self._url, self._engine_args, tls=self._tls, ca_path=self._ca_path
            )
            self._async_engines[loop] = engine
            # The loop finalises live async generators when it shuts down (asyncio.run,
            # asyncio.Runner): that is our hook to close this loop's pooled connections
            # while the loop can still run, instead of leaking them into a closed loop.
            guard = _dispose_at_loop_shutdown(engine)
            await guard.__anext__()
            self._loop_guards[loop] = guard
        return engine

    async def _arun(self, op: Op[T]) -> T:
        return await run_async(op, await self._aengine(), self.embedding)

    def close(self) -> None:
        """Release pooled connections (the engine, if the store created it)."""
        if self._owns_engine:
            self._engine.dispose()
        self._async_engines.clear()

    async def aclose(self) -> None:
        """Release pooled connections of this loop's async engine, then the sync engine."""
        loop = asyncio.get_running_loop()
        engine = self._async_engines.pop(loop, None)
        guard = self._loop_guards.pop(loop, None)
        if guard is not None:
            await guard.aclose()
        elif engine is not None:
            await engine.dispose()
        self.close()

    def __enter__(self) -> TiDBVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"TiDBVectorStore(table_name={self.table_name!r}, "
            f"distance_strategy={self.distance_strategy.value!r}, url={redact(self._url)!r})"
        )

    # ------------------------------------------------------------------ table state

    def _op_table_info(self) -> Op[TableInfo | None]:
        if self._info is _MISSING:
            rows = yield Read(COLUMNS_QUERY, {"table": self.table_name})
            info = read_table_info(list(rows), self.table_name)
            self._adopt(info)
            if info is not None and (yield from self._op_has_tiflash()):
                # An index made earlier (by us or by hand) is what lets "auto" post-filter.
                ddl = yield Read(f"SHOW CREATE TABLE {quote_identifier(self.table_name)}")
                self._index_ready = indexes.has_vector_index(str(ddl[0][1]), self.distance_strategy)
            if info is not None and not self._index_ready:
                self._say_exact_once()
        return self._info

    def _adopt(self, info: TableInfo | None) -> None:
        with self._lock:
            self._info = info
            if info is None:
                return
            if info.dimension is not None:
                if self._dimension is not None and self._dimension != info.dimension:
                    msg = (
                        f"table {self.table_name!r} stores {info.dimension}-dimensional vectors, "
                        f"but embedding_dimension={self._dimension} was given"
                    )
                    raise ValueError(msg)
                self._dimension = info.dimension
            if self._strategy is None and info.legacy_metric is not None:
                # A langchain-community table records its metric in a column comment.
                self._strategy = info.legacy_metric

    def _op_has_tiflash(self) -> Op[bool]:
        if self._tiflash is None:
            if indexes.is_tidb_cloud_host(self._url.host):
                self._tiflash = True
            else:
                try:
                    rows = yield Read(indexes.TIFLASH_COUNT_SQL)
                    self._tiflash = bool(rows[0][0])
                except sa.exc.DBAPIError:
                    self._tiflash = False
        return self._tiflash

    def _op_ensure_table(self, dimension: int) -> Op[None]:
        info = yield from self._op_table_info()
        if info is not None:
            if info.dimension is not None and info.dimension != dimension:
                msg = (
                    f"embedding dimension mismatch: table {self.table_name!r} stores "
                    f"{info.dimension}-dimensional vectors, got {dimension}"
                )
                raise ValueError(msg)
            return
        tiflash = yield from self._op_has_tiflash()
        want_index = self.vector_index
        if want_index is None:
            want_index = tiflash and self.distance_strategy.indexable
        elif want_index and not self.distance_strategy.indexable:
            msg = f"no vector index exists for {self.distance_strategy.value!r} distance"
            raise ValueError(msg)
        ddl = create_table_sql(
            self.table_name, dimension, self.distance_strategy, with_index=bool(want_index)
        )
        try:
            yield Write([sa.text(ddl)])
            self._index_ready = bool(want_index)
        except sa.exc.DBAPIError as exc:
            if not (want_index and indexes.is_missing_tiflash_error(exc)):
                raise
            yield Write(
                [
                    sa.text(
                        create_table_sql(
                            self.table_name, dimension, self.distance_strategy, with_index=False
                        )
                    )
                ]
            )
        if not self._index_ready:
            self._say_exact_once()
        self._info = _MISSING
        yield from self._op_table_info()

    def create_table(self, dimension: int | None = None) -> None:
        """Create the table now (with the vector index where the server allows) if missing.

        Adding documents creates it anyway; this is for setting up ahead of time.

        Args:
            dimension: the vector size; defaults to ``embedding_dimension`` or the table's.

        Raises:
            ValueError: no dimension known, or it differs from the existing table's.
        """
        dim = dimension or self._dimension
        if dim is None:
            msg = "create_table() needs a dimension: pass it or set embedding_dimension"
            raise ValueError(msg)
        self._run(self._op_ensure_table(int(dim)))

    def _say_exact_once(self) -> None:
        if not self._warned_exact:
            self._warned_exact = True
            logger.warning(
                "TiDB table %r has no vector index (no TiFlash on this server, or disabled): "
                "searches are exact kNN scans",
                self.table_name,
            )

    # ------------------------------------------------------------------ writes

    def _prepare_ids(self, ids: Sequence[str | None] | None, count: int | None) -> list[str] | None:
        if ids is None:
            return None
        id_list = list(ids)
        if count is not None and len(id_list) != count:
            msg = f"got {count} texts but {len(id_list)} ids; pass one id per text"
            raise ValueError(msg)
        return [str(uuid.uuid4()) if i is None else i for i in id_list]

    def _check_batch_ids(
        self, batch_ids: list[str], seen: set[str], offset: int, limit: int
    ) -> None:
        for n, doc_id in enumerate(batch_ids, start=offset):
            if not isinstance(doc_id, str) or not doc_id:
                msg = f"id at position {n} must be a non-empty string, got {doc_id!r}"
                raise ValueError(msg)
            if len(doc_id) > limit:
                msg = f"id at position {n} is {len(doc_id)} characters; this table allows {limit}"
                raise ValueError(msg)
            if doc_id in seen:
                msg = f"duplicate id {doc_id!r} at position {n}: ids must be unique in one call"
                raise ValueError(msg)
            seen.add(doc_id)

    def _op_add(
        self,
        texts: Iterable[str],
        metadatas: Iterable[dict[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
        vectors: Iterable[Sequence[float]] | None,
        batch_size: int | None,
    ) -> Op[list[str]]:
        """Validate, embed (unless vectors are given) and upsert in batches.

        Sized inputs are validated completely before anything is written. Unsized inputs
        (generators) are consumed batch by batch so memory stays flat, each batch checked
        before it is written.
        """
        size = batch_size or self.batch_size
        sized = isinstance(texts, Sequence)
        count = len(texts) if isinstance(texts, Sequence) else None
        id_list = self._prepare_ids(ids, count)
        info = yield from self._op_table_info()
        id_limit = info.id_length if info is not None and info.id_length else ID_LENGTH
        reject_zero = self.distance_strategy is DistanceStrategy.COSINE
        validated: Any = None  # sized precomputed vectors, checked as one matrix

        if sized:
            text_list = list(texts)
            meta_list = list(metadatas) if metadatas is not None else None
            if meta_list is not None and len(meta_list) != len(text_list):
                msg = f"got {len(text_list)} texts but {len(meta_list)} metadatas"
                raise ValueError(msg)
            for n, t in enumerate(text_list):
                _check_text(n, t)
            encoded_meta = [encode_metadata(m, n) for n, m in enumerate(meta_list or [])]
            for n, text in enumerate(text_list):  # the vector is added per batch, checked there
                _check_entry(n, _row_bytes((text, encoded_meta[n] if encoded_meta else "")))
            if id_list is not None:
                self._check_batch_ids(id_list, set(), 0, id_limit)
            vec_list = list(vectors) if vectors is not None and not _is_matrix(vectors) else None
            if vectors is not None:
                # Validated once here; batches below are slices of this matrix.
                validated = to_matrix(
                    vectors if vec_list is None else vec_list,  # type: ignore[arg-type]
                    self._dimension,
                    reject_zero=reject_zero,
                )
                if len(validated) != len(text_list):
                    msg = f"got {len(text_list)} texts but {len(validated)} embeddings"
                    raise ValueError(msg)
            rows: Iterator[tuple[str, dict[str, Any] | str | None, str | None, Any]] = (
                (
                    text_list[n],
                    encoded_meta[n] if meta_list is not None else "{}",
                    id_list[n] if id_list is not None else None,
                    None,
                )
                for n in range(len(text_list))
            )
        else:
            meta_iter = iter(metadatas) if metadatas is not None else None
            vec_iter = iter(vectors) if vectors is not None else None
            id_iter = iter(id_list) if id_list is not None else None
            rows = self._zip_stream(texts, meta_iter, id_iter, vec_iter)

        result_ids: list[str] = []
        seen: set[str] = set(id_list or []) if sized else set()
        bar = tqdm(
            total=count, unit="doc", desc=f"TiDB {self.table_name}", disable=not self.show_progress
        )
        try:
            while True:
                batch = list(islice(rows, size))
                if not batch:
                    break
                offset = len(result_ids)
                b_texts = [r[0] for r in batch]
                b_meta = [
                    r[1] if isinstance(r[1], str) else encode_metadata(r[1], offset + n)
                    for n, r in enumerate(batch)
                ]
                b_ids = [r[2] if r[2] is not None else str(uuid.uuid4()) for r in batch]
                if not sized:
                    self._check_batch_ids(b_ids, seen, offset, id_limit)
                if validated is not None:
                    raw_vectors: Any = validated[offset : offset + len(batch)]
                elif batch[0][3] is not None:
                    raw_vectors = [r[3] for r in batch]
                else:
                    raw_vectors = yield EmbedDocs(b_texts)
                    if len(raw_vectors) != len(b_texts):
                        msg = (
                            f"the embedding model returned {len(raw_vectors)} vectors "
                            f"for {len(b_texts)} texts"
                        )
                        raise ValueError(msg)
                matrix = (
                    raw_vectors
                    if validated is not None
                    else to_matrix(raw_vectors, self._dimension, reject_zero=reject_zero)
                )
                if self._info is None or self._dimension is None:
                    yield from self._op_ensure_table(int(matrix.shape[1]))
                params = list(zip(b_ids, encode_vectors(matrix), b_texts, b_meta, strict=True))
                yield from self._op_write_rows(params, offset)
                result_ids.extend(b_ids)
                bar.update(len(batch))
        finally:
            bar.close()
        return result_ids

    def _op_write_rows(self, params: list[tuple[str, str, str, str]], offset: int) -> Op[None]:
        # One transaction per slice of at most _TXN_BYTES, far below TiDB's 100 MB limit even
        # when documents are large; a single row over TiDB's 6 MB entry limit is refused first.
        sizes = [_row_bytes(row) for row in params]
        for n, row_size in enumerate(sizes):  # all rows checked before any is written
            _check_entry(offset + n, row_size)
        chunk: list[tuple[str, str, str, str]] = []
        size = 0
        for row, row_size in zip(params, sizes, strict=True):
            if chunk and size + row_size > _TXN_BYTES:
                yield from self._op_write_chunk(chunk)
                chunk, size = [], 0
            chunk.append(row)
            size += row_size
        if chunk:
            yield from self._op_write_chunk(chunk)

    def _op_write_chunk(self, params: list[tuple[str, str, str, str]]) -> Op[None]:
        upsert = self._queries().upsert_sql
        if not self._bulk_load:
            yield Write([(upsert, params)])
            return
        try:
            yield Write([LoadRows(self.table_name, params, upsert)])
        except (bulk.LoadDataWarningError, PermissionError):
            # Warnings mean TiDB would alter the data; a refused file request means the server
            # asked for a file it was not given. Neither is retried with INSERT.
            raise
        except Exception as exc:
            if bulk.is_load_data_refused(exc):
                self._bulk_load = False
                logger.warning("TiDB refuses LOAD DATA LOCAL (%s): writing with INSERT", exc)
            # This batch goes through INSERT; a passing fault keeps the fast path for the next.
            yield Write([(upsert, params)])

    @staticmethod
    def _zip_stream(
        texts: Iterable[str],
        metas: Iterator[dict[str, Any] | None] | None,
        ids: Iterator[str] | None,
        vectors: Iterator[Sequence[float]] | None,
    ) -> Iterator[tuple[str, dict[str, Any] | None, str | None, Any]]:
        for n, text in enumerate(texts):
            _check_text(n, text)
            try:
                meta = next(metas) if metas is not None else None
                doc_id = next(ids) if ids is not None else None
                vec = next(vectors) if vectors is not None else None
            except StopIteration:
                msg = f"metadatas, ids or embeddings ran out at position {n}: lengths differ"
                raise ValueError(msg) from None
            yield text, meta, doc_id, vec

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and upsert texts; returns their ids in input order.

        Args:
            texts: any iterable of strings (a generator is consumed batch by batch).
            metadatas: one JSON-serialisable dict per text.
            ids: one id per text (None entries get a new UUID); re-adding an id replaces it.
            batch_size: rows embedded and written together (default: the store's ``batch_size``).
            **kwargs: ``ids`` may also come here, as LangChain's base class passes it.
        """
        return self._run(self._op_add(texts, metadatas, ids, None, batch_size))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_texts`."""
        return await self._arun(self._op_add(texts, metadatas, ids, None, batch_size))

    def add_embeddings(
        self,
        texts: Iterable[str],
        embeddings: Iterable[Sequence[float]],
        metadatas: Iterable[dict[str, Any] | None] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        batch_size: int | None = None,
    ) -> list[str]:
        """Upsert texts with precomputed vectors (no embedding calls); returns the ids."""
        return self._run(self._op_add(texts, metadatas, ids, embeddings, batch_size))

    async def aadd_embeddings(
        self,
        texts: Iterable[str],
        embeddings: Iterable[Sequence[float]],
        metadatas: Iterable[dict[str, Any] | None] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        batch_size: int | None = None,
    ) -> list[str]:
        """Async :meth:`add_embeddings`."""
        return await self._arun(self._op_add(texts, metadatas, ids, embeddings, batch_size))

    # ------------------------------------------------------------------ reads by id, deletes

    def _op_get_by_ids(self, ids: Sequence[str]) -> Op[list[Document]]:
        wanted = list(dict.fromkeys(ids))
        info = yield from self._op_table_info()
        if info is None or not wanted:
            return []
        found: dict[str, Document] = {}
        for start in range(0, len(wanted), _DELETE_BATCH):
            chunk = wanted[start : start + _DELETE_BATCH]
            rows = yield Read(self._queries().get_by_ids(chunk))
            for r in rows:
                found[r.id] = Document(
                    id=r.id, page_content=r.document or "", metadata=decode_metadata(r.meta)
                )
        return [found[i] for i in wanted if i in found]

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents for these ids, in input order; missing ids are skipped."""
        return self._run(self._op_get_by_ids(ids))

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async :meth:`get_by_ids`."""
        return await self._arun(self._op_get_by_ids(ids))

    def _op_get(self, filter: Mapping[str, Any] | None, limit: int | None) -> Op[list[Document]]:
        if filter:
            validate_filter(filter)
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            msg = f"limit must be a non-negative integer, got {limit!r}"
            raise ValueError(msg)
        info = yield from self._op_table_info()
        if info is None:
            return []
        rows = yield Read(self._queries().get_where(filter, limit))
        return [
            Document(id=r.id, page_content=r.document or "", metadata=decode_metadata(r.meta))
            for r in rows
        ]

    def get(
        self, *, filter: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> list[Document]:
        """Documents whose metadata match ``filter`` (every document when None), by id.

        Args:
            filter: a metadata filter, as for search.
            limit: at most this many documents.
        """
        return self._run(self._op_get(filter, limit))

    async def aget(
        self, *, filter: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> list[Document]:
        """Async :meth:`get`."""
        return await self._arun(self._op_get(filter, limit))

    def _op_update_metadata(self, metadata: Mapping[str, dict[str, Any]]) -> Op[int]:
        params = [(encode_metadata(m, n), i) for n, (i, m) in enumerate(metadata.items())]
        info = yield from self._op_table_info()
        if info is None or not params:
            return 0
        changed: int = yield Write([(self._queries().update_meta_sql(), params)])
        return changed

    def update_metadata(self, metadata: Mapping[str, dict[str, Any]]) -> int:
        """Replace the metadata of existing documents by id, without re-embedding them.

        All rows change in one transaction; ids that do not exist are ignored. Returns the
        number of rows matched (an update to identical metadata counts too).
        """
        return self._run(self._op_update_metadata(metadata))

    async def aupdate_metadata(self, metadata: Mapping[str, dict[str, Any]]) -> int:
        """Async :meth:`update_metadata`."""
        return await self._arun(self._op_update_metadata(metadata))

    def _op_delete(self, ids: list[str] | None, filter: Mapping[str, Any] | None) -> Op[bool]:
        if ids is None and not filter:
            msg = (
                "delete() needs ids= or filter=; refusing to delete every row. "
                "Use clear() to empty the table or drop_table() to remove it."
            )
            raise ValueError(msg)
        q = self._queries()
        if filter:
            validate_filter(filter)
        info = yield from self._op_table_info()
        if info is None:
            return True
        steps: list[Any] = []
        if ids is not None:
            id_list = list(ids)
            steps += [
                q.delete_ids(id_list[s : s + _DELETE_BATCH])
                for s in range(0, len(id_list), _DELETE_BATCH)
            ]
        if filter:
            steps.append(q.delete_filter(filter))
        if steps:
            yield Write(steps)
        return True

    def delete(
        self,
        ids: list[str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool | None:
        """Delete by ids, by metadata filter, or both. Missing ids are fine.

        Raises:
            ValueError: when neither ids nor filter is given (use :meth:`clear`).
        """
        return self._run(self._op_delete(ids, filter))

    async def adelete(
        self,
        ids: list[str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool | None:
        """Async :meth:`delete`."""
        return await self._arun(self._op_delete(ids, filter))

    def _op_clear(self) -> Op[None]:
        info = yield from self._op_table_info()
        if info is not None:
            yield Write([sa.delete(self._table)])

    def clear(self) -> None:
        """Delete every row (the table and its index stay)."""
        self._run(self._op_clear())

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await self._arun(self._op_clear())

    def drop_table(self) -> None:
        """Drop the table (``DROP TABLE IF EXISTS``)."""
        with self._engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS `{self.table_name}`"))
        self._info = _MISSING
        self._index_ready = False

    async def adrop_table(self) -> None:
        """Async :meth:`drop_table`."""
        async with (await self._aengine()).begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS `{self.table_name}`"))
        self._info = _MISSING
        self._index_ready = False

    def count(self) -> int:
        """Number of stored documents (0 when the table does not exist yet)."""

        def op() -> Op[int]:
            info = yield from self._op_table_info()
            if info is None:
                return 0
            rows = yield Read(self._queries().count())
            return int(rows[0][0])

        return self._run(op())

    # ------------------------------------------------------------------ search

    def _resolve_strategy(self, requested: str | None) -> str:
        strategy = requested or self.filter_strategy
        if strategy not in ("auto", "pre", "post"):
            msg = f"filter_strategy must be 'auto', 'pre' or 'post', got {strategy!r}"
            raise ValueError(msg)
        if strategy == "auto":
            # Without an index, "pre" is exact and as fast; with one, "post" keeps using it.
            return "post" if self._index_ready else "pre"
        return strategy

    def _op_search_vector(
        self,
        vector: Sequence[float],
        k: int,
        filter: Mapping[str, Any] | None,
        *,
        with_vector: bool = False,
        filter_strategy: str | None = None,
        overfetch: int = 10,
    ) -> Op[list[Any]]:
        if not isinstance(k, int) or k < 1:
            msg = f"k must be a positive integer, got {k!r}"
            raise ValueError(msg)
        if filter:
            validate_filter(filter)
        info = yield from self._op_table_info()
        if info is None:
            return []
        qv = encode_query_vector(
            vector, self._dimension, reject_zero=self.distance_strategy is DistanceStrategy.COSINE
        )
        # A row whose distance is NULL (a zero vector under cosine, written by another tool)
        # sorts first and would take a slot: widen the limit by those rows and drop them.
        want = k
        while True:
            rows = yield from self._op_search_rows(
                qv, want, filter, with_vector, filter_strategy, overfetch
            )
            good = [r for r in rows if r.distance is not None]
            if len(good) >= k or len(rows) < want:
                return good[:k]
            want += len(rows) - len(good)

    def _op_search_rows(
        self,
        qv: str,
        k: int,
        filter: Mapping[str, Any] | None,
        with_vector: bool,
        filter_strategy: str | None,
        overfetch: int,
    ) -> Op[list[Any]]:
        q = self._queries()
        params = {"qv": qv}
        if not filter:
            rows: list[Any] = yield Read(q.knn_template(k, with_vector=with_vector), params)
            return rows
        strategy = self._resolve_strategy(filter_strategy)
        if strategy == "pre":
            # Exact search. Scanning for the filter alone skips decoding every stored vector,
            # so a selective filter is answered by ranking just its matches (2.5x faster on
            # 20k rows); a broad one stops the probe early and takes a single filtered scan.
            probe = yield Read(q.matching_ids_template(filter, _SELECTIVE_IDS + 1))
            ids = [r.id for r in probe]
            if len(ids) <= _SELECTIVE_IDS:
                if not ids:
                    return []
                among = q.among_ids_template(k, filter, with_vector=with_vector)
                rows = yield Read(among, {"qv": qv, "ids": ids})
                return rows
            rows = yield Read(q.prefilter_template(k, filter, with_vector=with_vector), params)
            return rows
        # Post-filter: widen the candidate pool until k rows match or the table is exhausted.
        candidates = max(k * overfetch, 20)
        total: int | None = None
        while True:
            post = q.postfilter_template(k, candidates, filter, with_vector=with_vector)
            rows = yield Read(post, params)
            if len(rows) >= k:
                return rows
            if total is None:
                total = int((yield Read(q.count()))[0][0])
            if candidates >= total:
                return rows
            candidates = min(candidates * 4, total)

    @staticmethod
    def _docs(rows: Iterable[Any]) -> list[tuple[Document, float]]:
        return [
            (
                Document(id=r.id, page_content=r.document or "", metadata=decode_metadata(r.meta)),
                float(r.distance),
            )
            for r in rows
            if r.distance is not None
        ]

    def _op_search_text(
        self, query: str, k: int, filter: Mapping[str, Any] | None, filter_strategy: str | None
    ) -> Op[list[tuple[Document, float]]]:
        if filter:
            validate_filter(filter)
        info = yield from self._op_table_info()
        if info is None:
            return []
        vector = yield EmbedQuery(query)
        rows = yield from self._op_search_vector(vector, k, filter, filter_strategy=filter_strategy)
        return self._docs(rows)

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        filter_strategy: FilterStrategy | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """The k nearest documents with their distance (lower is closer).

        Args:
            query: text to embed and search for.
            k: how many results.
            filter: a metadata filter (``{"year": {"$gte": 2020}}``, see the README).
            filter_strategy: override the store's "pre" / "post" / "auto" for this call.
            **kwargs: ignored (accepted for retriever compatibility).
        """
        return self._run(self._op_search_text(query, k, filter, filter_strategy))

    async def asimilarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        filter_strategy: FilterStrategy | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score`."""
        return await self._arun(self._op_search_text(query, k, filter, filter_strategy))

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The k documents nearest to ``query``, nearest first."""
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    async def asimilarity_search(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`similarity_search`."""
        pairs = await self.asimilarity_search_with_score(query, k, filter, **kwargs)
        return [d for d, _ in pairs]

    def _op_by_vector(
        self,
        embedding: Sequence[float],
        k: int,
        filter: Mapping[str, Any] | None,
        filter_strategy: str | None,
    ) -> Op[list[tuple[Document, float]]]:
        rows = yield from self._op_search_vector(
            embedding, k, filter, filter_strategy=filter_strategy
        )
        return self._docs(rows)

    def similarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        filter_strategy: FilterStrategy | None = None,
    ) -> list[tuple[Document, float]]:
        """The k nearest documents to a vector, with distances."""
        return self._run(self._op_by_vector(embedding, k, filter, filter_strategy))

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        filter_strategy: FilterStrategy | None = None,
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score_by_vector`."""
        return await self._arun(self._op_by_vector(embedding, k, filter, filter_strategy))

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The k documents nearest to a vector."""
        pairs = self.similarity_search_with_score_by_vector(
            embedding, k, filter, filter_strategy=kwargs.get("filter_strategy")
        )
        return [d for d, _ in pairs]

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`similarity_search_by_vector`."""
        pairs = await self.asimilarity_search_with_score_by_vector(
            embedding, k, filter, filter_strategy=kwargs.get("filter_strategy")
        )
        return [d for d, _ in pairs]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distance -> relevance in [0, 1], per metric.

        cosine: TiDB's distance is in [0, 2], so 1 - d/2. l2: 1 / (1 + d), valid for any
        vector norm. inner product: (1 - d) / 2 with d = -<a, b>, exact for unit vectors
        (Titan's default) and clamped otherwise.
        """
        strategy = self.distance_strategy
        if strategy is DistanceStrategy.COSINE:
            return lambda d: min(1.0, max(0.0, 1.0 - d / 2.0))
        if strategy is DistanceStrategy.L2:
            return lambda d: 1.0 / (1.0 + max(0.0, d))
        return lambda d: min(1.0, max(0.0, (1.0 - d) / 2.0))

    # ------------------------------------------------------------------ MMR

    def _op_mmr(
        self,
        embedding: Sequence[float] | None,
        query: str | None,
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: Mapping[str, Any] | None,
        filter_strategy: str | None,
    ) -> Op[list[Document]]:
        if not 0.0 <= lambda_mult <= 1.0:
            msg = f"lambda_mult must be between 0 and 1, got {lambda_mult}"
            raise ValueError(msg)
        if filter:
            validate_filter(filter)
        info = yield from self._op_table_info()
        if info is None:
            return []
        if embedding is None:
            embedding = yield EmbedQuery(query or "")
        rows = yield from self._op_search_vector(
            embedding, max(fetch_k, k), filter, with_vector=True, filter_strategy=filter_strategy
        )
        if not rows:
            return []
        vectors = [decode_vector(r.embedding) for r in rows]
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32), vectors, lambda_mult=lambda_mult, k=k
        )
        docs = self._docs(rows)
        return [docs[i][0] for i in chosen]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Diverse results: fetch ``fetch_k`` nearest, then pick k by maximal marginal relevance."""
        op = self._op_mmr(
            embedding, None, k, fetch_k, lambda_mult, filter, kwargs.get("filter_strategy")
        )
        return self._run(op)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search_by_vector`."""
        op = self._op_mmr(
            embedding, None, k, fetch_k, lambda_mult, filter, kwargs.get("filter_strategy")
        )
        return await self._arun(op)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Diverse results for a text query (see the ``_by_vector`` variant)."""
        op = self._op_mmr(
            None, query, k, fetch_k, lambda_mult, filter, kwargs.get("filter_strategy")
        )
        return self._run(op)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search`."""
        op = self._op_mmr(
            None, query, k, fetch_k, lambda_mult, filter, kwargs.get("filter_strategy")
        )
        return await self._arun(op)

    # ------------------------------------------------------------------ index operations

    def _op_require_tiflash(self, operation: str) -> Op[None]:
        tiflash = yield from self._op_has_tiflash()
        if not tiflash:
            raise indexes.TiFlashUnavailableError(operation)

    def create_vector_index(self) -> None:
        """Add the HNSW index for the store's metric (handles the TiFlash replica).

        Raises:
            TiFlashUnavailableError: the server has no TiFlash store.
            ValueError: the metric has no index, or the table does not exist yet.
        """

        def op() -> Op[None]:
            yield from self._op_require_tiflash("create_vector_index()")
            info = yield from self._op_table_info()
            if info is None:
                msg = f"table {self.table_name!r} does not exist yet: add documents first"
                raise ValueError(msg)
            name = indexes.index_name(self.table_name)
            existing = yield Read(
                indexes.VECTOR_INDEXES_SQL, {"table": self.table_name, "name": name}
            )
            if existing:
                self._index_ready = True
                return
            cloud = indexes.is_tidb_cloud_host(self._url.host)
            steps: list[Any] = []
            if not cloud:
                replicas = yield Read(indexes.REPLICA_SQL, {"table": self.table_name})
                if not replicas or not replicas[0][0]:
                    steps.append(sa.text(f"ALTER TABLE `{self.table_name}` SET TIFLASH REPLICA 1"))
            ddl = indexes.add_index_sql(
                self.table_name, self.distance_strategy, on_demand_replica=cloud
            )
            for step in [*steps, sa.text(ddl)]:
                yield Write([step])
            self._index_ready = True

        self._run(op())

    def vector_index_status(self) -> list[dict[str, Any]]:
        """Build progress rows from ``INFORMATION_SCHEMA.TIFLASH_INDEXES`` for this table.

        Done when ``ROWS_STABLE_NOT_INDEXED`` is 0 on every row.
        """

        def op() -> Op[list[dict[str, Any]]]:
            yield from self._op_require_tiflash("vector_index_status()")
            rows = yield Read(indexes.INDEX_STATUS_SQL, {"table": self.table_name})
            return [dict(r._mapping) for r in rows]

        return self._run(op())

    def explain(self, query: str | Sequence[float], k: int = 4) -> indexes.ExplainResult:
        """Ask TiDB's optimiser whether the kNN query for ``query`` uses the vector index."""

        def op() -> Op[indexes.ExplainResult]:
            yield from self._op_require_tiflash("explain()")
            info = yield from self._op_table_info()
            if info is None:
                msg = f"table {self.table_name!r} does not exist yet: add documents first"
                raise ValueError(msg)
            vector = (yield EmbedQuery(query)) if isinstance(query, str) else query
            qv = encode_query_vector(vector, self._dimension, reject_zero=False)
            compiled = self._queries().knn(qv, k).compile(dialect=self._engine.dialect)
            sql = "EXPLAIN " + compiled.string
            rows = yield Read(sql, dict(compiled.params))
            return indexes.explain_result(list(rows), sql)

        return self._run(op())

    def knn_sql(self, k: int = 4) -> str:
        """The kNN statement this store sends (query vector as a placeholder), for inspection."""
        compiled = self._queries().knn("[0]", k).compile(dialect=self._engine.dialect)
        return str(compiled)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> TiDBVectorStore:
        """Create a store (``kwargs`` go to the constructor) and add ``texts``."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> TiDBVectorStore:
        """Async :meth:`from_texts`."""
        store = cls(embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    def from_existing_table(
        cls, embedding: Embeddings | None, table_name: str, **kwargs: Any
    ) -> TiDBVectorStore:
        """Open a table that already exists (ours or langchain-community's legacy schema).

        Raises:
            ValueError: the table does not exist or is not a vector store table.
        """
        store = cls(embedding, table_name=table_name, **kwargs)
        info = store._run(store._op_table_info())
        if info is None:
            msg = f"table {table_name!r} does not exist in database {store._url.database!r}"
            raise ValueError(msg)
        return store
