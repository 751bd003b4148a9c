"""Shared pieces of the benchmarks: data, timing, contenders' setup, the result table."""

from __future__ import annotations

import contextlib
import hashlib
import json
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from langchain_core.embeddings import Embeddings


@dataclass
class Row:
    """One line of the results table."""

    name: str
    unit: str
    ours: float
    others: dict[str, float] = field(default_factory=dict)
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None
    notes: str = ""

    def ratio(self, other: str) -> float:
        """ours / other when higher is better, other / ours otherwise (>1 means we lead)."""
        value = self.others[other]
        if self.higher_is_better:
            return self.ours / value if value else float("inf")
        return value / self.ours if self.ours else float("inf")


def median_of(repeat: int, fn: Callable[[], float]) -> float:
    """Median of ``repeat`` runs of ``fn`` (each returns one measurement)."""
    return statistics.median(fn() for _ in range(repeat))


@contextlib.contextmanager
def timer() -> Iterator[Callable[[], float]]:
    """``with timer() as elapsed: ...; elapsed()`` in seconds."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Deterministic unit vectors (float32)."""
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, dim)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return m


def metadata(i: int) -> dict[str, Any]:
    """Per-document metadata; ``bucket`` takes 100 values so one value matches 1% of rows."""
    return {"source": f"doc-{i // 10}.md", "chunk": i % 10, "bucket": i % 100, "lang": "en"}


class PrecomputedEmbeddings(Embeddings):
    """Hands back vectors already computed for each text (for ingest benchmarks)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.table[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        # langchain-community embeds a probe text at construction to learn the dimension.
        return self.table[text] if text in self.table else next(iter(self.table.values()))


class HashEmbeddings(Embeddings):
    """Cheap deterministic embeddings: a seeded random unit vector per text (plain floats)."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def embed_query(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).normal(size=self.dim)
        return (v / np.linalg.norm(v)).tolist()  # type: ignore[no-any-return]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


def legacy_store_class() -> Any:
    """langchain-community's TiDBVectorStore (deprecated package; warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.vectorstores import TiDBVectorStore

    return TiDBVectorStore


def dumps(obj: Any) -> str:
    """JSON for the results file."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode()


def json_meta(i: int) -> str:
    """Metadata as JSON text for the raw SQL paths."""
    return json.dumps(metadata(i))
