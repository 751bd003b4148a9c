"""What the CLI has stored: chunk ids and metadata (never texts or vectors), and sources.

These read the store's table directly through its engine, with every value bound, because the
store's public ``get`` returns whole documents: learning which of 30k chunks exist that way reads
all their text. Only the ``id`` and ``meta`` columns are touched (the layout every TiDB store
and langchain-community's share).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

__all__ = [
    "StoredSource",
    "closest_sources",
    "delete_sources",
    "list_sources",
    "match_sources",
    "stored_chunks",
]

_PER_QUERY = 2000  # bound values per IN list
_DELETE_BATCH = 500


@dataclass(frozen=True)
class StoredSource:
    """One stored source: its name, chunk count, newest ingest time and file path."""

    source: str
    chunks: int
    ingested_at: str | None
    path: str | None


def _table(store: TiDBVectorStore) -> sa.TableClause:
    return sa.table(store.table_name, sa.column("id"), sa.column("meta"))


def _meta_key(table: sa.TableClause, key: str) -> sa.ColumnElement[Any]:
    return sa.func.JSON_UNQUOTE(sa.func.JSON_EXTRACT(table.c.meta, f"$.{key}"), type_=sa.String)


def _exists(store: TiDBVectorStore) -> bool:
    return sa.inspect(store.engine).has_table(store.table_name)


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _decode(raw: Any) -> dict[str, Any]:
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode()
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else {}


def stored_chunks(
    store: TiDBVectorStore,
    *,
    sources: Iterable[str] = (),
    prefixes: Iterable[str] = (),
    path_prefixes: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """Metadata by id of the chunks whose source or file path matches any of the selectors.

    Args:
        store: The store.
        sources: Exact ``source`` values.
        prefixes: ``source`` prefixes (e.g. ``"docs/"``).
        path_prefixes: Prefixes of ``path`` (the absolute file path kept as metadata), also
            matched against ``source``: older versions stored the absolute path there.
    """
    if not _exists(store):
        return {}
    table = _table(store)
    source, path = _meta_key(table, "source"), _meta_key(table, "path")
    like = [source.startswith(p, autoescape=True) for p in dict.fromkeys(prefixes)]
    for p in dict.fromkeys(path_prefixes):
        like += [path.startswith(p, autoescape=True), source.startswith(p, autoescape=True)]
    # Each query is one scan of the table (``source`` is not indexed yet): few, wide queries.
    queries = [like] if like else []
    queries += [[source.in_(list(b))] for b in _batches(list(dict.fromkeys(sources)), _PER_QUERY)]
    found: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for conditions in queries:
            query = sa.select(table.c.id, table.c.meta).where(sa.or_(*conditions))
            for row in conn.execute(query):
                found[row[0]] = _decode(row[1])
    return found


def metadata_by_ids(store: TiDBVectorStore, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Metadata of the stored chunks among ``ids`` (by primary key; no text is read)."""
    if not ids or not _exists(store):
        return {}
    table = _table(store)
    found: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for batch in _batches(ids, _PER_QUERY):
            query = sa.select(table.c.id, table.c.meta).where(table.c.id.in_(list(batch)))
            found.update((row[0], _decode(row[1])) for row in conn.execute(query))
    return found


def list_sources(store: TiDBVectorStore) -> list[StoredSource]:
    """Every stored source with its chunk count, newest ``ingested_at`` and file path."""
    if not _exists(store):
        return []
    table = _table(store)
    source = _meta_key(table, "source").label("source")
    query = (
        sa.select(
            source,
            sa.func.count(),
            sa.func.max(_meta_key(table, "ingested_at")),
            sa.func.max(_meta_key(table, "path")),
        )
        .group_by(source)
        .order_by(source)
    )
    with store.engine.connect() as conn:
        return [
            StoredSource(row[0] if row[0] is not None else "", int(row[1]), row[2], row[3])
            for row in conn.execute(query)
        ]


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
    """Delete every chunk of these sources (bound values, in batches)."""
    for batch in _batches(list(sources), _DELETE_BATCH):
        store.delete(filter={"source": {"$in": list(batch)}})
