"""End-to-end ingest (read, split, embed, store) of small files: the CLI path vs the usual stack.

Ours is ``ingest_paths`` (what ``langchain-tidb-bedrock ingest`` runs) with BedrockTitanEmbeddings;
the alternative is langchain-aws ``BedrockEmbeddings`` + langchain-community ``TiDBVectorStore``
fed the very same chunks (same files, same splitter). Both embed against one LocalBedrock process
at 20 ms per request and write 512-dimension vectors to the same TiDB.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from langchain_aws import BedrockEmbeddings

from benchmarks.common import Row, legacy_store_class, median_of
from benchmarks.embed import LATENCY, MODEL_ID, REGION, fake_aws_env, local_bedrock_process
from langchain_tidb_bedrock import BedrockTitanEmbeddings, TiDBVectorStore
from langchain_tidb_bedrock.ingest import discover_files, ingest_paths, source_name, split_file

DIM = 512
_SLOW_REPEAT_ABOVE = 500  # the alternative runs once above this many documents (~25 s per 1,000)


def write_corpus(folder: Path, n: int, salt: str = "") -> None:
    """n small files (half .md with a heading, half .txt), each well under one chunk."""
    for i in range(n):
        topic = f"topic {i % 37}"
        body = (
            f"{salt}Note {i} on {topic}. TiDB keeps vectors in a VECTOR column next to the rows "
            f"they describe, so one SQL query can filter and rank them. Shard {i % 11}."
        )
        if i % 2:
            (folder / f"note-{i:06d}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")
        else:
            (folder / f"note-{i:06d}.txt").write_text(body + "\n", encoding="utf-8")


def load_chunks(folder: Path) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """The chunks ``ingest_paths`` would make of ``folder``: texts, metadatas, chunk ids."""
    files, _ = discover_files([folder])
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    ids: list[str] = []
    for path in files:
        for doc in split_file(path, source_name(path)):
            texts.append(doc.page_content)
            metas.append(doc.metadata)
            ids.append(str(doc.id))
    return texts, metas, ids


def ours_ingest(url: str, endpoint: str, folder: Path, n: int) -> float:
    """``ingest_paths`` into a fresh table. Docs (files) per second."""
    emb = BedrockTitanEmbeddings(endpoint_url=endpoint, region_name=REGION, dimensions=DIM)
    store = TiDBVectorStore(emb, connection_string=url, table_name=f"b_e2e_{uuid.uuid4().hex[:8]}")
    try:
        start = time.perf_counter()
        summary = ingest_paths(store, [folder], show_progress=False)
        rate = n / (time.perf_counter() - start)
        if summary.files != n or summary.embedded != summary.chunks:
            msg = f"ours ingested {summary}, expected {n} files all embedded"
            raise RuntimeError(msg)
    finally:
        store.drop_table()
        store.close()
        emb.close()
    return rate


def community_ingest(url: str, endpoint: str, folder: Path, n: int) -> float:
    """Same files and splitter, then langchain-aws + langchain-community ``from_texts``."""
    legacy = legacy_store_class()
    emb = BedrockEmbeddings(
        model_id=MODEL_ID, endpoint_url=endpoint, region_name=REGION, dimensions=DIM
    )
    table = f"b_e2e_lc_{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    texts, metas, chunk_ids = load_chunks(folder)
    # Its ids column is VARCHAR(36): uuids derived from the chunk ids, as its users would do.
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, i)) for i in chunk_ids]
    store = legacy.from_texts(
        texts, emb, metas, connection_string=url, table_name=table, distance_strategy="cosine",
        ids=ids,
    )  # fmt: skip
    rate = n / (time.perf_counter() - start)
    store.drop_vectorstore()
    store.tidb_vector_client._bind.dispose()  # its engine; nothing else closes it
    return rate


def e2e_row(tidb_url: str, n: int, repeat: int) -> Row:
    """docs/s for n one-chunk files, ours vs langchain-aws + langchain-community."""
    fake_aws_env()
    aws_repeat = 1 if n > _SLOW_REPEAT_ABOVE else repeat
    with (
        tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp,
        local_bedrock_process(LATENCY) as endpoint,
    ):
        root = Path(tmp)
        warm, folder = root / "warm", root / "docs"
        warm.mkdir()
        folder.mkdir()
        write_corpus(warm, 40, salt="warm-up ")
        write_corpus(folder, n)
        chunks = len(load_chunks(folder)[0])
        ours_ingest(tidb_url, endpoint, warm, 40)  # connections, first writes into a fresh TiDB
        ours = median_of(repeat, lambda: ours_ingest(tidb_url, endpoint, folder, n))
        community = median_of(aws_repeat, lambda: community_ingest(tidb_url, endpoint, folder, n))
    row = Row(
        name=f"e2e ingest, {n:,} files, {LATENCY * 1000:.0f} ms/embed request (docs/s)",
        unit="docs/s",
        ours=ours,
        others={"langchain-aws + community": community},
        target=">= 10x",
    )
    row.met = ours >= 10 * community
    row.notes = (
        f"{chunks:,} chunks ({DIM}d), same files and splitter; ours = ingest_paths (CLI path), "
        f"fresh table each run; median of {repeat} (ours), {aws_repeat} (alternative); "
        "no ceiling column"
    )
    return row
