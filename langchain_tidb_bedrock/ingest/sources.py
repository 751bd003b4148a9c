"""What an ingest has stored, by source: listing, matching names as typed, deleting.

Everything reads and deletes through the store's own operations (ids and metadata only, never
texts or vectors): :meth:`TiDBVectorStore.metadata_summary` for the listing and
:meth:`TiDBVectorStore.delete` with a filter for deleting.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_tidb_bedrock.ingest.pipeline import FILE_CHUNKS_KEY, FILE_VERSION_KEY
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

__all__ = [
    "StoredSource",
    "closest_sources",
    "delete_sources",
    "list_sources",
    "match_sources",
]

_DELETE_BATCH = 500  # sources per delete statement


@dataclass(frozen=True)
class StoredSource:
    """One stored source (a file).

    Attributes:
        source: Its name.
        chunks: Chunks stored.
        ingested_at: Newest ingest time (ISO 8601, UTC), if recorded.
        path: The file's path when it was ingested, if recorded.
        expected: Chunks the file has (None for chunks stored before this was recorded).
        complete: False when an interrupted ingest stored only part of the file, or left
            chunks of two versions of it; the next ingest of the file finishes it.
    """

    source: str
    chunks: int
    ingested_at: str | None
    path: str | None
    expected: int | None = None
    complete: bool = True


def list_sources(store: TiDBVectorStore) -> list[StoredSource]:
    """Every stored source with its chunk count, newest ``ingested_at``, path and completeness.

    One grouped read of the metadata (no text is read); an empty list when the table does not
    exist.
    """
    groups = store.metadata_summary(
        "source",
        max_of=("ingested_at", "path", FILE_CHUNKS_KEY, FILE_VERSION_KEY),
        min_of=(FILE_VERSION_KEY,),
    )
    found: list[StoredSource] = []
    for group in groups:
        high, low = group.maxima, group.minima
        expected = high[FILE_CHUNKS_KEY]
        expected = (
            expected if isinstance(expected, int) and not isinstance(expected, bool) else None
        )
        # One version of the file, all of its chunks: complete. Chunks stored before the
        # markers existed carry none and count as complete.
        complete = expected is None or (
            group.rows == expected and high[FILE_VERSION_KEY] == low[FILE_VERSION_KEY]
        )
        when, path = high["ingested_at"], high["path"]
        found.append(
            StoredSource(
                source="" if group.value is None else str(group.value),
                chunks=group.rows,
                ingested_at=when if isinstance(when, str) else None,
                path=path if isinstance(path, str) else None,
                expected=expected,
                complete=complete,
            )
        )
    # Rows without a source and rows whose source is JSON null both read as "".
    merged: dict[str, StoredSource] = {}
    for entry in found:
        prior = merged.get(entry.source)
        if prior is not None:
            chunks = prior.chunks + entry.chunks
            entry = StoredSource(entry.source, chunks, prior.ingested_at, prior.path)  # noqa: PLW2901
        merged[entry.source] = entry
    return sorted(merged.values(), key=lambda s: s.source)


def _normalise(value: str) -> str:
    text = value.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text.rstrip("/") or text


def _under(name: str, folder: str) -> bool:
    return name == folder or name.startswith(folder.rstrip("/") + "/")


def match_sources(value: str, stored: Sequence[StoredSource]) -> list[str]:
    """Stored sources that ``value`` names: the source itself, or everything under a folder.

    ``value`` may be a stored name (``docs/guide.md``, ``docs``) or a path on this machine as
    typed (``./guide.md``, ``~/notes``), matched against the file path kept with each chunk.
    """
    name = _normalise(value)
    matched = {s.source for s in stored if name and _under(s.source, name)}
    candidate = Path(value).expanduser()
    if candidate.exists() or candidate.is_absolute():
        absolute = candidate.resolve().as_posix()
        for s in stored:
            # Older versions stored the absolute path as the source itself.
            if (s.path and _under(s.path, absolute)) or _under(s.source, absolute):
                matched.add(s.source)
    return sorted(matched)


def closest_sources(value: str, stored: Sequence[StoredSource], n: int = 3) -> list[str]:
    """Up to ``n`` stored sources or folders that look like ``value`` (difflib)."""
    names: dict[str, None] = {}
    for s in stored:
        names[s.source] = None
        parts = s.source.split("/")
        for depth in range(1, len(parts)):
            names["/".join(parts[:depth])] = None
    name = _normalise(value)
    # A near miss (a typo) alone when there is one, else the looser look-alikes.
    found = difflib.get_close_matches(name, list(names), n=n, cutoff=0.8)
    found = found or difflib.get_close_matches(name, list(names), n=n, cutoff=0.5)
    if not found:  # a typo in the file name of a long path: compare the last parts too
        by_tail = {k.rsplit("/", 1)[-1]: k for k in names}
        found = [
            by_tail[t]
            for t in difflib.get_close_matches(name.rsplit("/", 1)[-1], list(by_tail), n=n)
        ]
    return found


def delete_sources(store: TiDBVectorStore, sources: Sequence[str]) -> None:
    """Delete every chunk of these sources (the store's filtered delete, in batches)."""
    names = list(dict.fromkeys(sources))
    for start in range(0, len(names), _DELETE_BATCH):
        store.delete(filter={"source": {"$in": names[start : start + _DELETE_BATCH]}})
