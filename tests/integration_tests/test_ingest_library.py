"""``langchain_tidb_bedrock.ingest`` as a library: a TiDB store (metadata read through the store,
files marked incomplete by an interrupt and finished by the next run, the dimension checked
before embedding), .rst and glob selection, and any other vector store through ``index()``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.indexing import InMemoryRecordManager
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_tidb_bedrock import IngestSummary, InvalidInputError, TiDBVectorStore, ingest_paths
from langchain_tidb_bedrock.ingest import (
    IngestInterrupted,
    ingest_plan,
    list_sources,
    plan_ingest,
    split_file,
)


class CountingEmbeddings(DeterministicFakeEmbedding):
    """Counts embedded texts; ``stop_at`` raises KeyboardInterrupt on that call (1-based)."""

    dimensions: int = 8
    embedded: int = 0
    calls: int = 0
    stop_at: int = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        self.embedded += len(texts)
        return super().embed_documents(texts)


@pytest.fixture
def emb() -> CountingEmbeddings:
    return CountingEmbeddings(size=8, dimensions=8)


@pytest.fixture
def store(tidb_url: str, table_name: str, emb: CountingEmbeddings) -> Iterator[TiDBVectorStore]:
    s = TiDBVectorStore(emb, connection_string=tidb_url, table_name=table_name)
    yield s
    s.close()


def _long(n: int) -> str:
    return "\n\n".join(f"Paragraph {p} of note {n}: TiDB keeps vector {p} here." for p in range(60))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "api").mkdir(parents=True)
    (folder / "big.txt").write_text(_long(1))
    (folder / "guide.rst").write_text(
        "Guide\n=====\n\nTiDB stores vectors.\n\nSearch\n------\n\nHNSW makes it fast.\n"
    )
    (folder / "api" / "client.py").write_text("def connect():\n    return 'tidb'\n")
    (folder / "small.md").write_text("# Small\n\nOne line.\n")
    return folder


def _run(store: object, docs: Path, **kwargs: object) -> IngestSummary:
    kwargs.setdefault("chunk_size", 200)
    kwargs.setdefault("chunk_overlap", 0)
    return ingest_paths(store, [docs], show_progress=False, **kwargs)  # type: ignore[arg-type]


def test_rst_files_are_ingested_and_glob_chooses_files(docs: Path) -> None:
    plan = plan_ingest([docs])
    assert [s for _, s in plan.files] == ["docs/big.txt", "docs/guide.rst", "docs/small.md"]
    assert plan.ignored == [docs / "api" / "client.py"]
    chunks = split_file(docs / "guide.rst", "docs/guide.rst", chunk_size=40, chunk_overlap=0)
    # Cut at the section titles; each chunk starts with its title path.
    assert [d.page_content for d in chunks] == [
        "Guide\n\nTiDB stores vectors.",
        "Guide > Search\n\nHNSW makes it fast.",
    ]
    assert [s for _, s in plan_ingest([docs], glob=["*.py"]).files] == ["docs/api/client.py"]
    assert plan_ingest([docs], glob=["*.py"]).ignored == []  # not chosen, not reported
    picked = plan_ingest([docs], glob=["api/*", "*.md"]).files
    assert [s for _, s in picked] == ["docs/api/client.py", "docs/small.md"]
    with pytest.raises(InvalidInputError, match="glob pattern at position 1 is empty"):
        plan_ingest([docs], glob=["*.md", " "])


def test_tidb_ingest_marks_files_and_reingest_embeds_nothing(
    store: TiDBVectorStore, emb: CountingEmbeddings, docs: Path
) -> None:
    first = _run(store, docs)
    assert first.files == 3
    assert first.embedded == first.chunks == emb.embedded
    stored = store.get_metadata()
    by_file: dict[str, list[dict[str, object]]] = {}
    for meta in stored.values():
        by_file.setdefault(str(meta["source"]), []).append(meta)
    for metas in by_file.values():
        assert {m["file_chunks"] for m in metas} == {len(metas)}
        assert len({m["file_version"] for m in metas}) == 1
    assert all(s.complete and s.expected == s.chunks for s in list_sources(store))
    again = _run(store, docs)
    assert (again.embedded, again.skipped) == (0, first.chunks)
    assert emb.embedded == first.chunks


def test_interrupted_ingest_is_marked_incomplete_and_the_rerun_finishes_it(
    store: TiDBVectorStore, emb: CountingEmbeddings, docs: Path
) -> None:
    total = len(split_file(docs / "big.txt", "docs/big.txt", chunk_size=200, chunk_overlap=0))
    assert total > 10
    emb.stop_at = 2  # Ctrl-C while the second batch is embedded: the first is stored
    with pytest.raises(IngestInterrupted) as info:
        _run(store, docs, batch_size=5)
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.stored == 5
    pending = info.value.pending
    assert "5 of " in str(info.value)
    assert "run the same ingest again to finish" in str(info.value)
    # big.txt cut short, the two files after it not started.
    assert info.value.incomplete == ["docs/big.txt"]
    assert info.value.not_started == ["docs/guide.rst", "docs/small.md"]
    assert "1 file is incomplete; 2 files were not started; run the same" in str(info.value)
    sources = {s.source: s for s in list_sources(store)}
    big = sources["docs/big.txt"]
    assert (big.chunks, big.expected, big.complete) == (5, total, False)

    emb.stop_at, emb.embedded = 0, 0
    summary = _run(store, docs, batch_size=5)
    assert summary.embedded == pending - 5 == emb.embedded  # only what was missing
    assert all(s.complete for s in list_sources(store))
    assert {s.source: s.chunks for s in list_sources(store)}["docs/big.txt"] == total


def test_an_interrupted_change_leaves_the_file_incomplete_until_rerun(
    store: TiDBVectorStore, emb: CountingEmbeddings, docs: Path
) -> None:
    _run(store, docs, batch_size=5)
    before = {s.source: s.chunks for s in list_sources(store)}
    # Keep the first half of the file, rewrite the rest: old and new chunks would mix.
    text = (docs / "big.txt").read_text().split("\n\n")
    rewritten = text[:30] + [f"Rewritten paragraph {p} about TiFlash." for p in range(30)]
    (docs / "big.txt").write_text("\n\n".join(rewritten))
    emb.stop_at, emb.calls = 2, 0
    with pytest.raises(IngestInterrupted) as info:
        _run(store, docs, batch_size=2)
    assert info.value.incomplete == ["docs/big.txt"]
    assert info.value.not_started == []
    big = {s.source: s for s in list_sources(store)}["docs/big.txt"]
    assert not big.complete
    emb.stop_at = 0
    summary = _run(store, docs, batch_size=2)
    assert summary.deleted > 0
    listed = {s.source: s for s in list_sources(store)}
    assert all(s.complete for s in listed.values())
    assert listed["docs/small.md"].chunks == before["docs/small.md"]


def test_a_model_of_another_size_fails_before_anything_is_embedded(
    tidb_url: str, store: TiDBVectorStore, docs: Path
) -> None:
    _run(store, docs)
    wide = CountingEmbeddings(size=16, dimensions=16)
    other = TiDBVectorStore(wide, connection_string=tidb_url, table_name=store.table_name)
    try:
        (docs / "new.md").write_text("# New\n\nA new page.\n")
        with pytest.raises(InvalidInputError, match="stores 8-dimensional vectors, got 16"):
            _run(other, docs)
        assert wide.calls == 0
    finally:
        other.close()


def test_other_stores_go_through_index_with_a_record_manager(docs: Path) -> None:
    emb = CountingEmbeddings(size=8, dimensions=8)
    store = InMemoryVectorStore(emb)
    records = InMemoryRecordManager("docs")
    records.create_schema()
    first = _run(store, docs, record_manager=records)
    assert first.embedded == first.chunks == emb.embedded == len(store.store)
    again = _run(store, docs, record_manager=records)
    assert (again.embedded, again.skipped, again.deleted) == (0, first.chunks, 0)
    assert emb.embedded == first.chunks
    # A changed file: its new chunk embedded, its old one deleted (index()'s cleanup).
    (docs / "small.md").write_text("# Small\n\nAnother line.\n")
    changed = _run(store, docs, record_manager=records)
    assert (changed.embedded, changed.deleted) == (1, 1)
    assert len(store.store) == first.chunks
    # prune: everything this record manager indexed that the run did not see.
    guide = split_file(docs / "guide.rst", "docs/guide.rst", chunk_size=200, chunk_overlap=0)
    (docs / "guide.rst").unlink()
    pruned = _run(store, docs, record_manager=records, prune=True)
    assert pruned.deleted == len(guide) == 2
    assert {d["metadata"]["source"] for d in store.store.values()} == {
        "docs/big.txt",
        "docs/small.md",
    }
    with pytest.raises(InvalidInputError, match="need a TiDBVectorStore"):
        ingest_plan(store, plan_ingest([docs]), embeddings=emb, show_progress=False)
