"""The write pipeline: validate a whole input, embed, and upsert it in bounded transactions.

Sized inputs (lists) are checked completely before anything is written; generators are consumed
batch by batch so memory stays flat, each batch checked before it is written. Batches go in with
``LOAD DATA LOCAL ... REPLACE`` where the server allows it, else with a multi-row upsert.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import sqlalchemy as sa
from tqdm.auto import tqdm

from langchain_tidb_bedrock.db.bulk import LoadRows, is_load_data_refused
from langchain_tidb_bedrock.db.runner import Op, embed_documents, write
from langchain_tidb_bedrock.errors import (
    CommitUnknownError,
    InvalidInputError,
    LoadDataWarningError,
    WriteError,
)
from langchain_tidb_bedrock.vectorstores.encoding import (
    encode_metadata,
    encode_vectors,
    is_utf8,
    to_matrix,
)
from langchain_tidb_bedrock.vectorstores.hybrid import Packed
from langchain_tidb_bedrock.vectorstores.schema import ID_LENGTH, DistanceStrategy
from langchain_tidb_bedrock.vectorstores.table import TableState

__all__ = ["Writer"]

logger = logging.getLogger("langchain_tidb_bedrock.vectorstores")

# Write transactions stay far below TiDB's 100 MB limit; one row may not exceed 6 MB.
_TXN_BYTES = 16 * 2**20
_ENTRY_BYTES = 6 * 2**20 - 64 * 2**10


def check_text(position: int, text: object, *, to_embed: bool = False) -> None:
    """Refuse a text TiDB or the embedding model would reject, naming its position."""
    if not isinstance(text, str):
        msg = f"text at position {position} must be a string, got {type(text).__name__}"
        raise InvalidInputError(msg)
    if to_embed and not text.strip():
        msg = (
            f"text at position {position} is empty or whitespace only: the embedding model "
            "cannot embed it"
        )
        raise InvalidInputError(msg)
    if not is_utf8(text):
        msg = f"text at position {position} is not valid UTF-8 (it has a lone surrogate)"
        raise InvalidInputError(msg)


def _check_entry(position: int, size: int) -> None:
    if size > _ENTRY_BYTES:
        msg = (
            f"document at position {position} is {size / 2**20:.1f} MiB with its vector and "
            f"metadata; TiDB stores at most {_ENTRY_BYTES / 2**20:.0f} MiB per row: split it "
            "into smaller documents"
        )
        raise InvalidInputError(msg)


def _row_bytes(row: tuple[str, ...]) -> int:
    # Characters are a lower bound on UTF-8 bytes; only long text is worth encoding to measure.
    return sum(len(v) if len(v) < 2**18 else len(v.encode()) for v in row)


def _is_matrix(vectors: object) -> bool:
    return isinstance(vectors, np.ndarray)


@dataclass(frozen=True)
class _Row:
    """One input document after its single check: id, text and metadata JSON, size so far."""

    id: str
    text: str
    meta: str
    size: int  # text + metadata bytes (lower bound); the id and vector are added per batch
    vector: Sequence[float] | None = None  # the caller's, when vectors were passed


def _check_id(doc_id: object, position: int, limit: int, seen: set[str]) -> None:
    if not isinstance(doc_id, str) or not doc_id:
        msg = f"id at position {position} must be a non-empty string, got {doc_id!r}"
        raise InvalidInputError(msg)
    if not is_utf8(doc_id):
        msg = f"id at position {position} is not valid UTF-8 (it has a lone surrogate)"
        raise InvalidInputError(msg)
    if len(doc_id) > limit:
        msg = f"id at position {position} is {len(doc_id)} characters; this table allows {limit}"
        raise InvalidInputError(msg)
    if doc_id in seen:
        msg = f"duplicate id {doc_id!r} at position {position}: ids must be unique in one call"
        raise InvalidInputError(msg)
    seen.add(doc_id)


def _same_length(texts: Sequence[str], **others: Iterable[Any] | None) -> None:
    """Sized input: every other list has one entry per text (checked before anything else)."""
    for name, values in others.items():
        if values is not None and isinstance(values, Sized) and len(values) != len(texts):
            what = "embeddings" if name == "embeddings" else name
            msg = f"got {len(texts)} texts but {len(values)} {what}"
            if name == "ids":
                msg += "; pass one id per text"
            raise InvalidInputError(msg)


class _Prefetch:
    """Keyword-index analysis (``KeywordTables.pack``) of a list's batches, one batch ahead."""

    def __init__(self, table: TableState, rows: list[Any] | None, size: int) -> None:
        self.table, self.rows, self.size = table, rows, size
        self.futures: dict[int, Future[Packed]] = {}
        self.pool: ThreadPoolExecutor | None = None

    def ahead(self, offset: int) -> None:
        """Start analysing the batches at ``offset`` and after it (no-op without an index)."""
        kt, rows = self.table.keyword, self.rows  # known once the table exists
        if kt is None or rows is None:
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="ltb-keyword")
        for start in (offset, offset + self.size):
            if start < len(rows) and start not in self.futures:
                texts = [r.text for r in rows[start : start + self.size]]
                self.futures[start] = self.pool.submit(kt.pack, texts)

    def take(self, offset: int, count: int) -> Packed | None:
        """The analysis of the ``count`` rows at ``offset``, when it was started."""
        future = self.futures.pop(offset, None)
        if future is None or count != len((self.rows or [])[offset : offset + self.size]):
            return None  # a batch split in several transactions: each analysed inline
        return future.result()

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=False)


class Writer:
    """Adds documents to one table: validation, embedding, batching and the bulk path."""

    def __init__(
        self,
        table: TableState,
        *,
        batch_size: int,
        show_progress: bool,
        bulk_load: bool,
        refuse_blank: bool = False,
    ) -> None:
        """Keep the settings; no I/O.

        ``refuse_blank``: the embedding model rejects empty or whitespace-only texts (it says so
        with a ``rejects_blank_texts`` attribute), so they are refused up front, by position.
        """
        self.table = table
        self.refuse_blank = refuse_blank
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.bulk_load = bulk_load

    def _rows(
        self,
        texts: Iterable[str],
        metadatas: Iterable[dict[str, Any] | None] | None,
        ids: Iterable[str | None] | None,
        vectors: Iterable[Sequence[float]] | None,
        *,
        id_limit: int,
    ) -> Iterator[_Row]:
        """The input as checked, encoded rows, in order: the one pass over every value.

        Each row's text, metadata, id and size (without its vector) are checked here, naming
        its position; the vector joins it per batch. Running out of metadatas, ids or vectors
        before the texts is an error.
        """
        to_embed = vectors is None and self.refuse_blank
        metas = iter(metadatas) if metadatas is not None else None
        id_iter = iter(ids) if ids is not None else None
        vec_iter = iter(vectors) if vectors is not None else None
        seen: set[str] = set()
        for n, text in enumerate(texts):
            check_text(n, text, to_embed=to_embed)
            try:
                meta = next(metas) if metas is not None else None
                doc_id = next(id_iter) if id_iter is not None else None
                vector = next(vec_iter) if vec_iter is not None else None
            except StopIteration:
                msg = f"metadatas, ids or embeddings ran out at position {n}: lengths differ"
                raise InvalidInputError(msg) from None
            encoded = encode_metadata(meta, n)
            size = _row_bytes((text, encoded))
            _check_entry(n, size)  # without the vector: refused before anything is embedded
            doc_id = str(uuid.uuid4()) if doc_id is None else doc_id
            _check_id(doc_id, n, id_limit, seen)
            yield _Row(doc_id, text, encoded, size, vector)

    def op_add(
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
        if sized:
            _same_length(texts, metadatas=metadatas, ids=ids, embeddings=vectors)  # type: ignore[arg-type]
        info = yield from self.table.op_info()
        id_limit = info.id_length if info is not None and info.id_length else ID_LENGTH
        reject_zero = self.table.strategy is DistanceStrategy.COSINE
        # A sized input's ndarray is checked whole below; every other input row by row.
        given = vectors if sized and vectors is not None and _is_matrix(vectors) else None
        rows: Iterable[_Row] = self._rows(
            texts, metadatas, ids, None if given is not None else vectors, id_limit=id_limit
        )
        matrix: Any = None  # a sized input's vectors, checked once as one matrix
        if sized:
            rows = list(rows)  # every row checked before the first write
            if vectors is not None:
                raw: Any = given if given is not None else [r.vector for r in rows]
                matrix = to_matrix(raw, self.table.dimension, reject_zero=reject_zero)
        stream = iter(rows)
        result_ids: list[str] = []
        count = len(rows) if isinstance(rows, list) else None
        bar = tqdm(
            total=count, unit="doc", desc=f"TiDB {self.table.name}", disable=not self.show_progress
        )
        # The keyword index's analysis of a list's next batches runs in a thread while this
        # batch embeds and writes (it is CPU work, as long as the rows' own writing).
        packs = _Prefetch(self.table, rows if isinstance(rows, list) else None, size)
        try:
            while batch := list(islice(stream, size)):
                offset = len(result_ids)
                if matrix is not None:
                    vecs: Any = matrix[offset : offset + len(batch)]
                else:
                    if vectors is not None:
                        raw_vectors: Any = [r.vector for r in batch]
                    else:
                        raw_vectors = yield from embed_documents([r.text for r in batch])
                        if len(raw_vectors) != len(batch):
                            msg = (
                                f"the embedding model returned {len(raw_vectors)} vectors "
                                f"for {len(batch)} texts"
                            )
                            raise InvalidInputError(msg)
                    vecs = to_matrix(raw_vectors, self.table.dimension, reject_zero=reject_zero)
                if info is None or self.table.dimension is None:
                    info = yield from self.table.op_ensure(int(vecs.shape[1]))
                packs.ahead(offset)
                encoded = encode_vectors(vecs)
                params = [(r.id, v, r.text, r.meta) for r, v in zip(batch, encoded, strict=True)]
                sizes = [r.size + len(r.id) + len(v) for r, v in zip(batch, encoded, strict=True)]
                yield from self.op_write_rows(params, offset, sizes, packs.take)
                result_ids.extend(r.id for r in batch)
                bar.update(len(batch))
        finally:
            packs.close()
            bar.close()
        return result_ids

    def op_write_rows(
        self,
        params: list[tuple[str, str, str, str]],
        offset: int,
        sizes: list[int] | None = None,
        packed: Callable[[int, int], Packed | None] | None = None,
    ) -> Op[None]:
        """Write encoded rows (id, vector, text, meta); ``offset`` positions them in the input.

        One transaction per slice of at most 16 MiB, far below TiDB's 100 MB limit even when
        documents are large; a single row over TiDB's 6 MB entry limit is refused first. A
        failing slice raises :class:`WriteError` saying how many rows were committed before it.
        """
        if sizes is None:
            sizes = [_row_bytes(row) for row in params]
        for n, row_size in enumerate(sizes):  # all rows checked before any is written
            _check_entry(offset + n, row_size)
        slices: list[list[tuple[str, str, str, str]]] = [[]]
        size = 0
        for row, row_size in zip(params, sizes, strict=True):
            if slices[-1] and size + row_size > _TXN_BYTES:
                slices.append([])
                size = 0
            slices[-1].append(row)
            size += row_size
        start = offset
        for chunk in slices:
            try:
                yield from self._write_chunk(chunk, packed(start, len(chunk)) if packed else None)
            except (sa.exc.DBAPIError, CommitUnknownError) as exc:
                raise WriteError(self.table.name, start, len(chunk), start, exc) from exc
            start += len(chunk)

    def _write_chunk(
        self, params: list[tuple[str, str, str, str]], packed: Packed | None = None
    ) -> Op[None]:
        upsert = self.table.queries.upsert_sql
        # The keyword index (hybrid search) changes in the same transaction as the rows.
        kt = self.table.keyword
        ids, texts = [r[0] for r in params], [r[2] for r in params]
        side = kt.write_steps(ids, texts, packed, bulk=self.bulk_load) if kt else []
        if not self.bulk_load:
            try:
                yield from write((upsert, params), *side)
            except CommitUnknownError:
                # Lost during COMMIT: the upsert is idempotent, so running it again is safe
                # (the keyword index as a new segment: the first may be stored).
                if kt is not None:
                    side = kt.write_steps(ids, texts, packed)
                yield from write((upsert, params), *side)
            return
        try:
            yield from write(LoadRows(self.table.name, params, upsert), *side)
        except (LoadDataWarningError, PermissionError):
            # Warnings mean TiDB would alter the data; a refused file request means the server
            # asked for a file it was not given. Neither is retried with INSERT.
            raise
        except Exception as exc:
            if is_load_data_refused(exc):
                self.bulk_load = False
                logger.warning("TiDB refuses LOAD DATA LOCAL (%s): writing with INSERT", exc)
            # This batch goes through INSERT; a passing fault keeps the fast path for the next.
            # The keyword index too, as a new segment (a COMMIT lost in flight may have stored
            # the first one, whose rows this retires).
            if kt is not None:
                side = kt.write_steps(ids, texts, packed)
            yield from write((upsert, params), *side)

    def op_update_metadata(self, metadata: Mapping[str, dict[str, Any]]) -> Op[int]:
        """Replace the metadata of existing rows by id, in one transaction; rows matched."""
        params = [(encode_metadata(m, n), i) for n, (i, m) in enumerate(metadata.items())]
        info = yield from self.table.op_info()
        if info is None or not params:
            return 0
        return (yield from write((self.table.queries.update_meta_sql(), params)))
