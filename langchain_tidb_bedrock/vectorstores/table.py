"""What a store knows of its table: columns, dimension, metric, vector index; and creating it.

Presence is cached (a table does not lose its columns under us); absence never is, so a store
that looked before another process created the table sees it on its next call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.db.runner import Op, read, write
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.vectorstores import indexes, metadata_index
from langchain_tidb_bedrock.vectorstores.hybrid import KeywordTables
from langchain_tidb_bedrock.vectorstores.metadata_index import MetadataIndex
from langchain_tidb_bedrock.vectorstores.queries import Queries
from langchain_tidb_bedrock.vectorstores.schema import (
    COLUMNS_QUERY,
    DistanceStrategy,
    TableInfo,
    create_table_sql,
    quote_identifier,
    read_table_info,
    table_object,
)

__all__ = ["TableState"]

logger = logging.getLogger("langchain_tidb_bedrock.vectorstores")
# Tables already reported as index-less in this process: one notice per table, however many
# store objects open it (a CLI command opens several).
_TOLD_EXACT: set[tuple[str | None, str]] = set()


class TableState:
    """The table's name, metric and dimension, and what the server has (TiFlash, an index)."""

    def __init__(
        self,
        name: str,
        *,
        strategy: DistanceStrategy | None,
        dimension: int | None,
        vector_index: bool | None,
        host: str | None,
        indexed_metadata: Mapping[str, Any] | None = None,
        keyword_search: bool = False,
    ) -> None:
        """Record what the caller asked for; nothing is read until an operation needs it.

        ``keyword_search``: create the keyword index (``hybrid.KeywordTables``) with the
        table. An existing keyword index is found and kept up to date either way.
        """
        # Declared keys are created with the table (or by create_table() on an existing one);
        # searches use the indexes the table has, declared here or not.
        self.declared = metadata_index.declare_all(indexed_metadata)
        self.metadata_indexes: dict[tuple[str, ...], MetadataIndex] = {}
        self._warned_missing = False
        self.name = name
        self.table = table_object(name)
        # What the caller asked for, never overwritten ...
        self.strategy_given = strategy
        self.dimension_given = dimension
        self.vector_index = vector_index
        # ... and what the server reported, replaced as a whole when the table is described.
        self.info: TableInfo | None = None
        self.index_ready = False
        self._tiflash: bool | None = None
        self._host = host
        self._lock = threading.Lock()
        self._queries: Queries | None = None
        self.keyword_wanted = keyword_search
        self.keyword: KeywordTables | None = None  # the keyword index, once found or made
        self.fulltext: bool | None = None  # FTS_MATCH_WORD usable here (probed once)

    @property
    def strategy(self) -> DistanceStrategy:
        """The metric: as given, else read from a legacy table, else cosine."""
        if self.strategy_given is not None:
            return self.strategy_given
        info = self.info
        if info is not None and info.legacy_metric is not None:
            # A langchain-community table records its metric in a column comment.
            return info.legacy_metric
        return DistanceStrategy.COSINE

    @property
    def dimension(self) -> int | None:
        """The vector size: the table's when it exists, else as given (None: inferred)."""
        info = self.info
        if info is not None and info.dimension is not None:
            return info.dimension
        return self.dimension_given

    @property
    def queries(self) -> Queries:
        """Statement builders for this table, metric and indexed metadata keys."""
        q = self._queries
        if (
            q is None
            or q.strategy is not self.strategy
            or q.metadata_indexes != self.metadata_indexes
        ):
            self._queries = Queries(self.table, self.strategy, self.metadata_indexes)
        return self._queries  # type: ignore[return-value]

    def facts(self) -> tuple[Any, ...] | None:
        """What this store currently believes of its table (None: nothing learnt yet)."""
        if self.info is None:
            return None
        keyword = self.keyword is not None
        return (self.info, tuple(sorted(self.metadata_indexes)), self.index_ready, keyword)

    def forget(self) -> tuple[Any, ...] | None:
        """Drop what was learnt (the table was dropped, or may have changed); return it."""
        before = self.facts()
        self.info = None
        self.index_ready = False
        self.metadata_indexes = {}
        self.keyword = None
        self.fulltext = None
        return before

    # ------------------------------------------------------------------ operations

    def op_info(self) -> Op[TableInfo | None]:
        """The table's description, or None when it does not exist (asked again next time)."""
        if self.info is not None:
            return self.info
        rows = yield from read(COLUMNS_QUERY, {"table": self.name})
        info = read_table_info(rows, self.name)
        if info is None:
            return None
        self._adopt(info)
        self._adopt_metadata_indexes(info)
        self._adopt_keyword(info)
        if (yield from self.op_has_tiflash()):
            # An index made earlier (by us or by hand) is what lets "auto" post-filter.
            ddl = yield from read(f"SHOW CREATE TABLE {quote_identifier(self.name)}")
            self.index_ready = indexes.has_vector_index(str(tuple(ddl[0])[1]), self.strategy)
        if not self.index_ready:
            self.say_exact_once()
        return info

    def _adopt(self, info: TableInfo) -> None:
        given = self.dimension_given
        if info.dimension is not None and given is not None and given != info.dimension:
            msg = (
                f"table {self.name!r} stores {info.dimension}-dimensional vectors, "
                f"but embedding_dimension={given} was given"
            )
            raise InvalidInputError(msg)
        with self._lock:
            self.info = info

    def _adopt_keyword(self, info: TableInfo) -> None:
        buckets = KeywordTables.parse_comment(info.keyword_comment)
        if buckets is not None:
            self.keyword = KeywordTables(self.table, buckets)
        elif self.keyword_wanted:
            logger.warning(
                "TiDB table %r has no keyword index: writes are not indexed for hybrid search "
                "until create_keyword_index() builds it for the stored rows",
                self.name,
            )

    def _adopt_metadata_indexes(self, info: TableInfo) -> None:
        found: dict[tuple[str, ...], MetadataIndex] = {}
        for name, comment in info.index_comments:
            idx = metadata_index.parse_comment(comment)
            if idx is not None and idx.index == name:
                found[idx.path] = idx
        self.metadata_indexes = found
        missing = [i.key for p, i in self.declared.items() if p not in found]
        if missing and not self._warned_missing:
            self._warned_missing = True
            logger.warning(
                "TiDB table %r has no index for indexed_metadata key(s) %s: filters on them "
                "scan the JSON; create_table() or create_metadata_index() adds them",
                self.name,
                ", ".join(map(repr, missing)),
            )

    def op_create_metadata_index(self, idx: MetadataIndex) -> Op[bool]:
        """Add the index for one key unless the table has it; True when it was added.

        Raises:
            ValueError: the table does not exist, or the key is indexed with another type.
        """
        info = yield from self.op_info()
        if info is None:
            msg = f"table {self.name!r} does not exist yet: add documents or call create_table()"
            raise InvalidInputError(msg)
        present = self.metadata_indexes.get(idx.path)
        if present is not None:
            if metadata_index.same_kind(present, idx):
                return False
            msg = (
                f"metadata key {idx.key!r} is already indexed as {present.type}, not {idx.type}; "
                "drop that index first to change its type"
            )
            raise InvalidInputError(msg)
        steps = [(sql, [params]) for sql, params in metadata_index.add_index_ddl(self.name, idx)]
        try:
            for step in steps:  # DDL commits by itself: one statement per request
                yield from write(step)
        except sa.exc.DBAPIError as exc:
            # Another store may have added it meanwhile: trust what the table now has.
            self.info = None
            yield from self.op_info()
            if idx.path not in self.metadata_indexes:
                raise InvalidInputError(metadata_index.refusal(idx, exc)) from exc
            return False
        self.metadata_indexes = {**self.metadata_indexes, idx.path: idx}
        return True

    def op_has_tiflash(self) -> Op[bool]:
        """Whether the server has a TiFlash store (asked once per store)."""
        if self._tiflash is None:
            if indexes.is_tidb_cloud_host(self._host):
                self._tiflash = True
            else:
                try:
                    rows = yield from read(indexes.TIFLASH_COUNT_SQL)
                    self._tiflash = bool(rows[0][0])
                except sa.exc.DBAPIError:
                    self._tiflash = False
        return self._tiflash

    def op_ensure(self, dimension: int) -> Op[TableInfo]:
        """Create the table (with the vector index where possible) unless it exists."""
        info = yield from self.op_info()
        if info is not None:
            if info.dimension is not None and info.dimension != dimension:
                msg = (
                    f"embedding dimension mismatch: table {self.name!r} stores "
                    f"{info.dimension}-dimensional vectors, got {dimension}"
                )
                raise InvalidInputError(msg)
            yield from self.op_ensure_metadata_indexes()
            return info
        tiflash = yield from self.op_has_tiflash()
        want_index = self.vector_index
        if want_index is None:
            want_index = tiflash and self.strategy.indexable
        elif want_index and not self.strategy.indexable:
            msg = f"no vector index exists for {self.strategy.value!r} distance"
            raise InvalidInputError(msg)
        ddl = create_table_sql(self.name, dimension, self.strategy, with_index=bool(want_index))
        if self.keyword_wanted:
            # Side tables first: a table that exists always has its keyword index complete.
            for side in KeywordTables(self.table).create_ddl(None):
                yield from write(sa.text(side))
        try:
            yield from write(sa.text(ddl))
            index_ready = bool(want_index)
        except sa.exc.DBAPIError as exc:
            if not (want_index and indexes.is_missing_tiflash_error(exc)):
                raise
            plain = create_table_sql(self.name, dimension, self.strategy, with_index=False)
            yield from write(sa.text(plain))
            index_ready = False
        # The declared metadata indexes are added just below: their absence is no news.
        self._warned_missing = True
        created = yield from self.op_info()
        if created is None:  # dropped again by another process in between
            msg = f"table {self.name!r} disappeared right after it was created"
            raise RuntimeError(msg)
        # CREATE ... IF NOT EXISTS may have met a table made concurrently: trust what exists.
        self.index_ready = self.index_ready or index_ready
        yield from self.op_ensure_metadata_indexes()
        return created

    def op_ensure_metadata_indexes(self) -> Op[None]:
        """Add the declared metadata indexes the table lacks."""
        for path, idx in self.declared.items():
            if path not in self.metadata_indexes:
                yield from self.op_create_metadata_index(idx)

    def say_exact_once(self) -> None:
        """Log once per table and process that searches are exact scans (no vector index)."""
        key = (self._host, self.name)
        if key not in _TOLD_EXACT:
            _TOLD_EXACT.add(key)
            logger.warning(
                "TiDB table %r has no vector index (no TiFlash on this server, or disabled): "
                "searches are exact kNN scans",
                self.name,
            )
