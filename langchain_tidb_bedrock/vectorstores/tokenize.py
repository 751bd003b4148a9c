"""Text to search terms for the keyword leg of hybrid search: English, identifiers and CJK.

One analyzer for documents and queries (a term only matches what the same analyzer made):

* NFKC, then lower case; English stop words dropped, plurals folded (``indexes`` -> ``index``,
  ``queries`` -> ``query``), as Lucene's minimal English stemmer does;
* identifiers, error codes and versions stay whole *and* give their parts:
  ``ER_LOCK_DEADLOCK`` -> ``er_lock_deadlock``, ``er``, ``lock``, ``deadlock``;
  ``BedrockReranker`` -> ``bedrockreranker``, ``bedrock``, ``reranker``; ``v8.5.4`` stays one
  term (its parts too); ``boto3.some_name()`` gives ``boto3.some_name`` and ``some_name``
  with its parts; so an exact identifier scores on its rare whole form;
* CJK (Han, kana, Hangul) has no spaces: each run gives overlapping character bigrams (a lone
  character stands alone), Lucene's ``CJKBigramFilter`` approach, which needs no dictionary.

Terms longer than :data:`MAX_TERM_CHARS` are cut to it (the term table's column width).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter

__all__ = [
    "ANALYZER_VERSION",
    "MAX_TERM_CHARS",
    "STOP_WORDS",
    "chunk_terms",
    "chunks",
    "term_counts",
    "tokenize",
]

ANALYZER_VERSION = 2
"""Bumped when :func:`tokenize` changes what it emits (the term table records it)."""
MAX_TERM_CHARS = 64

# Lucene's EnglishAnalyzer default stop set.
_STOP = "a an and are as at be but by for if in into is it no not of on or s such t that the their"
STOP_WORDS = frozenset((_STOP + " then there these they this to was will with").split(" "))

_CJK = (
    r"\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
    r"\uf900-\ufaff\U00020000-\U0002fa1f"
)
# A word: letters/digits/underscore runs joined by '.', '-', '/' or ':' between two word
# characters ("v8.5.4", "utf-8", "amazon.rerank-v1:0"); CJK runs are matched on their own.
_TOKEN = re.compile(
    rf"[{_CJK}]+|(?:[^\W{_CJK}]+(?:[.\-/:][^\W{_CJK}]+)*)",
)
# The same pattern for ASCII text, where \w is [A-Za-z0-9_] and CJK cannot occur (~1.5x faster).
_ASCII_TOKEN = re.compile(r"\w+(?:[.\-/:]\w+)*", re.ASCII)
_PARTS = re.compile(r"[^\W_]+")
_JOINERS = re.compile(r"[.\-/:]")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+")
_IS_CJK = re.compile(rf"[{_CJK}]")


def _stem(word: str) -> str:
    """Lucene's EnglishMinimalStemmer (plurals only), plus ``-xes``/``-sses`` folded."""
    n = len(word)
    if n < 3 or word[-1] != "s" or not word.isalpha() or word[-2] in "us":
        return word
    if word[-2] == "e":
        if n > 3 and word[-3] == "i" and word[-4] not in "ae":
            return word[:-3] + "y"  # queries -> query
        if n > 4 and (word[-3] == "x" or word.endswith("sses")):
            return word[:-2]  # indexes -> index, classes -> class
        if word[-3] in "iaoe":
            return word  # does, goes
    return word[:-1]


def _segment_terms(raw: str, out: list[str]) -> None:
    """One segment between joiners: a plain word, or an identifier (whole, then its parts)."""
    whole = raw.lower()
    if whole in STOP_WORDS:
        return
    parts = _PARTS.findall(raw)
    if len(parts) == 1 and whole == parts[0].lower():
        # A plain word; camelCase inside it still gives its parts.
        camel = [c.lower() for c in _CAMEL.findall(raw)]
        out.append(_stem(whole)[:MAX_TERM_CHARS])
        if len(camel) > 1:
            out.extend(_stem(c)[:MAX_TERM_CHARS] for c in camel if c not in STOP_WORDS)
        return
    out.append(whole[:MAX_TERM_CHARS])
    for raw_part in parts:
        pieces = [c.lower() for c in _CAMEL.findall(raw_part)] or [raw_part.lower()]
        if len(pieces) > 1:
            out.append(raw_part.lower()[:MAX_TERM_CHARS])
        out.extend(_stem(p)[:MAX_TERM_CHARS] for p in pieces if p not in STOP_WORDS)


def _word_terms(raw: str, out: list[str]) -> None:
    segments = _JOINERS.split(raw)
    if len(segments) > 1:
        # "pkg.module.some_name": the dotted whole, then each segment as a word of its own,
        # so a query for "some_name" finds it.
        out.append(raw.lower()[:MAX_TERM_CHARS])
    for segment in segments:
        _segment_terms(segment, out)


def _cjk_terms(run: str, out: list[str]) -> None:
    if len(run) == 1:
        out.append(run)
        return
    out.extend(run[i : i + 2] for i in range(len(run) - 1))


@functools.lru_cache(maxsize=200_000)
def _token_terms(token: str) -> tuple[str, ...]:
    # Words repeat (Zipf): analysing each distinct token once makes ingest ~5x faster.
    out: list[str] = []
    if not token.isascii() and _IS_CJK.match(token):
        _cjk_terms(token, out)
    else:
        _word_terms(token, out)
    return tuple(out)


def tokenize(text: str) -> list[str]:
    """The terms of ``text``, in order, repeats kept (their count is the term frequency)."""
    if text.isascii():
        found = _ASCII_TOKEN.findall(text)
    else:
        found = _TOKEN.findall(unicodedata.normalize("NFKC", text))
    out: list[str] = []
    for token in found:
        out.extend(_token_terms(token))
    return out


def chunks(text: str) -> list[str]:
    """``text`` (NFKC) split at whitespace, the unit a writer analyses and caches.

    No token spans whitespace, so the terms of the chunks, concatenated, are
    :func:`tokenize`'s. A writer counts chunks with ``Counter`` (C speed) and analyses each
    distinct chunk once, instead of every token of every text.
    """
    return (text if text.isascii() else unicodedata.normalize("NFKC", text)).split()


def chunk_terms(chunk: str) -> list[str]:
    """The terms of one chunk of :func:`chunks`, in order, repeats kept."""
    out: list[str] = []
    for token in (_ASCII_TOKEN if chunk.isascii() else _TOKEN).findall(chunk):
        out.extend(_token_terms(token))
    return out


def term_counts(text: str) -> tuple[Counter[str], int]:
    """Term frequencies of ``text`` and its length in terms (BM25's document length)."""
    terms = tokenize(text)
    return Counter(terms), len(terms)
