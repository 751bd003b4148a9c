"""Incremental ingestion of files and folders into a vector store.

On a :class:`TiDBVectorStore`, chunk ids come from the source and the chunk text, so
re-ingesting is idempotent: the ids and metadata already stored are read (never their texts,
through :meth:`TiDBVectorStore.get_metadata`), chunks already there are not embedded again,
chunks whose metadata changed (a chunk that moved in its file, a folder that moved) get the new
metadata without being embedded, and chunks a changed file no longer has are deleted once its
new chunks are stored. ``prune=True`` also deletes the chunks of files under the roots that no
longer exist.

Every chunk records its file's chunk count (``file_chunks``) and a digest of the file's chunk
ids (``file_version``), so a file cut short by an interrupt is seen as incomplete (see
:mod:`langchain_tidb_bedrock.ingest.sources`) and the next run finishes it.

Any other LangChain vector store is served through ``langchain_core.indexing.index`` with a
record manager (an ``InMemoryRecordManager`` unless one is given).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.indexing import RecordManager
from langchain_core.vectorstores import VectorStore
from tqdm.auto import tqdm

from langchain_tidb_bedrock.errors import IngestInterrupted, InvalidInputError
from langchain_tidb_bedrock.ingest.files import IngestPlan, plan_ingest, split_file
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

if TYPE_CHECKING:
    from langchain_tidb_bedrock.ingest.files import IngestRoot

__all__ = [
    "FILE_CHUNKS_KEY",
    "FILE_VERSION_KEY",
    "IngestInterrupted",
    "IngestSummary",
    "add_new_documents",
    "ingest_paths",
    "ingest_plan",
    "plural",
]

logger = logging.getLogger(__name__)

FILE_CHUNKS_KEY = "file_chunks"
"""Metadata key: how many chunks the chunk's file has (in the version it came from)."""
FILE_VERSION_KEY = "file_version"
"""Metadata key: a digest of the file's chunk ids, the same on every chunk of one version."""
_VOLATILE_KEYS = frozenset({"ingested_at"})  # differs on every run: not a metadata change
_PER_READ = 2000  # exact sources per metadata read


def plural(count: int, word: str) -> str:
    """``"1 file"``, ``"2 files"``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass
class IngestSummary:
    """What one ingestion did.

    Attributes:
        files: Files read.
        chunks: Distinct chunks those files split into.
        embedded: Chunks embedded and stored (new or changed).
        skipped: Chunks already stored unchanged (no embedding call).
        deleted: Stale chunks removed (from files that changed).
        pruned: Chunks removed because their file no longer exists under a root (``prune``).
        pruned_sources: Sources those chunks belonged to.
        missing_sources: Without ``prune``: stored sources under the roots whose file is gone.
        seconds: Wall time.
        ignored: Paths not ingested (unsupported type or not UTF-8 text).
        unreadable: Those of ``ignored`` that are not UTF-8 text.
    """

    files: int = 0
    chunks: int = 0
    embedded: int = 0
    skipped: int = 0
    deleted: int = 0
    pruned: int = 0
    pruned_sources: int = 0
    missing_sources: int = 0
    seconds: float = 0.0
    ignored: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        pruned = (
            f", {plural(self.pruned, 'chunk')} of {plural(self.pruned_sources, 'file')} "
            "no longer there pruned"
            if self.pruned
            else ""
        )
        return (
            f"{plural(self.files, 'file')}, {plural(self.chunks, 'chunk')}: "
            f"{self.embedded} embedded, {self.skipped} unchanged, {self.deleted} stale deleted"
            f"{pruned} in {self.seconds:.1f} s"
        )


def _comparable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k not in _VOLATILE_KEYS}


def _file_markers(docs: list[Document]) -> None:
    """Stamp every chunk of one file with the file's chunk count and version digest."""
    digest = hashlib.sha256("\n".join(d.id or "" for d in docs).encode()).hexdigest()[:16]
    for doc in docs:
        doc.metadata[FILE_CHUNKS_KEY] = len(docs)
        doc.metadata[FILE_VERSION_KEY] = digest


def _check_dimension(store: TiDBVectorStore, embeddings: Embeddings | None) -> None:
    """Refuse a model whose size the table cannot store, before anything is embedded."""
    size = getattr(embeddings, "dimensions", None)
    if not isinstance(size, int) or isinstance(size, bool):
        return
    stored = store.table_dimension()
    if stored is not None and stored != size:
        msg = (
            f"embedding dimension mismatch: table {store.table_name!r} stores "
            f"{stored}-dimensional vectors, got {size} (the embedding model's dimensions); "
            f"nothing was embedded: use dimensions={stored} or another table"
        )
        raise InvalidInputError(msg)


def _like_prefix(prefix: str) -> dict[str, str]:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {"$like": f"{escaped}%"}


def _under_roots(
    store: TiDBVectorStore, roots: Sequence[IngestRoot], sources: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Metadata by id of every stored chunk that belongs to these roots (few wide reads)."""
    prefixes: list[dict[str, Any]] = []
    exact: dict[str, None] = {}
    for root in roots:
        if root.is_dir:
            if root.name:
                prefixes.append({"source": _like_prefix(f"{root.name}/")})
            # Older versions stored the absolute path as the source; ``path`` keeps it now.
            absolute = root.path.as_posix().rstrip("/") + "/"
            prefixes += [{"path": _like_prefix(absolute)}, {"source": _like_prefix(absolute)}]
        else:
            exact[root.path.as_posix()] = None  # older versions: the absolute path
    named = tuple(f"{r.name}/" for r in roots if r.is_dir and r.name)
    exact.update((s, None) for s in sources if not s.startswith(named))
    names = list(exact)
    batches = [names[i : i + _PER_READ] for i in range(0, len(names), _PER_READ)] or [[]]
    found: dict[str, dict[str, Any]] = {}
    for n, batch in enumerate(batches):
        parts = [*(prefixes if n == 0 else []), *([{"source": {"$in": batch}}] if batch else [])]
        if parts:
            found.update(store.get_metadata(filter={"$or": parts}))
    return found


def _read_files(
    plan: IngestPlan,
    summary: IngestSummary,
    *,
    chunk_size: int,
    chunk_overlap: int,
    show_progress: bool,
    volatile: bool,
) -> list[Document]:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    chunks: list[Document] = []
    for path, source in tqdm(
        plan.files, unit="file", desc="Reading", disable=not show_progress or not plan.files
    ):
        extra: dict[str, Any] = {"path": path.as_posix()}
        if volatile:
            extra["ingested_at"] = now
        try:
            docs = split_file(
                path, source, chunk_size=chunk_size, chunk_overlap=chunk_overlap, metadata=extra
            )
        except UnicodeDecodeError:
            summary.ignored.append(path.as_posix())
            summary.unreadable.append(path.as_posix())
            logger.warning("skipping %s: not UTF-8 text", path)
            continue
        _file_markers(docs)
        summary.files += 1
        chunks.extend(docs)
    summary.chunks = len(chunks)
    return chunks


class _Progress:
    """Chunks written so far, and the bar showing them."""

    def __init__(self, total: int, show: bool, desc: str) -> None:
        self.done = 0
        self.bar = tqdm(total=total, unit="chunk", desc=desc, disable=not show or not total)

    def __call__(self, n: int) -> None:
        self.done += n
        self.bar.update(n)


def _store_new(
    store: TiDBVectorStore,
    docs: Sequence[Document],
    stored: Mapping[str, Mapping[str, Any]],
    *,
    batch_size: int,
    progress: _Progress,
    embeddings: Embeddings | None,
) -> list[Document]:
    """Fix the metadata of stored chunks, then embed and write the new ones; returns them."""
    new = [doc for doc in docs if doc.id not in stored]
    moved = {
        doc.id: doc.metadata
        for doc in docs
        if doc.id is not None
        and doc.id in stored
        and _comparable(stored[doc.id]) != _comparable(doc.metadata)
    }
    if moved:
        store.update_metadata(moved)
    size = getattr(embeddings, "ingest_batch_size", batch_size)  # a batch job per call
    embed_and_store(store, new, batch_size=size, progress=progress, embeddings=embeddings)
    return new


def add_new_documents(
    store: TiDBVectorStore,
    docs: Sequence[Document],
    *,
    batch_size: int = 128,
    show_progress: bool = False,
    progress_desc: str = "Embedding",
    embeddings: Embeddings | None = None,
) -> tuple[int, int]:
    """Store documents whose ids are not stored yet; embed only those.

    Stored documents whose metadata differs get the new metadata without being embedded
    again; ``ingested_at`` alone differing is not a change. What is stored is looked up by id
    (ids and metadata only, never the texts).

    Args:
        store: The TiDB vector store.
        docs: Documents with ``id`` set (e.g. from :func:`~langchain_tidb_bedrock.ingest.chunk_id`).
        batch_size: Documents embedded and written per batch.
        show_progress: Show a tqdm bar (chunks and rate).
        progress_desc: The bar's label.
        embeddings: Embeds the new chunks instead of the store's own, e.g. a
            ``BedrockBatchEmbeddings``, which takes its ``ingest_batch_size`` per call.

    Returns:
        ``(added, already_stored)``.

    Raises:
        InvalidInputError: A document has no id, ``batch_size`` is not positive, or the model's
            dimensions differ from the table's (before anything is embedded).
    """
    if any(doc.id is None for doc in docs):
        msg = "every document needs an id to be added incrementally"
        raise InvalidInputError(msg)
    if batch_size < 1:
        msg = f"batch_size must be positive, got {batch_size}"
        raise InvalidInputError(msg)
    _check_dimension(store, embeddings or store.embeddings)
    stored = store.get_metadata([doc.id for doc in docs if doc.id is not None]) if docs else {}
    progress = _Progress(sum(doc.id not in stored for doc in docs), show_progress, progress_desc)
    try:
        new = _store_new(
            store, docs, stored, batch_size=batch_size, progress=progress, embeddings=embeddings
        )
    finally:
        progress.bar.close()
    return len(new), len(docs) - len(new)


def embed_and_store(
    store: TiDBVectorStore,
    docs: Sequence[Document],
    *,
    batch_size: int = 128,
    progress: Callable[[int], Any] | None = None,
    embeddings: Embeddings | None = None,
) -> None:
    """Embed ``docs`` and write them with their ids: the one embedding step of ingest.

    Batch n+1 is embedded while batch n is written, so the database never idles the model.
    ``progress`` is called with the number of documents written per batch.
    """
    batches = [list(docs[i : i + batch_size]) for i in range(0, len(docs), batch_size)]
    if not batches:
        return
    report = progress or (lambda n: None)
    model = embeddings if embeddings is not None else store.embeddings
    if model is None:
        msg = "the store has no embedding model to embed new chunks with"
        raise InvalidInputError(msg)

    def embed(batch: list[Document]) -> list[list[float]]:
        return model.embed_documents([doc.page_content for doc in batch])

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-embed")
    try:
        pending: Future[list[list[float]]] = pool.submit(embed, batches[0])
        for n, batch in enumerate(batches):
            vectors = pending.result()
            if n + 1 < len(batches):
                pending = pool.submit(embed, batches[n + 1])
            store.add_embeddings(
                [doc.page_content for doc in batch],
                vectors,
                [doc.metadata for doc in batch],
                ids=[doc.id for doc in batch],
            )
            report(len(batch))
    finally:
        # On an error or Ctrl-C, do not wait for (or start) another batch's embedding.
        pool.shutdown(wait=False, cancel_futures=True)


def _ingest_tidb(
    store: TiDBVectorStore,
    plan: IngestPlan,
    chunks: list[Document],
    summary: IngestSummary,
    *,
    batch_size: int,
    show_progress: bool,
    prune: bool,
    embeddings: Embeddings | None,
) -> None:
    _check_dimension(store, embeddings or store.embeddings)
    sources = {doc.metadata["source"] for doc in chunks}
    # One read of ids and metadata serves everything below: what is stored, what is stale,
    # and what lies under the roots without a file any more.
    under = _under_roots(store, plan.roots, sources)
    wanted = {doc.id for doc in chunks}
    # Ids are derived from the source, so every stored chunk of these files is under a root.
    stored = {i: m for i, m in under.items() if i in wanted}
    stale = sorted(i for i, m in under.items() if m.get("source") in sources and i not in wanted)
    # A wanted id is kept whatever its stored source says (its metadata is fixed below).
    gone = {
        i: m.get("source")
        for i, m in under.items()
        if m.get("source") not in sources and i not in wanted
    }
    pending = [doc for doc in chunks if doc.id not in stored]
    progress = _Progress(len(pending), show_progress, "Embedding")
    try:
        # The new chunks first: if embedding or writing fails, the old ones are still there.
        _store_new(
            store,
            chunks,
            stored,
            batch_size=batch_size,
            progress=progress,
            embeddings=embeddings,
        )
        if stale:
            store.delete(ids=stale)
    except KeyboardInterrupt as exc:
        raise _interrupted(pending, progress.done, under, stored, stale) from exc
    finally:
        progress.bar.close()
    summary.embedded, summary.skipped = len(pending), len(chunks) - len(pending)
    summary.deleted = len(stale)
    gone_sources = set(gone.values())
    if prune and gone:
        store.delete(ids=sorted(gone))
        summary.pruned, summary.pruned_sources = len(gone), len(gone_sources)
    else:
        summary.missing_sources = len(gone_sources)


def _interrupted(
    pending: list[Document],
    done: int,
    under: Mapping[str, Mapping[str, Any]],
    stored: Mapping[str, Mapping[str, Any]],
    stale: list[str],
) -> IngestInterrupted:
    # Batches are written in order: the first ``done`` pending chunks are stored.
    waiting = {str(doc.metadata["source"]) for doc in pending[done:]}
    begun = {str(doc.metadata["source"]) for doc in pending[:done]}
    begun |= {str(m.get("source")) for m in stored.values()}
    cut = (waiting & begun) | {str(under[i].get("source")) for i in stale}
    return IngestInterrupted(done, len(pending), sorted(cut), sorted(waiting - begun))


def _ingest_indexed(
    store: VectorStore,
    chunks: list[Document],
    summary: IngestSummary,
    *,
    batch_size: int,
    prune: bool,
    record_manager: RecordManager | None,
) -> None:
    """Any other vector store: LangChain's ``index()`` with a record manager."""
    from langchain_core.indexing import InMemoryRecordManager, index

    if record_manager is None:
        record_manager = InMemoryRecordManager(namespace=f"ingest/{type(store).__name__}")
        record_manager.create_schema()
    result = index(
        chunks,
        record_manager,
        store,
        batch_size=batch_size,
        cleanup="full" if prune else "incremental",
        source_id_key="source",
        key_encoder="sha256",
    )
    summary.embedded = result["num_added"] + result["num_updated"]
    summary.skipped = result["num_skipped"]
    summary.deleted = result["num_deleted"]


def ingest_plan(
    store: VectorStore,
    plan: IngestPlan,
    *,
    batch_size: int = 128,
    show_progress: bool = True,
    chunk_size: int = 1000,
    chunk_overlap: int = 150,
    prune: bool = False,
    embeddings: Embeddings | None = None,
    record_manager: RecordManager | None = None,
) -> IngestSummary:
    """Read, split, embed and store the files of ``plan`` (see :func:`ingest_paths`).

    Raises:
        IngestInterrupted: Ctrl-C while storing (a ``KeyboardInterrupt``): says what was
            stored; the next run finishes the job.
    """
    started = time.perf_counter()
    summary = IngestSummary(ignored=[p.as_posix() for p in plan.ignored])
    tidb = isinstance(store, TiDBVectorStore)
    if not tidb and embeddings is not None:
        msg = "separate embeddings (e.g. batch inference) need a TiDBVectorStore"
        raise InvalidInputError(msg)
    chunks = _read_files(
        plan,
        summary,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        show_progress=show_progress,
        # ``index()`` hashes the metadata: a time that changes every run would re-embed all.
        volatile=tidb,
    )
    if isinstance(store, TiDBVectorStore):
        _ingest_tidb(
            store,
            plan,
            chunks,
            summary,
            batch_size=batch_size,
            show_progress=show_progress,
            prune=prune,
            embeddings=embeddings,
        )
    else:
        _ingest_indexed(
            store,
            chunks,
            summary,
            batch_size=batch_size,
            prune=prune,
            record_manager=record_manager,
        )
    summary.seconds = time.perf_counter() - started
    return summary


def ingest_paths(
    store: VectorStore,
    paths: Iterable[str | os.PathLike[str]],
    *,
    batch_size: int = 128,
    show_progress: bool = True,
    chunk_size: int = 1000,
    chunk_overlap: int = 150,
    name: str | None = None,
    glob: Sequence[str] | None = None,
    prune: bool = False,
    batch_inference: str | None = None,
    role_arn: str | None = None,
    s3_endpoint_url: str | None = None,
    record_manager: RecordManager | None = None,
) -> IngestSummary:
    """Load, split, embed and store ``.txt`` / ``.md`` / ``.rst`` files and folders, incrementally.

    On a :class:`TiDBVectorStore` a second run over unchanged files makes no embedding call and
    reads no stored text; for a changed file only its new chunks are embedded and, after they
    are stored, its chunks that no longer exist are deleted. A failed run leaves the old chunks
    in place; an interrupted one leaves files marked incomplete, which the next run finishes.
    Sources are named as :mod:`langchain_tidb_bedrock.ingest.files` says.

    Any other vector store goes through ``langchain_core.indexing.index`` with
    ``record_manager`` (default: a fresh ``InMemoryRecordManager``, which remembers nothing
    between calls, so every call embeds every chunk again: pass a persistent one, e.g. a
    ``TiDBRecordManager``, to skip unchanged chunks).

    Args:
        store: The vector store.
        paths: Files and folders (folders are walked recursively; other file types are
            listed in ``ignored``).
        batch_size: Chunks embedded and written per batch.
        show_progress: Show tqdm bars for reading files and for embedding.
        chunk_size: Characters per chunk at most.
        chunk_overlap: Characters shared by neighbouring chunks.
        name: Collection name replacing the folder's name (one path only).
        glob: Patterns choosing the files instead of the supported suffixes (``*.py``: file
            names; ``docs/*.md``: paths inside the folder).
        prune: Also delete the chunks of files under these roots that no longer exist, and
            of these files stored under an older name. With another store: ``index()``'s
            ``cleanup="full"``, which deletes everything in the record manager's namespace
            that this run did not see (give these paths a namespace of their own).
        batch_inference: ``s3://bucket/prefix``: embed the new chunks through Bedrock batch
            inference jobs (half price, no per-minute quota) with the store's Titan settings,
            then bulk-load them (TiDB stores; needs ``role_arn``).
        role_arn: The service role Bedrock's batch jobs assume to read and write S3.
        s3_endpoint_url: S3 endpoint for batch inference (e.g. a LocalS3).
        record_manager: For stores other than TiDB: the record manager ``index()`` uses.

    Returns:
        The :class:`IngestSummary`.

    Raises:
        FileNotFoundError: A path does not exist.
        SourceNameError: Two files would be stored under one source name.
        InvalidInputError: The embedding model's dimensions differ from the table's (checked
            before anything is embedded), or batch inference was asked of another store.
        IngestInterrupted: Ctrl-C while storing (see :func:`ingest_plan`).
    """
    plan = plan_ingest(list(paths), name=name, glob=glob)
    embeddings: Embeddings | None = None
    if batch_inference:
        from langchain_tidb_bedrock.embeddings.batch import BedrockBatchEmbeddings

        embeddings = BedrockBatchEmbeddings.like(
            store.embeddings,
            batch_inference,
            role_arn,
            s3_endpoint_url=s3_endpoint_url,
            show_progress=show_progress,
        )
    return ingest_plan(
        store,
        plan,
        batch_size=batch_size,
        show_progress=show_progress,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        prune=prune,
        embeddings=embeddings,
        record_manager=record_manager,
    )
