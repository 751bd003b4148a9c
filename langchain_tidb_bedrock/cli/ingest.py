"""Incremental ingestion of text and Markdown files into a vector store.

Chunk ids are derived from the source path (the file's resolved absolute path, so the working
directory of a run does not matter) and the chunk text, so re-ingesting is idempotent: chunks
already stored are found with ``get_by_ids`` and never embedded again, and chunks a changed file
no longer has are deleted once its new chunks are stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter
from tqdm.auto import tqdm

from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

__all__ = [
    "SUPPORTED_SUFFIXES",
    "IngestSummary",
    "add_new_documents",
    "chunk_id",
    "discover_files",
    "ingest_paths",
    "markdown_sections",
    "split_file",
]

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown")
_LOOKUP_BATCH = 500  # ids per get_by_ids / sources per stale-id query


@dataclass
class IngestSummary:
    """What one ingestion did.

    Attributes:
        files: Files read.
        chunks: Distinct chunks those files split into.
        embedded: Chunks embedded and stored (new or changed).
        skipped: Chunks already stored unchanged (no embedding call).
        deleted: Stale chunks removed (from files that changed).
        seconds: Wall time.
        ignored: Paths not ingested (unsupported type or not UTF-8 text).
    """

    files: int = 0
    chunks: int = 0
    embedded: int = 0
    skipped: int = 0
    deleted: int = 0
    seconds: float = 0.0
    ignored: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.files} files, {self.chunks} chunks: {self.embedded} embedded, "
            f"{self.skipped} unchanged, {self.deleted} stale deleted in {self.seconds:.1f} s"
        )


def chunk_id(source: str, text: str) -> str:
    """Stable id of a chunk: the first 32 hex digits of ``sha256(source NUL text)``."""
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:32]


def _source_name(path: Path) -> str:
    # The resolved absolute path: the same file gets the same source (and chunk ids) whatever
    # the working directory of the run.
    return path.resolve().as_posix()


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
        if path.is_dir():
            candidates: Iterable[Path] = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            candidates = [path]
        for p in candidates:
            target = files if p.suffix.lower() in SUPPORTED_SUFFIXES else ignored
            target[p] = None
    return sorted(files), sorted(ignored)


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
    path: Path, source: str, *, chunk_size: int = 1000, chunk_overlap: int = 150
) -> list[Document]:
    """Read a UTF-8 text or Markdown file and split it into chunk documents.

    Markdown is cut at headings first, and every chunk starts with its heading path.

    Args:
        path: The file.
        source: The ``source`` metadata value (and id salt).
        chunk_size: Characters per chunk at most.
        chunk_overlap: Characters shared by neighbouring chunks.

    Returns:
        Documents with ``id`` from :func:`chunk_id` and metadata ``{"source", "chunk"}``;
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
            Document(id=doc_id, page_content=piece, metadata={"source": source, "chunk": len(docs)})
        )
    return docs


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing(store: VectorStore, ids: Sequence[str]) -> dict[str, Document]:
    found: dict[str, Document] = {}
    for batch in _batches(ids, _LOOKUP_BATCH):
        found.update((doc.id, doc) for doc in store.get_by_ids(batch) if doc.id is not None)
    return found


def _refresh_metadata(store: VectorStore, docs: Sequence[Document]) -> None:
    """Rewrite the metadata of unchanged chunks whose position moved (no re-embedding).

    TiDB stores only; other stores keep the old ``chunk`` number.
    """
    if not docs or not isinstance(store, TiDBVectorStore):
        return
    store.update_metadata({doc.id: doc.metadata for doc in docs if doc.id is not None})


def _stored_ids_by_source(store: VectorStore, sources: Sequence[str]) -> dict[str, set[str]]:
    """Ids stored under each source (TiDB stores only: other stores have no such query)."""
    if not isinstance(store, TiDBVectorStore) or not sources:
        return {}
    result: dict[str, set[str]] = {}
    for batch in _batches(sources, _LOOKUP_BATCH):
        for doc in store.get(filter={"source": {"$in": list(batch)}}):
            if doc.id is not None:
                result.setdefault(doc.metadata["source"], set()).add(doc.id)
    return result


def add_new_documents(
    store: VectorStore,
    docs: Sequence[Document],
    *,
    batch_size: int = 128,
    show_progress: bool = False,
    progress_desc: str = "Embedding",
) -> tuple[int, int]:
    """Store documents whose ids are not stored yet; embed only those.

    Stored documents whose metadata differs (e.g. a chunk that moved within its file) get the
    new metadata without being embedded again (TiDB stores).

    Args:
        store: The vector store (needs ``get_by_ids``).
        docs: Documents with ``id`` set (e.g. from :func:`chunk_id`).
        batch_size: Documents embedded and written per batch.
        show_progress: Show a tqdm bar (chunks and rate).
        progress_desc: The bar's label.

    Returns:
        ``(added, already_stored)``.

    Raises:
        ValueError: A document has no id.
    """
    if any(doc.id is None for doc in docs):
        msg = "every document needs an id to be added incrementally"
        raise ValueError(msg)
    if batch_size < 1:
        msg = f"batch_size must be positive, got {batch_size}"
        raise ValueError(msg)
    existing = _existing(store, [doc.id for doc in docs if doc.id is not None])
    new = [doc for doc in docs if doc.id not in existing]
    moved = [d for d in docs if d.id in existing and existing[d.id].metadata != d.metadata]
    _refresh_metadata(store, moved)
    batches = [new[i : i + batch_size] for i in range(0, len(new), batch_size)]
    with tqdm(
        total=len(new), unit="chunk", desc=progress_desc, disable=not show_progress or not new
    ) as bar:
        if isinstance(store, TiDBVectorStore) and store.embeddings is not None:
            _pipelined_add(store, store.embeddings, batches, bar)
        else:
            for batch in batches:
                store.add_documents(batch, ids=[doc.id for doc in batch])
                bar.update(len(batch))
    return len(new), len(docs) - len(new)


def _pipelined_add(
    store: TiDBVectorStore, embeddings: Embeddings, batches: list[list[Document]], bar: tqdm[Any]
) -> None:
    """Embed batch n+1 while batch n is written, so the database never idles the model."""
    if not batches:
        return

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
            bar.update(len(batch))


def ingest_paths(
    store: VectorStore,
    paths: Iterable[str | os.PathLike[str]],
    *,
    batch_size: int = 128,
    show_progress: bool = True,
    chunk_size: int = 1000,
    chunk_overlap: int = 150,
) -> IngestSummary:
    """Load, split, embed and store ``.txt`` / ``.md`` files and folders, incrementally.

    A second run over unchanged files makes no embedding call; for a changed file only its new
    chunks are embedded and, after they are stored, its chunks that no longer exist are deleted
    (TiDB stores). A failed run leaves the old chunks in place. Each chunk's ``source`` is the
    file's resolved absolute POSIX path.

    Args:
        store: The vector store.
        paths: Files and folders (folders are walked recursively; other file types are
            listed in ``ignored``).
        batch_size: Chunks embedded and written per batch.
        show_progress: Show tqdm bars for reading files and for embedding.
        chunk_size: Characters per chunk at most.
        chunk_overlap: Characters shared by neighbouring chunks.

    Returns:
        The :class:`IngestSummary`.

    Raises:
        FileNotFoundError: A path does not exist.
    """
    started = time.perf_counter()
    files, ignored = discover_files(paths)
    summary = IngestSummary(ignored=[p.as_posix() for p in ignored])
    chunks: list[Document] = []
    sources: list[str] = []
    seen: set[str] = set()
    for path in tqdm(files, unit="file", desc="Reading", disable=not show_progress or not files):
        source = _source_name(path)
        if source in seen:  # the same file reached through two of the given paths
            continue
        seen.add(source)
        try:
            docs = split_file(path, source, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        except UnicodeDecodeError:
            summary.ignored.append(path.as_posix())
            logger.warning("skipping %s: not UTF-8 text", path)
            continue
        sources.append(source)
        chunks.extend(docs)
    summary.files, summary.chunks = len(sources), len(chunks)
    if ignored:
        logger.info("skipped %d files that are not %s", len(ignored), "/".join(SUPPORTED_SUFFIXES))

    wanted = {doc.id for doc in chunks}
    stored = _stored_ids_by_source(store, sources)
    stale = sorted(i for ids in stored.values() for i in ids if i not in wanted)
    # Store the new chunks first: if embedding or writing fails, the old ones are still there.
    summary.embedded, summary.skipped = add_new_documents(
        store, chunks, batch_size=batch_size, show_progress=show_progress
    )
    if stale:
        store.delete(ids=stale)
    summary.deleted = len(stale)
    summary.seconds = time.perf_counter() - started
    return summary
