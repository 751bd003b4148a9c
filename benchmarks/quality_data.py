"""A labelled retrieval set from text nobody here wrote: the docstrings of installed packages.

Passages are docstrings (modules, classes, functions) found in the environment's
``site-packages``, in path order, cut at 1,500 characters. Three query classes, each with one
known answer passage:

* ``keyword``: an identifier that occurs in exactly one passage (``ER_LOCK_DEADLOCK`` style:
  an underscore, inner capital or digit, 8+ characters), asked alone;
* ``keyword+context``: that identifier with three words of its passage that carry meaning
  (the passage's most distinctive common words): how people ask about an error code;
* ``natural``: a docstring's summary sentence, answered by the rest of the docstring (the
  summary is removed from the passage), so the words differ and meaning must carry it.

The embedding model (:class:`CooccurrenceEmbeddings`) is deliberately not lexical: word vectors
are random projections of document co-occurrence (random indexing) over the passages' common
words, so related words land close and a rare identifier has no vector at all, as with a
neural model that has never seen it. Everything is deterministic for a given environment.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
import site
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

MAX_CHARS = 1500
_CACHE = Path.home() / ".cache" / "langchain-tidb-bedrock" / "benchmarks"
_WORD = re.compile(r"[a-z]{3,}")
_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{7,}\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def _is_identifier(token: str) -> bool:
    has_mark = "_" in token.strip("_") or any(c.isdigit() for c in token)
    inner_cap = any(c.isupper() for c in token[1:]) and any(c.islower() for c in token)
    return (has_mark or inner_cap) and not token.startswith("__")


@dataclass
class Query:
    """One labelled question."""

    text: str
    answer: str  # passage id
    kind: str


@dataclass
class Dataset:
    """Passages (id -> text) and labelled queries."""

    passages: dict[str, str] = field(default_factory=dict)
    queries: list[Query] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # passage id -> file:name

    def by_kind(self) -> dict[str, list[Query]]:
        """Queries grouped by class, in a stable order."""
        out: dict[str, list[Query]] = {}
        for q in self.queries:
            out.setdefault(q.kind, []).append(q)
        return out


def _site_packages() -> Path:
    paths = [Path(p) for p in site.getsitepackages()] + [Path(sysconfig.get_paths()["purelib"])]
    return next(p for p in paths if p.is_dir())


def docstrings(limit: int) -> Iterator[tuple[str, str]]:
    """(where, docstring) of installed packages' modules, classes and functions, path order."""
    root = _site_packages()
    count = 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "/tests/" in rel or "/test/" in rel or rel.startswith(("_pytest", "pip/")):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if not isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                continue
            doc = ast.get_docstring(node)
            if doc and len(doc) >= 200:
                yield f"{rel}:{getattr(node, 'name', '')}", doc
                count += 1
                if count >= limit:
                    return


def _summary(doc: str) -> tuple[str, str] | None:
    """(first sentence, the rest) when the first paragraph is one plain sentence."""
    first, _, rest = doc.partition("\n\n")
    first = " ".join(first.split())
    sentences = _SENTENCE_END.split(first)
    if len(sentences) != 1 or not 6 <= len(first.split()) <= 30 or len(rest) < 200:
        return None
    if any(ch in first for ch in "`:>=()[]{}"):
        return None
    return first, rest


def build(n_passages: int, per_class: int, seed: int = 7) -> Dataset:
    """The passages and ``per_class`` queries of each class (fewer if the corpus lacks them).

    Parsing site-packages takes minutes on a busy machine: the result is cached per size (and
    per installed-package set) under the user's cache directory.
    """
    root = _site_packages()
    stamp = hashlib.blake2b(
        "|".join(sorted(p.name for p in root.iterdir())).encode(), digest_size=6
    ).hexdigest()
    cache = _CACHE / f"quality-{n_passages}-{per_class}-{seed}-{stamp}.json"
    if cache.is_file():
        raw = json.loads(cache.read_text(encoding="utf-8"))
        return Dataset(raw["passages"], [Query(**q) for q in raw["queries"]], raw["sources"])
    data = _build(n_passages, per_class, seed)
    cache.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "passages": data.passages,
        "queries": [q.__dict__ for q in data.queries],
        "sources": data.sources,
    }
    cache.write_text(json.dumps(payload), encoding="utf-8")
    return data


def _build(n_passages: int, per_class: int, seed: int) -> Dataset:
    data = Dataset()
    natural: list[Query] = []
    seen: set[str] = set()
    for where, doc in docstrings(n_passages * 3):
        if len(data.passages) >= n_passages:
            break
        split = _summary(doc)
        text = (split[1] if split else doc)[:MAX_CHARS].strip()
        key = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        if key in seen:  # the same docstring inherited or copied in several places
            continue
        seen.add(key)
        pid = f"p{len(data.passages)}"
        data.passages[pid] = text
        data.sources[pid] = where
        if split:
            natural.append(Query(split[0], pid, "natural"))
    # Identifiers that occur in one passage only (as whole tokens, case-insensitively).
    holders: dict[str, set[str]] = {}
    for pid, text in data.passages.items():
        for ident in set(_IDENT.findall(text)):
            if _is_identifier(ident):
                holders.setdefault(ident.lower(), set()).add(pid)
    df = Counter(w for text in data.passages.values() for w in set(_WORD.findall(text.lower())))
    unique: list[tuple[str, str]] = []
    for pid, text in data.passages.items():
        for ident in sorted(set(_IDENT.findall(text))):
            if _is_identifier(ident) and holders[ident.lower()] == {pid}:
                unique.append((ident, pid))
                break  # one identifier per passage
    rng = np.random.default_rng(seed)
    picked = [unique[i] for i in sorted(rng.permutation(len(unique))[:per_class])]
    n = len(data.passages)
    for ident, pid in picked:
        data.queries.append(Query(ident, pid, "keyword"))
    for ident, pid in picked:
        words = Counter(_WORD.findall(data.passages[pid].lower()))
        ranked = sorted(
            (w for w in words if 5 <= df[w] <= n // 20 and w not in ident.lower()),
            key=lambda w: (-words[w] * math.log(n / df[w]), w),
        )
        data.queries.append(
            Query(f"{ident} {' '.join(ranked[:3])}".strip(), pid, "keyword+context")
        )
    chosen = sorted(rng.permutation(len(natural))[:per_class])
    data.queries += [natural[i] for i in chosen]
    return data


class CooccurrenceEmbeddings(Embeddings):
    """Random-indexing word vectors from document co-occurrence; a text is its words' mean.

    Fitted on the passages: each common word (in 5+ passages, not a stop word) gets a random
    index vector; its word vector is the sum, over the passages holding it, of those passages'
    index-vector sums. Two words used in the same passages point the same way, whatever their
    spelling; rare words (identifiers, codes) have no vector, so a text made only of them gets a
    hash-seeded random direction.
    """

    def __init__(self, passages: list[str], dim: int = 512, min_df: int = 5, seed: int = 3):
        """Fit the word vectors (about 1 s per 10,000 passages)."""
        self.dim = dim
        docs = [set(_WORD.findall(t.lower())) for t in passages]
        df = Counter(w for d in docs for w in d)
        stop = {w for w, c in df.items() if c > len(docs) // 4}  # function words
        vocab = sorted(w for w, c in df.items() if c >= min_df and w not in stop)
        self.index = {w: i for i, w in enumerate(vocab)}
        n = max(len(docs), 1)
        self.idf = np.array([math.log(n / df[w]) for w in vocab], dtype=np.float32)
        rng = np.random.default_rng(seed)
        basis = rng.normal(size=(len(vocab), dim)).astype(np.float32)
        doc_words = [
            np.array([self.index[w] for w in d if w in self.index], dtype=np.int64) for d in docs
        ]
        doc_vecs = np.stack([basis[ids].sum(0) if len(ids) else np.zeros(dim) for ids in doc_words])
        words = np.zeros((len(vocab), dim), dtype=np.float32)
        for doc_id, ids in enumerate(doc_words):
            words[ids] += doc_vecs[doc_id]
        words -= words.mean(0)  # remove the direction every word shares
        words /= np.linalg.norm(words, axis=1, keepdims=True) + 1e-9
        self.words = words

    def _embed(self, text: str) -> list[float]:
        counts = Counter(w for w in _WORD.findall(text.lower()) if w in self.index)
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).normal(size=self.dim).astype(np.float32) * 1e-3
        for w, c in counts.items():
            i = self.index[w]
            v += self.words[i] * (self.idf[i] * (1.0 + math.log(c)))
        return (v / np.linalg.norm(v)).tolist()  # type: ignore[no-any-return]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)
