"""Incremental ingestion of text and Markdown files into a vector store.

Naming: every PATH given is a *root*. A file found in a root folder is stored under the source
``<folder name>/<path inside the folder>`` (a single file given on its own: ``<its folder's
name>/<file name>``); ``name=`` replaces the folder name. The file's absolute path is kept as
``path`` metadata, and ``ingested_at`` records when the chunk was stored. So a moved folder keeps
its sources and chunk ids (nothing is embedded again, its ``path`` is updated), and the working
directory of a run does not matter.

Chunk ids are derived from the source and the chunk text, so re-ingesting is idempotent: the
ids and metadata already stored are read (never their texts), chunks already there are not
embedded again, and chunks a changed file no longer has are deleted once its new chunks are
stored. ``prune=True`` also deletes the chunks of files under the roots that no longer exist.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter
from tqdm.auto import tqdm

from langchain_tidb_bedrock.cli.stored import metadata_by_ids, stored_chunks
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

__all__ = [
    "SUPPORTED_SUFFIXES",
    "IngestPlan",
    "IngestRoot",
    "IngestSummary",
    "SourceNameError",
    "add_new_documents",
    "chunk_id",
    "discover_files",
    "embed_and_store",
    "ingest_paths",
    "ingest_plan",
    "markdown_sections",
    "plan_ingest",
    "split_file",
]

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown")
_VOLATILE_KEYS = frozenset({"ingested_at"})  # differs on every run: not a metadata change


class SourceNameError(ValueError):
    """Two different files would be stored under the same source name."""


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

    def __str__(self) -> str:
        pruned = (
            f", {self.pruned} chunks of {self.pruned_sources} files no longer there pruned"
            if self.pruned
            else ""
        )
        return (
            f"{self.files} files, {self.chunks} chunks: {self.embedded} embedded, "
            f"{self.skipped} unchanged, {self.deleted} stale deleted{pruned} "
            f"in {self.seconds:.1f} s"
        )


def chunk_id(source: str, text: str) -> str:
    """Stable id of a chunk: the first 32 hex digits of ``sha256(source NUL text)``."""
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class IngestRoot:
    """One PATH given to ingest: a folder, or a single file.

    Attributes:
        path: The resolved absolute path.
        name: The collection name its sources start with (the folder's name, or for a
            single file its folder's name), unless given.
        is_dir: Whether it is a folder.
    """

    path: Path
    name: str
    is_dir: bool

    def source_of(self, file: Path) -> str:
        """The stored source name of ``file`` (resolved, inside this root)."""
        base = self.path if self.is_dir else self.path.parent
        relative = file.relative_to(base).as_posix()
        return f"{self.name}/{relative}" if self.name else relative


@dataclass
class IngestPlan:
    """What an ingest will read, decided before any server is contacted.

    Attributes:
        roots: The PATHs given.
        files: ``(file, source)`` for every supported file, each file once.
        ignored: Files of other types.
    """

    roots: list[IngestRoot]
    files: list[tuple[Path, str]]
    ignored: list[Path]


def _source_name(path: Path) -> str:
    """The source of a file ingested on its own: ``<its folder's name>/<file name>``."""
    resolved = path.resolve()
    return IngestRoot(resolved, resolved.parent.name, is_dir=False).source_of(resolved)


def _walk(root: Path) -> list[Path]:
    # Hidden files and folders (names starting with ".") inside a folder are not visited.
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def discover_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Path]]:
    """Expand files and folders (recursively) into supported files and ignored ones.

    Hidden files and folders (names starting with ``.``) inside a folder are not visited.

    Args:
        paths: Files and folders.

    Returns:
        ``(files, ignored)``, each sorted and without duplicates.

    Raises:
        FileNotFoundError: A path does not exist.
    """
    files: dict[Path, None] = {}
    ignored: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            msg = f"no such file or directory: {os.fspath(raw)}"
            raise FileNotFoundError(msg)
        for p in _walk(path) if path.is_dir() else [path]:
            target = files if p.suffix.lower() in SUPPORTED_SUFFIXES else ignored
            target[p] = None
    return sorted(files), sorted(ignored)


def plan_ingest(paths: Sequence[str | os.PathLike[str]], *, name: str | None = None) -> IngestPlan:
    """Find the files under ``paths`` and name their sources; reads no file content.

    Args:
        paths: Files and folders.
        name: Collection name replacing the folder name (one path only).

    Raises:
        FileNotFoundError: A path does not exist.
        SourceNameError: Two different files would get the same source name (e.g. two
            folders called ``docs``), or ``name`` was given with several paths.
    """
    if name is not None and len(paths) != 1:
        msg = f"a collection name applies to one PATH, got {len(paths)}"
        raise SourceNameError(msg)
    roots: list[IngestRoot] = []
    files: list[tuple[Path, str]] = []
    ignored: list[Path] = []
    owner: dict[str, Path] = {}
    seen: set[Path] = set()
    for raw in paths:
        given = Path(raw).expanduser()
        if not given.exists():
            msg = f"no such file or directory: {os.fspath(raw)}"
            raise FileNotFoundError(msg)
        resolved = given.resolve()
        is_dir = resolved.is_dir()
        default = resolved.name if is_dir else resolved.parent.name
        root = IngestRoot(resolved, default if name is None else name, is_dir)
        roots.append(root)
        for found in _walk(given) if is_dir else [given]:
            if found.suffix.lower() not in SUPPORTED_SUFFIXES:
                ignored.append(found)
                continue
            file = found.resolve()
            if file in seen:  # the same file reached through two of the given paths
                continue
            seen.add(file)
            inside = root.path / found.relative_to(given) if is_dir else file
            source = root.source_of(inside)
            if source in owner:
                msg = (
                    f"{owner[source]} and {file} would both be stored as {source!r}; "
                    "ingest one of their folders on its own with --name"
                )
                raise SourceNameError(msg)
            owner[source] = file
            files.append((inside, source))
    return IngestPlan(roots, files, sorted(dict.fromkeys(ignored)))


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = ("```", "~~~")


def markdown_sections(text: str) -> list[tuple[str, str]]:
    """Split Markdown at headings (not inside code fences) into ``(heading path, body)``.

    The heading path joins the enclosing headings, e.g. ``"Guide > Vector search"``; sections
    without a body are dropped (their title lives on in their subsections' paths).
    """
    sections: list[tuple[str, str]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            sections.append((" > ".join(title for _, title in path), content))

    for line in text.splitlines():
        if line.lstrip().startswith(_FENCE):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        flush()
        body = []
        level = len(match.group(1))
        path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2))]
    flush()
    return sections


def _split_text(path: Path, text: str, chunk_size: int, chunk_overlap: int) -> list[str]:
    if path.suffix.lower() not in (".md", ".markdown"):
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
        return splitter.split_text(text)
    # Each chunk starts with its section's heading path: a chunk is understandable (and
    # retrievable) on its own, and no chunk is a lone heading.
    pieces: list[str] = []
    for heading, body in markdown_sections(text):
        room = max(chunk_size - len(heading) - 2, chunk_size // 2)
        splitter = RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=room, chunk_overlap=min(chunk_overlap, room // 2)
        )
        for piece in splitter.split_text(body):
            pieces.append(f"{heading}\n\n{piece}" if heading else piece)
    return pieces


def split_file(
    path: Path,
    source: str,
    *,
    chunk_size: int = 1000,
    chunk_overlap: int = 150,
    metadata: Mapping[str, Any] | None = None,
) -> list[Document]:
    """Read a UTF-8 text or Markdown file and split it into chunk documents.

    Markdown is cut at headings first, and every chunk starts with its heading path.

    Args:
        path: The file.
        source: The ``source`` metadata value (and id salt).
        chunk_size: Characters per chunk at most.
        chunk_overlap: Characters shared by neighbouring chunks.
        metadata: More metadata for every chunk (e.g. ``path``, ``ingested_at``).

    Returns:
        Documents with ``id`` from :func:`chunk_id` and metadata ``{"source", "chunk", ...}``;
        a chunk repeated within the file is kept once.

    Raises:
        UnicodeDecodeError: The file is not UTF-8 text.
    """
    text = path.read_text(encoding="utf-8")
    docs: list[Document] = []
    seen: set[str] = set()
    for piece in _split_text(path, text, chunk_size, chunk_overlap):
        if not piece.strip():
            continue
        doc_id = chunk_id(source, piece)
        if doc_id in seen:
            continue
        seen.add(doc_id)
        docs.append(
            Document(
                id=doc_id,
                page_content=piece,
                metadata={"source": source, "chunk": len(docs), **(metadata or {})},
            )
        )
    return docs


def _comparable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k not in _VOLATILE_KEYS}


def _stored_metadata(store: VectorStore, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if isinstance(store, TiDBVectorStore):
        return metadata_by_ids(store, ids)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        for doc in store.get_by_ids(ids[start : start + 500]):
            if doc.id is not None:
                found[doc.id] = doc.metadata
    return found


def add_new_documents(
    store: VectorStore,
    docs: Sequence[Document],
    *,
    batch_size: int = 128,
    show_progress: bool = False,
    progress_desc: str = "Embedding",
    stored: Mapping[str, Mapping[str, Any]] | None = None,
    embeddings: Embeddings | None = None,
) -> tuple[int, int]:
    """Store documents whose ids are not stored yet; embed only those.

    Stored documents whose metadata differs (e.g. a chunk that moved within its file, or a
    file whose folder moved) get the new metadata without being embedded again (TiDB stores).
    ``ingested_at`` alone differing is not a change.

    Args:
        store: The vector store (needs ``get_by_ids`` unless it is a TiDB store).
        docs: Documents with ``id`` set (e.g. from :func:`chunk_id`).
        batch_size: Documents embedded and written per batch.
        show_progress: Show a tqdm bar (chunks and rate).
        progress_desc: The bar's label.
        stored: Metadata by id of what is already stored, when the caller has read it; else
            it is looked up by id (ids and metadata only, never the texts).
        embeddings: Embeds the new chunks instead of the store's own (TiDB stores), e.g. a
            ``BedrockBatchEmbeddings``, which takes its ``ingest_batch_size`` per call.

    Returns:
        ``(added, already_stored)``.

    Raises:
        ValueError: A document has no id, or ``batch_size`` is not positive.
    """
    if any(doc.id is None for doc in docs):
        msg = "every document needs an id to be added incrementally"
        raise ValueError(msg)
    if batch_size < 1:
        msg = f"batch_size must be positive, got {batch_size}"
        raise ValueError(msg)
    if stored is None:
        stored = _stored_metadata(store, [doc.id for doc in docs if doc.id is not None])
    new = [doc for doc in docs if doc.id not in stored]
    moved = [
        doc
        for doc in docs
        if doc.id is not None
        and doc.id in stored
        and _comparable(stored[doc.id]) != _comparable(doc.metadata)
    ]
    if moved and isinstance(store, TiDBVectorStore):
        store.update_metadata({doc.id: doc.metadata for doc in moved if doc.id is not None})
    with tqdm(
        total=len(new), unit="chunk", desc=progress_desc, disable=not show_progress or not new
    ) as bar:
        size = getattr(embeddings, "ingest_batch_size", batch_size)  # a batch job per call
        embed_and_store(store, new, batch_size=size, progress=bar.update, embeddings=embeddings)
    return len(new), len(docs) - len(new)


def embed_and_store(
    store: VectorStore,
    docs: Sequence[Document],
    *,
    batch_size: int = 128,
    progress: Any = None,
    embeddings: Embeddings | None = None,
) -> None:
    """Embed ``docs`` and write them with their ids: the one embedding step of ingest.

    On a TiDB store batch n+1 is embedded while batch n is written, so the database never
    idles the model. ``progress`` is called with the number of documents written per batch.
    """
    batches = [list(docs[i : i + batch_size]) for i in range(0, len(docs), batch_size)]
    if not batches:
        return
    report = progress or (lambda n: None)
    if embeddings is not None and not isinstance(store, TiDBVectorStore):
        msg = "separate embeddings (e.g. batch inference) need a TiDBVectorStore"
        raise ValueError(msg)
    if embeddings is None:
        embeddings = store.embeddings if isinstance(store, TiDBVectorStore) else None
    if embeddings is None:
        for batch in batches:
            store.add_documents(batch, ids=[doc.id for doc in batch])
            report(len(batch))
        return
    assert isinstance(store, TiDBVectorStore)  # noqa: S101 - narrowed above
    _pipelined_add(store, embeddings, batches, report)


def _pipelined_add(
    store: TiDBVectorStore, embeddings: Embeddings, batches: list[list[Document]], report: Any
) -> None:
    def embed(batch: list[Document]) -> list[list[float]]:
        return embeddings.embed_documents([doc.page_content for doc in batch])

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-embed") as pool:
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


def _under_roots(store: VectorStore, plan: IngestPlan) -> dict[str, dict[str, Any]]:
    """Metadata by id of every stored chunk that belongs to the plan's roots."""
    if not isinstance(store, TiDBVectorStore):
        return {}
    sources = [source for _, source in plan.files]
    prefixes, path_prefixes = [], []
    for root in plan.roots:
        if root.is_dir:
            prefixes.append(f"{root.name}/" if root.name else "")
            path_prefixes.append(root.path.as_posix().rstrip("/") + "/")
        else:
            sources.append(root.path.as_posix())  # older versions: the absolute path
    return stored_chunks(
        store, sources=sources, prefixes=[p for p in prefixes if p], path_prefixes=path_prefixes
    )


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
) -> IngestSummary:
    """Read, split, embed and store the files of ``plan`` (see :func:`ingest_paths`).

    ``embeddings`` embeds the new chunks instead of the store's own (see
    :func:`add_new_documents`).
    """
    started = time.perf_counter()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = IngestSummary(ignored=[p.as_posix() for p in plan.ignored])
    chunks: list[Document] = []
    sources: set[str] = set()
    for path, source in tqdm(
        plan.files, unit="file", desc="Reading", disable=not show_progress or not plan.files
    ):
        extra = {"path": path.as_posix(), "ingested_at": now}
        try:
            docs = split_file(
                path, source, chunk_size=chunk_size, chunk_overlap=chunk_overlap, metadata=extra
            )
        except UnicodeDecodeError:
            summary.ignored.append(path.as_posix())
            logger.warning("skipping %s: not UTF-8 text", path)
            continue
        sources.add(source)
        chunks.extend(docs)
    summary.files, summary.chunks = len(sources), len(chunks)

    # One read of ids and metadata serves everything below: what is stored, what is stale,
    # and what lies under the roots without a file any more.
    under = _under_roots(store, plan)
    wanted = {doc.id for doc in chunks}
    if isinstance(store, TiDBVectorStore):
        stored = {i: m for i, m in under.items() if i in wanted}
        stale = sorted(
            i for i, m in under.items() if m.get("source") in sources and i not in wanted
        )
    else:
        stored, stale = None, []
    # A wanted id is kept whatever its stored source says (add_new_documents fixes that).
    gone = {
        i: m.get("source")
        for i, m in under.items()
        if m.get("source") not in sources and i not in wanted
    }
    # Store the new chunks first: if embedding or writing fails, the old ones are still there.
    summary.embedded, summary.skipped = add_new_documents(
        store,
        chunks,
        batch_size=batch_size,
        show_progress=show_progress,
        stored=stored,
        embeddings=embeddings,
    )
    if stale:
        store.delete(ids=stale)
    summary.deleted = len(stale)
    gone_sources = set(gone.values())
    if prune and gone:
        store.delete(ids=sorted(gone))
        summary.pruned, summary.pruned_sources = len(gone), len(gone_sources)
    else:
        summary.missing_sources = len(gone_sources)
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
    prune: bool = False,
    batch_inference: str | None = None,
    role_arn: str | None = None,
    s3_endpoint_url: str | None = None,
) -> IngestSummary:
    """Load, split, embed and store ``.txt`` / ``.md`` files and folders, incrementally.

    A second run over unchanged files makes no embedding call and reads no stored text; for a
    changed file only its new chunks are embedded and, after they are stored, its chunks that
    no longer exist are deleted (TiDB stores). A failed run leaves the old chunks in place.
    Sources are named as the module docstring says.

    Args:
        store: The vector store.
        paths: Files and folders (folders are walked recursively; other file types are
            listed in ``ignored``).
        batch_size: Chunks embedded and written per batch.
        show_progress: Show tqdm bars for reading files and for embedding.
        chunk_size: Characters per chunk at most.
        chunk_overlap: Characters shared by neighbouring chunks.
        name: Collection name replacing the folder's name (one path only).
        prune: Also delete the chunks of files under these roots that no longer exist, and
            of these files stored under an older name (TiDB stores).
        batch_inference: ``s3://bucket/prefix``: embed the new chunks through Bedrock batch
            inference jobs (half price, no per-minute quota) with the store's Titan settings,
            then bulk-load them (TiDB stores; needs ``role_arn``).
        role_arn: The service role Bedrock's batch jobs assume to read and write S3.
        s3_endpoint_url: S3 endpoint for batch inference (e.g. a LocalS3).

    Returns:
        The :class:`IngestSummary`.

    Raises:
        FileNotFoundError: A path does not exist.
        SourceNameError: Two files would be stored under one source name.
    """
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
    plan = plan_ingest(list(paths), name=name)
    return ingest_plan(
        store,
        plan,
        batch_size=batch_size,
        show_progress=show_progress,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        prune=prune,
        embeddings=embeddings,
    )
