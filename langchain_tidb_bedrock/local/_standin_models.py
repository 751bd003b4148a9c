"""Deterministic stand-ins for the models LocalBedrock serves. They are not models.

* :func:`embed` - feature hashing of lowercase word unigrams and character 3-grams with a stable
  hash (blake2b), signed and projected onto the requested number of dimensions. Words are Unicode
  words (Cyrillic, Greek, accented Latin...); scripts written without spaces (Chinese, Japanese,
  Korean) count each character and each pair of neighbouring characters as a word. Texts that share
  words share features, so their vectors are close in cosine terms: good enough for retrieval tests.
  Repeated features count sublinearly (1 + log n), and a definition ("X is a ...") and "What is
  X?" share one more feature.
* :func:`generate` - an extractive "answer": it reads numbered passages (``[1] ...``) and the
  question out of the prompt and returns the best-overlapping sentences with their citations.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

PREFIX = "(LocalBedrock stand-in) "
I_DONT_KNOW = PREFIX + "I don't know based on the provided context."

# Han, kana, Hangul: written without spaces, so a run of them is split into characters below.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# A Unicode word (letters and digits; "_" splits, as in VEC_COSINE_DISTANCE), or a CJK run.
_WORD = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+(?:'[^\W\d_{_CJK}]+)?")
_CJK_RUN = re.compile(rf"[{_CJK}]+")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_PASSAGE = re.compile(r"^\s*\[(\d+)\]\s+(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPECIAL = re.compile(r"<\|[a-z_]+\|>")
# Provenance lines such as "(source: docs/tidb.md, chunk 0)" are not content to quote.
_SOURCE_LINE = re.compile(r"^\s*\(source:.*\)\s*$", re.IGNORECASE)

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves s t don ll m re ve d y
    tell please explain describe give me list""".split()  # noqa: SIM905 - a word block reads better
)

_WORD_WEIGHT = 1.0
_NGRAM_WEIGHT = 0.35


def count_tokens(text: str) -> int:
    """Rough token count: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def _cjk_words(run: str) -> list[str]:
    # No spaces to split on: characters and neighbouring pairs stand in for words, so
    # "数据库" meets "分布式数据库" through "数", "据", "数据" and "据库".
    if len(run) == 1:
        return [run]
    return [*run, *(run[i : i + 2] for i in range(len(run) - 1))]


def words(text: str) -> list[str]:
    """Lowercase words of ``text`` (for CJK runs: characters and character pairs)."""
    found: list[str] = []
    for token in _WORD.findall(text):
        if _CJK_RUN.fullmatch(token):
            found.extend(_cjk_words(token))
        else:
            found.append(token.lower())
    return found


def _stem(word: str) -> str:
    # A light plural strip so "vectors" meets "vector"; enough for the stand-in.
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """Stemmed lowercase words of ``text`` that are not stop words, in order."""
    return [_stem(w) for w in words(text) if w not in STOP_WORDS]


@lru_cache(maxsize=65536)
def _slot(feature: str) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    return value >> 1, (1.0 if value & 1 else -1.0)


# A definition ("X is a ...", "X is an ...") and a question asking for one ("What is X?") share a
# feature, so the definition ranks first, as it would with a real model. (The word after "is" in
# "TiDB is MySQL compatible" is not an article: a description, not a definition.)
_DEFINES = re.compile(r"\b([^\W_]+)\s+(?:is|are)\s+(?:a|an)\s", re.IGNORECASE)
_ASKS_DEFINITION = re.compile(
    r"\bwhat\s+(?:is|are)\s+(?:a\s+|an\s+|the\s+)?([^\W_]+)\s*\??\s*$", re.IGNORECASE
)
_DEFINITION_WEIGHT = 2.0


def _definition_subjects(text: str) -> set[str]:
    found = {m.group(1) for m in _DEFINES.finditer(text)}
    asked = _ASKS_DEFINITION.search(text.strip())
    if asked:
        found.add(asked.group(1))
    return {_stem(w.lower()) for w in found if w.lower() not in STOP_WORDS}


def _features(text: str) -> Iterable[tuple[str, float]]:
    for subject in _definition_subjects(text):
        yield "d:" + subject, _DEFINITION_WEIGHT
    for word in words(text):
        if word in STOP_WORDS:
            # "what", "is", "the" would dominate short questions and pull in unrelated passages.
            continue
        yield "w:" + _stem(word), _WORD_WEIGHT
        if _CJK_RUN.match(word):
            continue  # a CJK "word" is one or two characters: its n-grams add nothing
        padded = f"#{word}#"
        for i in range(len(padded) - 2):
            yield "c:" + padded[i : i + 3], _NGRAM_WEIGHT


def embed(text: str, dimensions: int, *, normalize: bool) -> list[float]:
    """A hashed bag-of-features vector of ``dimensions`` floats (L2-normalised if asked)."""
    counts: dict[str, list[float]] = {}
    for feature, weight in _features(text):
        entry = counts.setdefault(feature, [weight, 0.0])
        entry[1] += 1
    vec = np.zeros(dimensions, dtype=np.float64)
    for feature, (weight, n) in counts.items():
        # Sublinear term frequency: a word said three times is not three times the topic.
        slot, sign = _slot(feature)
        vec[slot % dimensions] += sign * weight * (1.0 + math.log(n))
    if not vec.any():  # punctuation only: still a valid, non-zero vector
        vec[_slot("empty")[0] % dimensions] = 1.0
    if normalize:
        vec /= float(np.linalg.norm(vec))
    else:
        vec /= 10.0  # raw Titan vectors are unnormalised but small
    rounded: list[float] = np.round(vec, 7).tolist()
    return rounded


def binary(vector: Sequence[float]) -> list[int]:
    """Titan's binary embedding: 1 where the float component is positive."""
    return [1 if x > 0 else 0 for x in vector]


# ---------------------------------------------------------------- generation


def _clean(prompt: str) -> str:
    return _SPECIAL.sub("\n", prompt)


def _passages(text: str) -> list[tuple[str, str]]:
    """``[n] text`` passages; a passage runs on until the next ``[n]`` line or a blank line."""
    found: list[tuple[str, str]] = []
    current: list[str] | None = None
    label = ""
    for line in text.splitlines():
        match = _PASSAGE.match(line)
        if match:
            if current is not None:
                found.append((label, " ".join(current)))
            label, current = match.group(1), [match.group(2).strip()]
        elif current is not None and _SOURCE_LINE.match(line):
            continue
        elif current is not None and line.strip():
            current.append(line.strip())
        elif current is not None:
            found.append((label, " ".join(current)))
            current = None
    if current is not None:
        found.append((label, " ".join(current)))
    return found


def _section(text: str, marker: str) -> str | None:
    """The text after the last ``marker`` up to the next blank line (None if absent)."""
    at = text.rfind(marker)
    if at < 0:
        return None
    rest = text[at + len(marker) :].strip()
    return re.split(r"\n\s*\n|\n\s*(?:Answer|Standalone question)\s*:", rest)[0].strip()


def _question(text: str, last_user: str) -> str:
    found = _section(text, "Question:")
    if found is not None:
        return found
    # No "Question:" marker (a user's own prompt): the last line that asks, else the last line.
    lines = [line.strip() for line in (last_user or text).splitlines() if line.strip()]
    asking = [line for line in lines if line.endswith("?")]
    return (asking or lines or [""])[-1]


_ASKED_LINE = re.compile(r"\s*(?:question|answer)\s*:", re.IGNORECASE)


def _free_passages(text: str, question: str) -> list[tuple[str, str]]:
    """Context in any format: every paragraph except the question, unlabelled."""
    found: list[tuple[str, str]] = []
    for paragraph in re.split(r"\n\s*\n", text):
        kept = [
            re.sub(r"^\s*(?:context|documents?|passages?)\s*:\s*", "", line, flags=re.I)
            for line in paragraph.splitlines()
            if line.strip() and question not in line and not _ASKED_LINE.match(line)
        ]
        if kept:
            found.append(("", " ".join(" ".join(kept).split())))
    return found


def answer(text: str, last_user: str) -> str:
    """Extractive answer: the best-overlapping passage sentences with ``[n]`` citations."""
    question = _question(text, last_user)
    asked = set(content_words(question))
    scored: list[tuple[int, int, str, str]] = []
    order = 0
    # ``[n] text`` passages (this package's prompt), else any context around the question.
    for label, passage in _passages(text) or _free_passages(text, question):
        for raw in _SENTENCE_END.split(passage):
            sentence = raw.strip()
            if not sentence:
                continue
            overlap = len(asked & set(content_words(sentence)))
            if overlap:
                scored.append((-overlap, order, label, sentence))
            order += 1
    if not scored:
        return I_DONT_KNOW
    scored.sort()
    best = -scored[0][0]
    picked = [scored[0]]
    if len(scored) > 1 and -scored[1][0] * 2 >= best:
        picked.append(scored[1])
    picked.sort(key=lambda item: item[1])  # keep document order in the answer
    return PREFIX + " ".join(
        f"{sentence} [{label}]" if label else sentence for _, _, label, sentence in picked
    )


def rewrite(text: str) -> str:
    """Standalone question: the follow-up plus the last human turn's missing content words."""
    follow_up = _section(text, "Follow-up question:") or ""
    start = text.rfind("Chat history:")
    history = text[start:].split("Follow-up question:", maxsplit=1)[0] if start >= 0 else ""
    human = ""
    for line in history.splitlines():
        match = re.match(r"\s*(?:Human|User)\s*:\s*(.*)", line, re.IGNORECASE)
        if match:
            human = match.group(1)
    have = set(content_words(follow_up))
    extra: list[str] = []
    for word in _WORD.findall(human):
        key = _stem(word.lower())
        if word.lower() in STOP_WORDS or key in have:
            continue
        have.add(key)
        extra.append(word)
    return " ".join([follow_up, *extra]).strip()


def generate(text: str, last_user: str = "") -> str:
    """The stand-in's reply to a prompt: a rewritten question or an extractive answer."""
    text = _clean(text)
    if "Follow-up question:" in text:
        return rewrite(text)
    return answer(text, _clean(last_user))


def apply_limits(
    reply: str, *, max_tokens: int | None, stop_sequences: Sequence[str] = ()
) -> tuple[str, str]:
    """Cut ``reply`` before the first stop sequence or after ``max_tokens`` words.

    Returns:
        The cut reply and why it ended: ``"stop_sequence"``, ``"max_tokens"`` or ``"end_turn"``.
    """
    cuts = [reply.find(s) for s in stop_sequences if s and s in reply]
    if cuts:
        return reply[: min(cuts)], "stop_sequence"
    if max_tokens is not None:
        parts = reply.split(" ")
        if len(parts) > max_tokens:
            return " ".join(parts[:max_tokens]), "max_tokens"
    return reply, "end_turn"


def pieces(reply: str) -> list[str]:
    """Split a reply into streaming deltas (one word with its trailing space each)."""
    return re.findall(r"\S+\s*|\s+", reply) or [""]
