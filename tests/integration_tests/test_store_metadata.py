"""The store's metadata-only reads (get_metadata, metadata_summary, table_dimension), the
dimension check before anything is embedded, and dates in metadata."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import InvalidInputError, TiDBVectorStore
from langchain_tidb_bedrock.vectorstores.documents import MetadataGroup


class SizedEmbeddings(DeterministicFakeEmbedding):
    """A fake model that says its size, as Titan does, and counts the texts it embeds."""

    dimensions: int = 4
    embedded: int = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return super().embed_documents(texts)


@pytest.fixture
def store(tidb_url: str, table_name: str) -> Iterator[TiDBVectorStore]:
    s = TiDBVectorStore(
        SizedEmbeddings(size=4, dimensions=4), connection_string=tidb_url, table_name=table_name
    )
    yield s
    s.close()


ROWS: list[tuple[str, dict[str, Any]]] = [
    ("a1", {"source": "docs/a.md", "n": 9, "v": "b", "when": "2024-01-02"}),
    ("a2", {"source": "docs/a.md", "n": 33, "v": "a", "when": "2024-03-04"}),
    ("b1", {"source": "docs/b.md", "n": 2}),
    ("c1", {"other": True}),
]


def _fill(store: TiDBVectorStore) -> None:
    store.add_texts([f"text {i}" for i, _ in ROWS], [m for _, m in ROWS], ids=[i for i, _ in ROWS])


def _statements(engine: sa.Engine, run: Any) -> list[str]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    return seen


def test_get_metadata_reads_ids_and_metadata_only(store: TiDBVectorStore) -> None:
    assert store.get_metadata() == {}  # no table yet
    _fill(store)
    assert store.get_metadata() == dict(ROWS)
    assert store.get_metadata(["b1", "a1", "missing", "a1"]) == {"a1": ROWS[0][1], "b1": ROWS[2][1]}
    assert store.get_metadata([]) == {}
    assert store.get_metadata(filter={"source": {"$like": "docs/%"}, "n": {"$gt": 5}}) == {
        "a1": ROWS[0][1],
        "a2": ROWS[1][1],
    }
    assert store.get_metadata(["a1", "b1"], filter={"n": {"$lt": 5}}) == {"b1": ROWS[2][1]}
    # Never the text or the vector: only the id and meta columns are selected.
    sent = _statements(store.engine, lambda: store.get_metadata(filter={"n": 9}))
    reads = [s for s in sent if store.table_name in s and s.lstrip().upper().startswith("SELECT")]
    assert reads
    assert not [s for s in reads if "document" in s or "embedding" in s]
    with pytest.raises(InvalidInputError, match="one string"):
        store.get_metadata("a1")


def test_get_metadata_batches_many_ids(store: TiDBVectorStore) -> None:
    ids = [f"id{n:04d}" for n in range(2500)]
    store.add_texts([f"t{n}" for n in range(2500)], [{"n": n} for n in range(2500)], ids=ids)
    got = store.get_metadata([*ids[::-1], "nope"])
    assert got == {i: {"n": n} for n, i in enumerate(ids)}


def test_metadata_summary_groups_one_key(store: TiDBVectorStore) -> None:
    assert store.metadata_summary("source") == []  # no table yet
    _fill(store)
    groups = store.metadata_summary("source", max_of=["n", "v", "when"], min_of=["v", "n"])
    assert groups == [
        MetadataGroup(None, 1, {"n": None, "v": None, "when": None}, {"v": None, "n": None}),
        MetadataGroup(
            "docs/a.md", 2, {"n": 33, "v": "b", "when": "2024-03-04"}, {"v": "a", "n": 9}
        ),
        MetadataGroup("docs/b.md", 1, {"n": 2, "v": None, "when": None}, {"v": None, "n": 2}),
    ]
    # Numbers compare as numbers (9 < 33), not as text ("9" > "33").
    assert groups[1].maxima["n"] == 33
    assert store.metadata_summary("source", filter={"n": {"$gte": 9}}) == [
        MetadataGroup("docs/a.md", 2, {}, {})
    ]
    for bad in ("", "$and", "a'b"):
        with pytest.raises(InvalidInputError):
            store.metadata_summary(bad)
    with pytest.raises(InvalidInputError, match="max_of takes a list"):
        store.metadata_summary("source", max_of="n")


def test_async_twins(store: TiDBVectorStore) -> None:
    _fill(store)

    async def go() -> tuple[Any, Any, Any]:
        return (
            await store.aget_metadata(["a1"]),
            await store.ametadata_summary("source", max_of=["n"]),
            await store.atable_dimension(),
        )

    metadata, groups, dimension = asyncio.run(go())
    assert metadata == {"a1": ROWS[0][1]}
    assert [(g.value, g.rows, g.maxima["n"]) for g in groups] == [
        (None, 1, None),
        ("docs/a.md", 2, 33),
        ("docs/b.md", 1, 2),
    ]
    assert dimension == 4


def test_a_model_of_another_size_is_refused_before_anything_is_embedded(
    tidb_url: str, store: TiDBVectorStore
) -> None:
    assert store.table_dimension() is None
    _fill(store)
    assert store.table_dimension() == 4
    wide = SizedEmbeddings(size=8, dimensions=8)
    other = TiDBVectorStore(wide, connection_string=tidb_url, table_name=store.table_name)
    try:
        with pytest.raises(InvalidInputError) as info:
            other.add_texts(["one", "two"])
        message = str(info.value)
        assert "stores 4-dimensional vectors, got 8" in message
        assert "nothing was embedded" in message
        assert wide.embedded == 0  # refused before the model was called
        with pytest.raises(InvalidInputError, match="stores 4-dimensional vectors, got 8"):
            asyncio.run(other.aadd_texts(["three"]))
        assert wide.embedded == 0
    finally:
        other.close()
    assert store.count() == len(ROWS)


def test_dates_in_metadata_are_stored_as_iso_strings(
    store: TiDBVectorStore, tidb_engine: sa.Engine
) -> None:
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    metadata = {
        "modified": when,
        "day": dt.date(2024, 5, 6),
        "nested": {"times": [dt.time(7, 8), dt.datetime(2024, 1, 1, 0, 0)]},
    }
    store.add_texts(["dated"], [metadata], ids=["d"])
    expected = {
        "modified": "2024-05-06T07:08:09+00:00",
        "day": "2024-05-06",
        "nested": {"times": ["07:08:00", "2024-01-01T00:00:00"]},
    }
    assert store.get_metadata(["d"]) == {"d": expected}
    with tidb_engine.connect() as conn:
        raw = conn.execute(sa.text(f"SELECT meta FROM `{store.table_name}`")).scalar_one()
    assert json.loads(raw) == expected
    # ISO dates of one form compare in time order.
    assert [d.id for d in store.get(filter={"day": {"$gte": "2024-05-01"}})] == ["d"]
    with pytest.raises(InvalidInputError, match="not JSON-serialisable"):
        store.add_texts(["x"], [{"a": {1, 2}}])
