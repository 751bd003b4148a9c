"""LocalBedrock's stand-in for the rerank models: a deterministic lexical scorer. Not a model.

A document's score depends on the query and that document only (not on the other documents of
the request), like a cross-encoder's, so results split over several requests merge by score
into the order one request would give. The score is a BM25-style term saturation over the
query's content words (stemmed, stop words dropped; see ``_standin_models.content_words``),
normalised into ``[0, 1)``:

    score = sum over distinct query words w in the document of
            tf(w) * (K1 + 1) / (tf(w) + K1 * (1 - B + B * length / AVERAGE_LENGTH))
            / (number of distinct query words * (K1 + 1))

so a document holding more of the query's words ranks higher, and between two holding the same
words the shorter one does. A document sharing no word with the query scores 0. Ties keep the
input order. Tests can predict the ranking from the words alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from langchain_tidb_bedrock.local._standin_models import content_words

__all__ = ["AVERAGE_LENGTH", "B", "K1", "rank", "relevance"]

K1 = 1.2
B = 0.75
AVERAGE_LENGTH = 40.0
"""A fixed document length (in content words) for the length normalisation: per-document
scores must not depend on the other documents of a request."""


def relevance(query: str, text: str) -> float:
    """The stand-in relevance score of ``text`` for ``query``, in ``[0, 1)``."""
    wanted = set(content_words(query))
    if not wanted:
        return 0.0
    counts = Counter(content_words(text))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / AVERAGE_LENGTH)
    total = sum(counts[w] * (K1 + 1) / (counts[w] + norm) for w in wanted if counts[w])
    return round(total / (len(wanted) * (K1 + 1)), 6)


def rank(query: str, texts: Sequence[str], top: int | None = None) -> list[tuple[int, float]]:
    """``(index, score)`` of the ``top`` best texts, highest score first, ties by index."""
    scored = sorted(
        ((i, relevance(query, text)) for i, text in enumerate(texts)),
        key=lambda item: (-item[1], item[0]),
    )
    return scored if top is None else scored[:top]
