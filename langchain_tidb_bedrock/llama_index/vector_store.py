"""``TiDBVectorStore`` for LlamaIndex: a thin adapter over the LangChain store's operations.

It holds a :class:`langchain_tidb_bedrock.vectorstores.base.TiDBVectorStore` on the same table
and engine, and only translates: nodes to rows (LlamaIndex's ``node_to_metadata_dict`` layout,
the one ``llama-index-vector-stores-tidbvector`` writes), rows back to nodes, LlamaIndex filters
to the filter dict (:mod:`.filters`), and distances to LlamaIndex's similarity scale. Writes,
filters, search plans, the vector index, indexed metadata keys, TLS and pools are the store's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from llama_index.core.base.embeddings.base import SimilarityMode, similarity
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.runner import Op
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.llama_index._ops import op_get_by_ids, op_mmr, op_nearest_in_ids
from langchain_tidb_bedrock.llama_index.filters import to_filter_dict
from langchain_tidb_bedrock.vectorstores.base import FilterStrategy
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore as LangChainStore
from langchain_tidb_bedrock.vectorstores.schema import DistanceStrategy

__all__ = ["DEFAULT_TABLE_NAME", "REF_DOC_KEY", "TiDBVectorStore"]

logger = logging.getLogger("langchain_tidb_bedrock.llama_index")

DEFAULT_TABLE_NAME = "llama_index_vector_store"
"""llama-index-vector-stores-tidbvector's default table, so its tables open by default."""

REF_DOC_KEY = "ref_doc_id"
"""The metadata key ``node_to_metadata_dict`` stores the source document's id under; indexed."""

DEFAULT_MMR_PREFETCH_FACTOR = 4.0
"""MMR picks ``similarity_top_k`` out of this many times as many nearest nodes."""

_QUERY_KWARGS = frozenset(
    {"mmr_threshold", "mmr_prefetch_k", "mmr_prefetch_factor", "filter_strategy"}
)
_HYBRID_MODES = frozenset(
    {
        VectorStoreQueryMode.HYBRID,
        VectorStoreQueryMode.TEXT_SEARCH,
        VectorStoreQueryMode.SEMANTIC_HYBRID,
        VectorStoreQueryMode.SPARSE,
    }
)
_MODES: dict[DistanceStrategy, SimilarityMode] = {
    DistanceStrategy.COSINE: SimilarityMode.DEFAULT,
    DistanceStrategy.L2: SimilarityMode.EUCLIDEAN,
    DistanceStrategy.INNER_PRODUCT: SimilarityMode.DOT_PRODUCT,
}


class _Plan:
    """One query, checked: the search to run and how its scores read."""

    def __init__(
        self,
        vector: list[float],
        k: int,
        filter: dict[str, Any] | None,
        strategy: FilterStrategy | None,
        op: Op[list[tuple[Document, float]]] | None,
        scores_are_similarities: bool,
    ) -> None:
        self.vector, self.k, self.filter, self.strategy = vector, k, filter, strategy
        self.op, self.scores_are_similarities = op, scores_are_similarities


class TiDBVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store on TiDB vector search, sharing the LangChain store's engine.

    Setup:
        Install the extra and point it at TiDB (TiDB Cloud Starter or self-managed >= v8.5):

        ```bash
        pip install -U 'langchain-tidb-bedrock[llama-index]'
        export TIDB_HOST=gateway01.us-west-2.prod.aws.tidbcloud.com TIDB_PORT=4000
        export TIDB_USER=xxxx.root TIDB_PASSWORD=... TIDB_DB_NAME=test
        ```

        Offline, use ``LocalTiDB`` (a real local tidb-server).

    Key init args — indexing params:
        table_name: str
            Table to use (default ``llama_index_vector_store``, as
            llama-index-vector-stores-tidbvector); created on the first write when missing.
            Tables made by that package, or by the LangChain store, open as they are.
        distance_strategy: "cosine" | "l2" | "inner_product"
            Distance for search and for the HNSW index; read from a legacy table's comment.
        embedding_dimension: int | None
            Vector size; read from the table or the first nodes when omitted.
        vector_index: bool | None
            Create the HNSW index with the table (None: when the server has TiFlash).
        filter_strategy: "auto" | "pre" | "post"
            Exact filtered search, or index candidates then the filter (as the LangChain store).
        indexed_metadata: dict | None
            More metadata keys to index (``{"year": int}``); ``ref_doc_id`` always is, so
            ``delete(ref_doc_id)`` and ``doc_ids=`` read an index, not every row's JSON.

    Key init args — client params:
        engine: TiDBEngine | None
            A shared engine (pools, TLS); the store never closes it.
        connection_string: str | None
            SQLAlchemy URL; with neither, the ``TIDB_*`` environment variables.

    Instantiate:
        ```python
        from langchain_tidb_bedrock import TiDBEngine
        from langchain_tidb_bedrock.llama_index import TiDBVectorStore

        vector_store = TiDBVectorStore(engine=TiDBEngine.from_env(), table_name="docs")
        ```

    Add nodes (upserts by node id, bulk-loaded):
        ```python
        from llama_index.core import StorageContext, VectorStoreIndex

        storage = StorageContext.from_defaults(vector_store=vector_store)
        index = VectorStoreIndex.from_documents(documents, storage_context=storage,
                                                embed_model=embed_model)
        ```

    Delete:
        ```python
        index.delete_ref_doc("doc-1")            # every node of a source document
        vector_store.delete_nodes(["node-1"])    # or by node id, and/or filters=
        ```

    Search:
        ```python
        from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

        retriever = index.as_retriever(
            similarity_top_k=3,
            filters=MetadataFilters(
                filters=[MetadataFilter(key="year", value=2020, operator=">=")]
            ),
        )
        nodes = retriever.retrieve("What is TiDB?")
        ```

    MMR:
        ```python
        retriever = index.as_retriever(vector_store_query_mode="mmr", similarity_top_k=3,
                                       vector_store_kwargs={"mmr_threshold": 0.5})
        ```

    Async:
        ```python
        nodes = await retriever.aretrieve("What is TiDB?")
        await vector_store.adelete("doc-1")
        ```
    """

    stores_text: bool = True
    flat_metadata: bool = False
    table_name: str = DEFAULT_TABLE_NAME

    _store: LangChainStore = PrivateAttr()

    def __init__(
        self,
        table_name: str = DEFAULT_TABLE_NAME,
        *,
        engine: TiDBEngine | None = None,
        connection_string: str | None = None,
        distance_strategy: DistanceStrategy | str | None = None,
        embedding_dimension: int | None = None,
        vector_index: bool | None = None,
        filter_strategy: FilterStrategy = "auto",
        indexed_metadata: Mapping[str, Any] | None = None,
        batch_size: int = 500,
        bulk_load: bool = True,
        tls: bool | None = None,
        ca_path: str | None = None,
        engine_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the store; no database call happens here.

        Args:
            table_name: The table, created on the first write when missing.
            engine: A shared :class:`TiDBEngine` (not closed by this store).
            connection_string: SQLAlchemy URL (a private engine, closed by :meth:`close`).
            distance_strategy: "cosine" (default), "l2" or "inner_product".
            embedding_dimension: The vector size; inferred when None.
            vector_index: Create an HNSW index with the table: True, False or None (auto).
            filter_strategy: "pre" (exact), "post" (index candidates, then filter), or "auto".
            indexed_metadata: Metadata keys to index besides ``ref_doc_id`` (types: str, int,
                float, list[str]).
            batch_size: Nodes written per transaction (each bulk-loaded).
            bulk_load: Write with ``LOAD DATA LOCAL ... REPLACE`` (falls back to INSERT).
            tls: Force TLS on or off; default on for non-loopback hosts.
            ca_path: CA bundle for TLS.
            engine_args: Extra ``create_engine`` arguments (without ``engine=``).
        """
        indexed = {REF_DOC_KEY: str, **dict(indexed_metadata or {})}
        store = LangChainStore(
            None,
            engine=engine,
            connection_string=connection_string,
            table_name=table_name,
            distance_strategy=distance_strategy,
            embedding_dimension=embedding_dimension,
            vector_index=vector_index,
            filter_strategy=filter_strategy,
            indexed_metadata=indexed,
            batch_size=batch_size,
            bulk_load=bulk_load,
            tls=tls,
            ca_path=ca_path,
            engine_args=engine_args,
        )
        super().__init__(table_name=store.table_name)  # type: ignore[call-arg]  # pydantic field
        self._store = store

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's serialization name."""
        return "TiDBVectorStore"

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self) -> LangChainStore:
        """The LangChain store doing the work (same table and engine)."""
        return self._store

    @property
    def langchain_store(self) -> LangChainStore:
        """The LangChain store on the same table: search it with LangChain (by vector)."""
        return self._store

    @property
    def tidb_engine(self) -> TiDBEngine:
        """The engine this store runs on (pass it to other components to share it)."""
        return self._store.tidb_engine

    @property
    def distance_strategy(self) -> DistanceStrategy:
        """The metric (cosine unless set or read from a legacy table)."""
        return self._store.distance_strategy

    def close(self) -> None:
        """Release pooled connections, unless the engine is shared."""
        self._store.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._store.aclose()

    def __enter__(self) -> TiDBVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ table administration

    def create_table(self, dimension: int | None = None) -> None:
        """Create the table now (with its indexes) if missing."""
        self._store.create_table(dimension)

    def drop_table(self) -> None:
        """Drop the table (``DROP TABLE IF EXISTS``)."""
        self._store.drop_table()

    def drop_vectorstore(self) -> None:
        """Drop the table (llama-index-vector-stores-tidbvector's name for it)."""
        self._store.drop_table()

    def count(self) -> int:
        """Number of stored nodes (0 when the table does not exist yet)."""
        return self._store.count()

    def create_vector_index(self) -> None:
        """Add the HNSW index for the store's metric (needs TiFlash)."""
        self._store.create_vector_index()

    def create_metadata_index(self, key: str, type: Any) -> bool:
        """Index one metadata key of the existing table; True when it was added."""
        return self._store.create_metadata_index(key, type)

    @property
    def indexed_metadata(self) -> dict[str, str]:
        """Indexed metadata keys known so far: key -> type."""
        return self._store.indexed_metadata

    # ------------------------------------------------------------------ nodes <-> rows

    def _rows(
        self, nodes: Sequence[BaseNode]
    ) -> tuple[list[str], list[str], list[list[float]], list[dict[str, Any]]]:
        # A repeated node id keeps its last version, as SimpleVectorStore does.
        latest: dict[str, BaseNode] = {}
        for n, node in enumerate(nodes):
            if not isinstance(node, BaseNode):
                msg = f"node at position {n} is a {type(node).__name__}, not a LlamaIndex node"
                raise InvalidInputError(msg)
            if node.embedding is None:
                msg = (
                    f"node at position {n} ({node.node_id!r}) has no embedding: embed the nodes "
                    "first (VectorStoreIndex and IngestionPipeline do)"
                )
                raise InvalidInputError(msg)
            latest[node.node_id] = node
        chosen = list(latest.values())
        return (
            list(latest),
            [node.get_content(metadata_mode=MetadataMode.NONE) for node in chosen],
            [list(node.embedding or ()) for node in chosen],
            [
                # Dumped from a shallow copy without the vector: the layout drops it anyway,
                # and dumping its floats was most of the per-node cost of an ingest.
                node_to_metadata_dict(
                    node.model_copy(update={"embedding": None}),
                    remove_text=True,
                    flat_metadata=self.flat_metadata,
                )
                for node in chosen
            ],
        )

    @staticmethod
    def _node(doc: Document) -> BaseNode:
        """A row back to a node: LlamaIndex's layout, or a plain row (LangChain's) as a TextNode."""
        meta = doc.metadata
        if "_node_content" in meta:
            try:
                node = metadata_dict_to_node(meta, text=doc.page_content)
            except (ValueError, TypeError, KeyError) as exc:
                logger.warning("row %r: unreadable _node_content (%s); read as text", doc.id, exc)
            else:
                node.id_ = doc.id or node.id_
                return node
        return TextNode(id_=doc.id, text=doc.page_content, metadata=dict(meta))

    def _similarity(self) -> Callable[[float], float]:
        """Distance -> LlamaIndex's similarity for the metric.

        As ``llama_index.core``'s ``similarity``: the cosine similarity, minus the L2
        distance, or the dot product.
        """
        strategy = self._store.distance_strategy
        if strategy is DistanceStrategy.COSINE:
            return lambda d: 1.0 - d
        return lambda d: -d  # L2: -distance; inner product: the distance is -dot

    def _pair_similarity(self, a: Any, b: Any) -> float:
        # Read at call time: a legacy table's metric is known once the search read the table.
        return float(similarity(a, b, mode=_MODES[self._store.distance_strategy]))

    def _result(
        self, pairs: list[tuple[Document, float]], scores_are_similarities: bool
    ) -> VectorStoreQueryResult:
        to_sim = (lambda s: s) if scores_are_similarities else self._similarity()
        return VectorStoreQueryResult(
            nodes=[self._node(doc) for doc, _ in pairs],
            similarities=[float(to_sim(score)) for _, score in pairs],
            ids=[str(doc.id) for doc, _ in pairs],
        )

    # ------------------------------------------------------------------ writes

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert nodes (with their embeddings) by node id; returns the ids in input order.

        Args:
            nodes: Embedded nodes; re-adding a node id replaces that node.
            **add_kwargs: ``batch_size`` (nodes per transaction).
        """
        if not nodes:
            return []
        ids, texts, vectors, metas = self._rows(nodes)
        self._store.add_embeddings(
            texts, vectors, metas, ids=ids, batch_size=add_kwargs.get("batch_size")
        )
        return [node.node_id for node in nodes]

    async def async_add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Async :meth:`add`."""
        if not nodes:
            return []
        ids, texts, vectors, metas = self._rows(nodes)
        await self._store.aadd_embeddings(
            texts, vectors, metas, ids=ids, batch_size=add_kwargs.get("batch_size")
        )
        return [node.node_id for node in nodes]

    @staticmethod
    def _ref_filter(ref_doc_id: object) -> dict[str, Any]:
        if not isinstance(ref_doc_id, str):
            msg = f"ref_doc_id must be a string, got {type(ref_doc_id).__name__}"
            raise InvalidInputError(msg)
        return {REF_DOC_KEY: ref_doc_id}

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of a source document (through the ``ref_doc_id`` index)."""
        self._store.delete(filter=self._ref_filter(ref_doc_id))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Async :meth:`delete`."""
        await self._store.adelete(filter=self._ref_filter(ref_doc_id))

    @staticmethod
    def _delete_args(
        node_ids: list[str] | None, filters: MetadataFilters | None
    ) -> tuple[list[str] | None, dict[str, Any] | None]:
        condition = to_filter_dict(filters)
        if node_ids is None and condition is None:
            msg = (
                "delete_nodes() needs node_ids or filters; refusing to delete every node "
                "(use clear())"
            )
            raise InvalidInputError(msg)
        if isinstance(node_ids, str):
            msg = "node_ids must be a list of ids, got one string"
            raise InvalidInputError(msg)
        return (list(node_ids) if node_ids is not None else None), condition

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id, by filters, or the listed nodes that match the filters."""
        ids, condition = self._delete_args(node_ids, filters)
        self._store.delete(ids, filter=condition)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Async :meth:`delete_nodes`."""
        ids, condition = self._delete_args(node_ids, filters)
        await self._store.adelete(ids, filter=condition)

    def clear(self) -> None:
        """Delete every node (the table and its indexes stay)."""
        self._store.clear()

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await self._store.aclear()

    # ------------------------------------------------------------------ reads

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Nodes by id (input order) and/or filters (id order); every node when neither."""
        condition = to_filter_dict(filters)
        if node_ids is None:
            docs = self._store.get(filter=condition)
        elif condition is None:
            docs = self._store.get_by_ids(list(node_ids))
        else:
            docs = self._store._run(op_get_by_ids(self._store, list(node_ids), condition))
        return [self._node(doc) for doc in docs]

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Async :meth:`get_nodes`."""
        condition = to_filter_dict(filters)
        if node_ids is None:
            docs = await self._store.aget(filter=condition)
        elif condition is None:
            docs = await self._store.aget_by_ids(list(node_ids))
        else:
            docs = await self._store._arun(op_get_by_ids(self._store, list(node_ids), condition))
        return [self._node(doc) for doc in docs]

    def _plan(self, query: VectorStoreQuery, kwargs: Mapping[str, Any]) -> _Plan:
        unknown = set(kwargs) - _QUERY_KWARGS
        if unknown:
            msg = (
                f"unknown query argument(s) {', '.join(sorted(unknown))}; "
                f"supported: {', '.join(sorted(_QUERY_KWARGS))}"
            )
            raise InvalidInputError(msg)
        mode = VectorStoreQueryMode(query.mode)
        if mode in _HYBRID_MODES:
            msg = (
                f"query mode {mode.value!r} needs keyword (full-text) search, which this store "
                "does not offer yet; use 'default' or 'mmr'"
            )
            raise NotImplementedError(msg)
        if mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            msg = f"query mode {mode.value!r} is not supported; use 'default' or 'mmr'"
            raise NotImplementedError(msg)
        if query.query_embedding is None:
            msg = "VectorStoreQuery.query_embedding is required: this store searches by vector"
            raise InvalidInputError(msg)
        k = query.similarity_top_k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            msg = f"similarity_top_k must be a positive integer, got {k!r}"
            raise InvalidInputError(msg)
        vector = list(query.query_embedding)
        condition = to_filter_dict(query.filters)
        # An empty list restricts nothing: VectorIndexRetriever passes node_ids=[] for a store
        # that keeps the text (its index struct lists no nodes), and other stores read it so.
        if query.doc_ids:
            scope = {REF_DOC_KEY: {"$in": list(query.doc_ids)}}
            condition = {"$and": [condition, scope]} if condition else scope
        ids = list(query.node_ids) if query.node_ids else None
        strategy = kwargs.get("filter_strategy")
        if mode is VectorStoreQueryMode.MMR:
            threshold = query.mmr_threshold
            if threshold is None:
                threshold = kwargs.get("mmr_threshold")
            fetch_k = kwargs.get("mmr_prefetch_k") or int(
                k * float(kwargs.get("mmr_prefetch_factor") or DEFAULT_MMR_PREFETCH_FACTOR)
            )
            sim = self._pair_similarity
            op = op_mmr(
                self._store, vector, k, max(fetch_k, k), condition, ids, strategy, threshold, sim
            )
            return _Plan(vector, k, condition, strategy, op, scores_are_similarities=True)
        if ids is not None:
            op = op_nearest_in_ids(self._store, vector, k, ids, condition)
            return _Plan(vector, k, condition, strategy, op, scores_are_similarities=False)
        return _Plan(vector, k, condition, strategy, None, scores_are_similarities=False)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nearest nodes (DEFAULT) or a diverse pick of them (MMR).

        Args:
            query: ``query_embedding``, ``similarity_top_k``, ``filters``, ``doc_ids`` and
                ``node_ids`` (an empty list restricts nothing, as ``VectorIndexRetriever``
                means it), ``mode`` (DEFAULT or MMR) and ``mmr_threshold``.
            **kwargs: ``mmr_threshold`` (when the query has none), ``mmr_prefetch_k`` or
                ``mmr_prefetch_factor`` (candidates MMR picks from; default 4x the top k),
                ``filter_strategy`` ("pre", "post" or "auto" for this query).

        Returns:
            Nodes, ids and similarities, best first. Similarities are LlamaIndex's for the
            metric: cosine similarity, minus the L2 distance, or the dot product (for MMR,
            the MMR scores, as ``SimpleVectorStore`` returns them; at ``mmr_threshold=0``
            relevance counts for nothing and the first pick is the nearest node).

        Raises:
            NotImplementedError: HYBRID, TEXT_SEARCH, SPARSE, SEMANTIC_HYBRID (no keyword
                search yet) or a learner mode.
            InvalidInputError: No query embedding, a bad ``similarity_top_k``, an unknown
                keyword argument, or a filter this store cannot apply (``FilterError``).
        """
        plan = self._plan(query, kwargs)
        if plan.op is not None:
            return self._result(self._store._run(plan.op), plan.scores_are_similarities)
        pairs = self._store.similarity_search_with_score_by_vector(
            plan.vector, plan.k, plan.filter, filter_strategy=plan.strategy
        )
        return self._result(pairs, scores_are_similarities=False)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Async :meth:`query` (natively async: aiomysql)."""
        plan = self._plan(query, kwargs)
        if plan.op is not None:
            return self._result(await self._store._arun(plan.op), plan.scores_are_similarities)
        pairs = await self._store.asimilarity_search_with_score_by_vector(
            plan.vector, plan.k, plan.filter, filter_strategy=plan.strategy
        )
        return self._result(pairs, scores_are_similarities=False)
