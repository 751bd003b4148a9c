"""Hybrid search: a BM25 keyword leg that runs on every TiDB, fused with the vector leg.

TiDB's own full-text search (``FTS_MATCH_WORD``) exists only on some TiDB Cloud tiers and
regions; self-managed TiDB and the local server have none. So the store keeps its own inverted
index in three side tables, written in the same transactions as the rows:

* ``<table>_kw`` (bucket, seg, postings): one row per term-hash bucket (512) per *segment* (the
  rows of one write transaction); ``postings`` is a flat JSON array of integers, four per
  posting: the term's 40-bit key, the document's slot in the segment, tf, document length.
* ``<table>_kwdocs`` (id, seg, slot, dl): where each document's live postings are.
* ``<table>_kwseg`` (seg, n, live, total): documents written, still live, and their length.

Why packed postings: one row per (term, document), the textbook layout, costs ~50 rows per
document and measured 0.07-0.15x the ingest rate of the rows alone here; one row per
(bucket, segment) costs about two narrow rows per document. An upsert or delete moves or drops
the ``kwdocs`` row and subtracts the old version from its segment's counts in the same
transaction, so stale postings are ignored by the query (a segment with ``live < n`` has its
candidates checked against ``kwdocs``). Segments are never merged: after heavy upserts a
rebuild (drop the side tables, :func:`op_create_keyword_index`) reclaims the stale postings.

A query reads the buckets of its terms and the segment counts in one statement, scores BM25 in
Python (exact: IDF and average length over the live documents, Lucene's formula), and fetches
the best documents (with the metadata filter) in the same statement as the vector leg: two
round trips (three when stale segments hold candidates). Where the server has
``FTS_MATCH_WORD`` and the table a ``FULLTEXT`` index, that leg is used instead (one statement).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
import sqlalchemy as sa
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStoreRetriever

from langchain_tidb_bedrock.db.bulk import LoadRows
from langchain_tidb_bedrock.db.identifiers import quote_identifier
from langchain_tidb_bedrock.db.runner import Op, WriteStep, embed_query, read, write
from langchain_tidb_bedrock.errors import InvalidInputError, KeywordIndexMissingError
from langchain_tidb_bedrock.vectorstores.encoding import decode_metadata, encode_query_vector
from langchain_tidb_bedrock.vectorstores.filters import check_filter, compile_filter
from langchain_tidb_bedrock.vectorstores.queries import filter_key
from langchain_tidb_bedrock.vectorstores.schema import ID_LENGTH, DistanceStrategy
from langchain_tidb_bedrock.vectorstores.tokenize import (
    ANALYZER_VERSION,
    chunk_terms,
    chunks,
    tokenize,
)

if TYPE_CHECKING:
    from langchain_tidb_bedrock.vectorstores.search import Search
    from langchain_tidb_bedrock.vectorstores.table import TableState

__all__ = [
    "BM25",
    "Fusion",
    "KeywordTables",
    "Packed",
    "TiDBVectorStoreRetriever",
    "fts_hybrid_sql",
    "reciprocal_rank_fusion",
    "weighted_sum_ranking",
]

BUCKETS = 512
_MARK = "ltb-keyword"
_COMMENT = re.compile(rf"{_MARK} v(\d+) buckets=(\d+)")
_ID_BATCH = 1000
_KEY_MASK = (1 << 40) - 1
# Chunk -> term keys caches, per bucket count; cleared past this many chunks (~50 MB).
_CHUNKS: dict[int, dict[str, tuple[tuple[int, int], ...]]] = {}
_CHUNK_CACHE = 200_000
# Column orders of the bulk-loaded side rows (as in the INSERT statements below).
_DOCS_COLUMNS = ("seg", "slot", "id", "dl")
_POSTINGS_COLUMNS = ("bucket", "seg", "postings")
# FTS_MATCH_WORD does not exist (MySQL error 1305, FUNCTION does not exist).
_NO_FUNCTION = 1305

Fusion = Callable[
    [Sequence[tuple[Document, float]], Sequence[tuple[Document, float]], int],
    list[tuple[Document, float]],
]


@dataclass(frozen=True)
class BM25:
    """BM25 parameters (Lucene's defaults and IDF, which is never negative)."""

    k1: float = 1.2
    b: float = 0.75

    def idf(self, n_docs: int, df: int) -> float:
        """``ln(1 + (N - df + 0.5) / (df + 0.5))``."""
        return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))

    def term_score(self, tf: int, dl: int, avgdl: float) -> float:
        """The saturated, length-normalised term frequency (times IDF gives the score)."""
        norm = 1.0 - self.b + self.b * (dl / avgdl if avgdl > 0 else 0.0)
        return tf * (self.k1 + 1.0) / (tf + self.k1 * norm)


@functools.lru_cache(maxsize=65536)
def term_hash(term: str) -> int:
    """A 63-bit hash of a term (exact JSON integer; collisions ~ 1 in 10**18 per pair)."""
    digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# ---------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Packed:
    """One segment's analysis: each text's length in terms, and (bucket, postings JSON)."""

    lengths: list[int]
    postings: list[tuple[int, str]]


class KeywordTables:
    """The side tables of one store table, and the statements that maintain them."""

    def __init__(self, main: sa.Table, buckets: int = BUCKETS) -> None:
        """Name the side tables after ``main``; no I/O."""
        base = main.name
        self.main = main
        self.buckets = buckets
        self._keys: dict[str, tuple[int, int]] = {}  # term -> (bucket, key), a cache
        # Shared by the tables of one bucket count: a new store starts with warm analysis.
        self._chunks = _CHUNKS.setdefault(buckets, {})
        self.names = (f"{base}_kw", f"{base}_kwdocs", f"{base}_kwseg")
        for name in self.names:
            if len(name) > 64:
                msg = (
                    f"table name {base!r} is too long for the keyword index (its side table "
                    f"{name!r} would exceed 64 characters); use a name of at most 57"
                )
                raise InvalidInputError(msg)
        md = sa.MetaData()
        self.postings = sa.Table(
            self.names[0],
            md,
            sa.Column("bucket", sa.Integer, primary_key=True),
            sa.Column("seg", sa.BigInteger, primary_key=True),
            sa.Column("postings", sa.Text),
        )
        self.docs = sa.Table(
            self.names[1],
            md,
            sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
            sa.Column("seg", sa.BigInteger),
            sa.Column("slot", sa.Integer),
            sa.Column("dl", sa.Integer),
        )
        self.segs = sa.Table(
            self.names[2],
            md,
            sa.Column("seg", sa.BigInteger, primary_key=True),
            sa.Column("n", sa.Integer),
            sa.Column("live", sa.Integer),
            sa.Column("total", sa.BigInteger),
        )
        q = [quote_identifier(n) for n in self.names]
        self._insert_postings = (
            f"INSERT INTO {q[0]} (`bucket`, `seg`, `postings`) VALUES (%s, %s, %s)"
        )
        # REPLACE moves the id to its new (seg, slot): the old postings go stale. ``id`` is the
        # clustered key and (seg, slot) a plain index: with (seg, slot) clustered and a unique
        # index on id, this step cost as much as writing the postings (measured, 5,000 rows).
        self._replace_docs = (
            f"REPLACE INTO {q[1]} (`seg`, `slot`, `id`, `dl`) VALUES (%s, %s, %s, %s)"
        )
        self._insert_seg = (
            f"INSERT INTO {q[2]} (`seg`, `n`, `live`, `total`) VALUES (%s, %s, %s, %s)"
        )

    @property
    def comment(self) -> str:
        """The postings table's comment: it says what made the index (analyzer, buckets)."""
        return f"{_MARK} v{ANALYZER_VERSION} buckets={self.buckets}"

    @staticmethod
    def parse_comment(comment: str | None) -> int | None:
        """The bucket count recorded in a postings table's comment (None: not ours)."""
        match = _COMMENT.fullmatch(comment or "")
        return int(match.group(2)) if match else None

    def create_ddl(self, id_length: int | None) -> list[str]:
        """``CREATE TABLE IF NOT EXISTS`` for the three side tables."""
        ids = (
            f"VARCHAR({int(id_length or ID_LENGTH)}) CHARACTER SET utf8mb4 "
            "COLLATE utf8mb4_0900_bin NOT NULL"
        )
        q = [quote_identifier(n) for n in self.names]
        return [
            f"CREATE TABLE IF NOT EXISTS {q[0]} (`bucket` SMALLINT NOT NULL, "
            "`seg` BIGINT NOT NULL, `postings` MEDIUMTEXT NOT NULL, "
            f"PRIMARY KEY (`bucket`, `seg`)) COMMENT = '{self.comment}'",
            f"CREATE TABLE IF NOT EXISTS {q[1]} (`seg` BIGINT NOT NULL, `slot` INT NOT NULL, "
            f"`id` {ids}, `dl` INT NOT NULL, PRIMARY KEY (`id`), KEY (`seg`, `slot`))",
            f"CREATE TABLE IF NOT EXISTS {q[2]} (`seg` BIGINT NOT NULL PRIMARY KEY, "
            "`n` INT NOT NULL, `live` INT NOT NULL, `total` BIGINT NOT NULL)",
        ]

    def drop_ddl(self) -> str:
        """Drop the side tables."""
        return "DROP TABLE IF EXISTS " + ", ".join(quote_identifier(n) for n in self.names)

    # ------------------------------------------------------------------ writes

    def _retire(self, ids: sa.ColumnElement[bool], *, forget: bool = True) -> list[WriteStep]:
        """Subtract the documents matching ``ids`` from their segments, then forget them."""
        d, s = self.docs, self.segs
        gone = (
            sa.select(
                d.c.seg,
                sa.func.count().label("c"),
                sa.func.coalesce(sa.func.sum(d.c.dl), 0).label("l"),
            )
            .where(ids)
            .group_by(d.c.seg)
            .subquery("gone")
        )
        update = (
            sa.update(s)
            .where(s.c.seg == gone.c.seg)
            .values(live=s.c.live - gone.c.c, total=s.c.total - gone.c.l)
        )
        return [update, sa.delete(d).where(ids)] if forget else [update]

    def term_key(self, term: str) -> tuple[int, int]:
        """(bucket, key) of a term: the key is 40 more bits of its hash, stored per posting."""
        found = self._keys.get(term)
        if found is None:
            if len(self._keys) > 500_000:
                self._keys.clear()
            h = term_hash(term)
            found = self._keys[term] = (h % self.buckets, (h // self.buckets) & _KEY_MASK)
        return found

    def pack(self, texts: Sequence[str]) -> Packed:
        """Analyze ``texts`` as one segment: the CPU part of :meth:`write_steps`.

        Pure (no I/O, no shared state but a cache), so a writer may run it in a thread
        ahead of the transaction that stores it.
        """
        buckets: dict[int, list[int]] = {}
        lengths: list[int] = []
        known, keys_of = self._chunks, self._chunk_keys
        for slot, text in enumerate(texts):
            # Per distinct chunk, not per token: the same terms and frequencies as counting
            # tokenize(text) (a unit test holds them equal), measured ~1.5x faster.
            tf: dict[tuple[int, int], int] = {}
            length = 0
            for chunk, count in Counter(chunks(text)).items():
                keys = known.get(chunk)
                if keys is None:
                    keys = keys_of(chunk)
                length += count * len(keys)
                for pair in keys:
                    tf[pair] = tf.get(pair, 0) + count
            lengths.append(length)
            for (bucket, key), n in tf.items():
                entry = buckets.get(bucket)
                if entry is None:
                    entry = buckets[bucket] = []
                entry += (key, slot, n, length)
        payload = [(b, orjson.dumps(p).decode()) for b, p in sorted(buckets.items())]
        return Packed(lengths, payload)

    def _chunk_keys(self, chunk: str) -> tuple[tuple[int, int], ...]:
        """(bucket, key) of each term of a chunk, in order, cached (chunks repeat, Zipf)."""
        if len(self._chunks) > _CHUNK_CACHE:
            self._chunks.clear()
        found = self._chunks[chunk] = tuple(self.term_key(t) for t in chunk_terms(chunk))
        return found

    def write_steps(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        packed: Packed | None = None,
        *,
        bulk: bool = False,
    ) -> list[WriteStep]:
        """Index ``texts`` as a new segment, replacing earlier versions of these ids.

        A posting is four integers in its bucket's flat JSON array: the term key, the
        document's slot in the segment, the term frequency and the document length.
        ``packed``: :meth:`pack` of these texts, when computed ahead. ``bulk``: the document
        and postings rows as ``LOAD DATA`` steps (half the time of their multi-row INSERTs,
        which are the fallback), for a writer that bulk-loads its rows too.
        """
        if not ids:
            return []
        if packed is None or len(packed.lengths) != len(ids):
            packed = self.pack(texts)
        seg = uuid.uuid4().int >> 65  # random 63-bit segment id, one per transaction
        doc_rows = [
            (seg, slot, doc_id, length)
            for slot, (doc_id, length) in enumerate(zip(ids, packed.lengths, strict=True))
        ]
        steps: list[WriteStep] = []
        for start in range(0, len(ids), _ID_BATCH):
            chunk = list(ids[start : start + _ID_BATCH])
            steps += self._retire(self.docs.c.id.in_(chunk), forget=False)
        n, total = len(ids), sum(packed.lengths)
        rows = [(b, seg, payload) for b, payload in packed.postings]
        if bulk:
            # LOAD DATA ... REPLACE: the same end state as REPLACE INTO for kwdocs, and as
            # INSERT for the postings (their segment is new).
            steps.append(LoadRows(self.names[1], doc_rows, self._replace_docs, _DOCS_COLUMNS))
        else:
            steps.append((self._replace_docs, doc_rows))
        steps.append((self._insert_seg, [(seg, n, n, total)]))
        if rows and bulk:
            steps.append(LoadRows(self.names[0], rows, self._insert_postings, _POSTINGS_COLUMNS))
        elif rows:
            steps.append((self._insert_postings, rows))
        return steps

    def delete_ids_steps(
        self, ids: Sequence[str], condition: sa.ColumnElement[bool] | None
    ) -> list[WriteStep]:
        """Steps that retire these ids (only those matching ``condition`` when given)."""
        match: sa.ColumnElement[bool] = self.docs.c.id.in_(list(ids))
        if condition is not None:
            chosen = sa.select(self.main.c.id).where(self.main.c.id.in_(list(ids)), condition)
            match = self.docs.c.id.in_(chosen)
        return self._retire(match)

    def delete_filter_steps(self, condition: sa.ColumnElement[bool]) -> list[WriteStep]:
        """Steps that retire the documents matching a metadata filter (before the rows go)."""
        return self._retire(self.docs.c.id.in_(sa.select(self.main.c.id).where(condition)))

    def clear_steps(self) -> list[WriteStep]:
        """Empty the side tables."""
        return [sa.delete(self.postings), sa.delete(self.docs), sa.delete(self.segs)]

    # ------------------------------------------------------------------ reads

    def postings_read(self, query_buckets: Sequence[int]) -> sa.Select[Any]:
        """The query's buckets in live segments, and the live totals, in one statement.

        Rows: ``(kind, seg, payload)``: kind 0 a postings row, kind 1 a segment with stale
        postings (``live < n``), kind 2 the totals ``"live,length"``.
        """
        p, s = self.postings, self.segs
        live_segs = sa.select(s.c.seg).where(s.c.live > 0)
        rows = sa.select(sa.literal(0).label("kind"), p.c.seg, p.c.postings.label("payload")).where(
            p.c.bucket.in_(sorted(set(query_buckets))), p.c.seg.in_(live_segs)
        )
        dirty = sa.select(sa.literal(1), s.c.seg, sa.literal("")).where(
            s.c.live < s.c.n, s.c.live > 0
        )
        totals = sa.select(
            sa.literal(2),
            sa.literal(0),
            sa.func.concat(
                sa.func.coalesce(sa.func.sum(s.c.live), 0),
                ",",
                sa.func.coalesce(sa.func.sum(s.c.total), 0),
            ),
        )
        return sa.union_all(rows, dirty, totals)  # type: ignore[return-value]


# ---------------------------------------------------------------------------- scoring


Slot = tuple[int, int]  # (segment, slot): one indexed version of a document


@dataclass
class _Candidates:
    """Postings of the query's terms, grouped per indexed document version."""

    hits: dict[Slot, tuple[int, dict[int, int]]]  # (seg, slot) -> (dl, {key: tf})
    dirty: set[int]
    n_docs: int
    total_len: int


def gather(rows: Iterable[Any], keys: set[int]) -> _Candidates:
    """Decode the statement's rows: the query terms' postings, stale segments and totals."""
    hits: dict[Slot, tuple[int, dict[int, int]]] = {}
    dirty: set[int] = set()
    n_docs = total_len = 0
    for kind, seg, payload in rows:
        if kind == 0:
            flat = orjson.loads(payload)
            for i in range(0, len(flat), 4):
                if flat[i] in keys:
                    where = (int(seg), flat[i + 1])
                    entry = hits.get(where)
                    if entry is None:
                        entry = hits[where] = (flat[i + 3], {})
                    entry[1][flat[i]] = flat[i + 2]
        elif kind == 1:
            dirty.add(int(seg))
        else:
            live, length = str(payload).split(",")
            n_docs, total_len = int(live), int(length)
    return _Candidates(hits, dirty, n_docs, total_len)


def bm25_scores(cands: _Candidates, keys: Sequence[int], bm25: BM25) -> dict[Slot, float]:
    """BM25 of every (live) candidate; IDF and average length over the live documents."""
    df: dict[int, int] = dict.fromkeys(keys, 0)
    for _, tfs in cands.hits.values():
        for key in tfs:
            df[key] += 1
    n = cands.n_docs
    avgdl = cands.total_len / n if n else 0.0
    idf = {key: bm25.idf(n, df[key]) for key in keys}
    return {
        where: sum(idf[key] * bm25.term_score(tf, dl, avgdl) for key, tf in tfs.items())
        for where, (dl, tfs) in cands.hits.items()
    }


def _slots_in(kt: KeywordTables, slots: Sequence[Slot]) -> sa.ColumnElement[bool]:
    return sa.tuple_(kt.docs.c.seg, kt.docs.c.slot).in_([tuple(x) for x in slots])


def op_keyword_candidates(
    kt: KeywordTables, query: str, bm25: BM25 | None = None
) -> Op[list[tuple[Slot, float]]]:
    """Every live indexed document matching a query term, with its BM25 score, best first."""
    terms = list(dict.fromkeys(tokenize(query)))
    if not terms:
        return []
    where = [kt.term_key(t) for t in terms]
    keys = [key for _, key in where]
    rows = yield from read(kt.postings_read([bucket for bucket, _ in where]))
    cands = gather(rows, set(keys))
    stale = [x for x in cands.hits if x[0] in cands.dirty]
    if stale:
        # Segments with retired documents: keep the versions kwdocs still points at.
        current: set[Slot] = set()
        for start in range(0, len(stale), _ID_BATCH):
            found = yield from read(
                sa.select(kt.docs.c.seg, kt.docs.c.slot).where(
                    _slots_in(kt, stale[start : start + _ID_BATCH])
                )
            )
            current.update((int(r.seg), int(r.slot)) for r in found)
        for x in stale:
            if x not in current:
                del cands.hits[x]
    scores = bm25_scores(cands, keys, bm25 or BM25())
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def op_keyword_scores(
    kt: KeywordTables, query: str, bm25: BM25 | None = None
) -> Op[list[tuple[str, float]]]:
    """Every document matching a query term, by id, with its BM25 score, best first."""
    scored = yield from op_keyword_candidates(kt, query, bm25)
    ids: dict[Slot, str] = {}
    slots = [x for x, _ in scored]
    for start in range(0, len(slots), _ID_BATCH):
        rows = yield from read(
            sa.select(kt.docs.c.seg, kt.docs.c.slot, kt.docs.c.id).where(
                _slots_in(kt, slots[start : start + _ID_BATCH])
            )
        )
        ids.update(((int(r.seg), int(r.slot)), r.id) for r in rows)
    return sorted(((ids[x], score) for x, score in scored), key=lambda kv: (-kv[1], kv[0]))


# ---------------------------------------------------------------------------- fusion


def reciprocal_rank_fusion(
    vector_results: Sequence[tuple[Document, float]],
    keyword_results: Sequence[tuple[Document, float]],
    k: int,
    *,
    rrf_k: float = 60.0,
    vector_weight: float = 1.0,
    keyword_weight: float = 1.0,
) -> list[tuple[Document, float]]:
    """Reciprocal rank fusion: ``sum(weight / (rrf_k + rank))``, ranks from 1 (Cormack 2009).

    Args:
        vector_results: (document, distance) pairs, nearest first.
        keyword_results: (document, BM25 score) pairs, best first.
        k: how many fused results to return.
        rrf_k: the RRF constant (60 in the paper, langchain-postgres and pytidb).
        vector_weight: multiplies the vector leg's contributions.
        keyword_weight: multiplies the keyword leg's contributions.

    Returns:
        (document, fused score) pairs, best first; ties broken by id.
    """
    docs: dict[str, Document] = {}
    fused: dict[str, float] = {}
    for results, weight in ((vector_results, vector_weight), (keyword_results, keyword_weight)):
        for rank, (doc, _) in enumerate(results, start=1):
            key = str(doc.id)
            docs.setdefault(key, doc)
            fused[key] = fused.get(key, 0.0) + weight / (rrf_k + rank)
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [(docs[key], score) for key, score in best]


def _min_max(values: Sequence[float], invert: bool) -> list[float]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [1.0] * len(values)
    scaled = [(v - lo) / (hi - lo) for v in values]
    return [1.0 - s for s in scaled] if invert else scaled


def weighted_sum_ranking(
    vector_results: Sequence[tuple[Document, float]],
    keyword_results: Sequence[tuple[Document, float]],
    k: int,
    *,
    vector_weight: float = 0.5,
    keyword_weight: float = 0.5,
) -> list[tuple[Document, float]]:
    """Weighted sum of normalised scores (langchain-postgres's default fusion, 0.5 each).

    Distances are min-max normalised and inverted (nearest 1, farthest fetched 0), as
    langchain-postgres does. Keyword scores are divided by the best one: BM25 has a true zero,
    so every match keeps a share (min-max would score the weakest match like a non-match).
    A document missing from one leg gets 0 from it.
    """
    docs: dict[str, Document] = {}
    fused: dict[str, float] = {}
    best_kw = max((score for _, score in keyword_results), default=0.0)
    legs = (
        (vector_results, vector_weight, _min_max([d for _, d in vector_results], invert=True)),
        (
            keyword_results,
            keyword_weight,
            [score / best_kw if best_kw > 0 else 0.0 for _, score in keyword_results],
        ),
    )
    for results, weight, normed in legs:
        for (doc, _), value in zip(results, normed, strict=True):
            key = str(doc.id)
            docs.setdefault(key, doc)
            fused[key] = fused.get(key, 0.0) + weight * value
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [(docs[key], score) for key, score in best]


FUSIONS: dict[str, Fusion] = {"rrf": reciprocal_rank_fusion, "weighted": weighted_sum_ranking}


def resolve_fusion(fusion: str | Fusion) -> Fusion:
    """A fusion function from its name ("rrf", "weighted") or a callable."""
    if callable(fusion):
        return fusion
    if fusion in FUSIONS:
        return FUSIONS[fusion]
    msg = f"fusion must be 'rrf', 'weighted' or a callable, got {fusion!r}"
    raise InvalidInputError(msg)


# ---------------------------------------------------------------------------- FTS_MATCH_WORD


def fts_probe_sql(table: str) -> str:
    """A statement that fails with 1305 where ``FTS_MATCH_WORD`` does not exist."""
    return f"SELECT 1 FROM {quote_identifier(table)} WHERE FTS_MATCH_WORD(%s, `document`) LIMIT 1"


def fts_index_ddl(table: str) -> str:
    """The ``FULLTEXT`` index TiDB Cloud needs for ``FTS_MATCH_WORD`` (multilingual parser)."""
    return (
        f"ALTER TABLE {quote_identifier(table)} ADD FULLTEXT INDEX "
        f"{quote_identifier(f'ftx_{table}'[:64])} (`document`) WITH PARSER MULTILINGUAL "
        "ADD_COLUMNAR_REPLICA_ON_DEMAND"
    )


def fts_leg(
    main: sa.Table, fetch_k: int, condition: sa.ColumnElement[bool] | None
) -> sa.Select[Any]:
    """The ``FTS_MATCH_WORD`` leg: BM25 on TiDB Cloud, the query text bound as ``kq``.

    TiDB requires the match call in ``ORDER BY`` to be the one in ``WHERE``, with a LIMIT.
    """
    # Built by name, not through sa.func: a library that registers its own FTS_MATCH_WORD
    # function (pytidb does) would otherwise change how the statement renders.
    match = sa.sql.functions.Function(
        "FTS_MATCH_WORD", sa.bindparam("kq", type_=sa.String), main.c.document, type_=sa.Float
    )
    stmt = sa.select(
        main.c.id,
        main.c.document,
        main.c.meta,
        sa.null().label("distance"),
        match.label("score"),
    ).where(match)
    if condition is not None:
        stmt = stmt.where(condition)
    return stmt.order_by(match.desc()).limit(fetch_k)


def fts_hybrid_sql(
    main: sa.Table,
    vector: sa.Select[Any],
    fetch_k: int,
    condition: sa.ColumnElement[bool] | None,
) -> sa.CompoundSelect:
    """Both legs in one statement: the vector leg's rows, then the ``FTS_MATCH_WORD`` rows."""
    v = vector.subquery("vec")
    vec = sa.select(v.c.id, v.c.document, v.c.meta, v.c.distance, sa.null().label("score"))
    f = fts_leg(main, fetch_k, condition).subquery("fts")
    return sa.union_all(vec, sa.select(f.c.id, f.c.document, f.c.meta, f.c.distance, f.c.score))


def is_missing_function(exc: BaseException) -> bool:
    """Whether a DB error says ``FTS_MATCH_WORD`` does not exist here."""
    orig = getattr(exc, "orig", exc)
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] == _NO_FUNCTION


def op_has_fulltext(table_name: str) -> Op[bool]:
    """Whether ``FTS_MATCH_WORD`` runs on this table (the function and a FULLTEXT index)."""
    try:
        yield from read(fts_probe_sql(table_name).replace("%s", ":q"), {"q": "probe"})
    except sa.exc.DBAPIError:
        # 1305: no such function (self-managed TiDB); anything else: no usable FULLTEXT index.
        return False
    return True


# ---------------------------------------------------------------------------- hybrid


def _doc(row: Any) -> Document:
    return Document(id=row.id, page_content=row.document or "", metadata=decode_metadata(row.meta))


def vector_leg_rows(rows: Iterable[Any]) -> list[tuple[Document, float]]:
    """(document, distance) of the vector leg's rows, nearest first, NULL distances dropped."""
    found = [(_doc(r), float(r.distance)) for r in rows if r.distance is not None]
    return sorted(found, key=lambda pair: pair[1])


def check_k(name: str, value: object) -> int:
    """A positive integer argument, or an error naming it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        msg = f"{name} must be a positive integer, got {value!r}"
        raise InvalidInputError(msg)
    return value


def vector_leg(
    search: Search, fetch_k: int, filter: Mapping[str, Any] | None, filter_strategy: str | None
) -> tuple[sa.Select[Any], Callable[[Sequence[Any]], None]]:
    """The vector leg's statement (the store's own plan for the filter) and what to learn."""
    from langchain_tidb_bedrock.vectorstores import search as search_module  # imports table

    q = search.table.queries
    if not filter:
        return q.knn_template(fetch_k), lambda rows: None
    if search.resolve_strategy(filter_strategy) == "post":
        return q.postfilter_template(fetch_k, max(fetch_k * 10, 20), filter), lambda rows: None
    plan = search_module._PLAN
    key = (q, plan, filter_key(filter))
    branch = search.branches.get(key)
    stmt = q.prefilter_template(fetch_k, filter, plan=plan, branch=branch)
    if branch is not None:
        return stmt, lambda rows: None
    return stmt, lambda rows: search.branches.learn(key, rows)


def _docs_rows(
    kt: KeywordTables | None,
    vector: sa.Select[Any] | None,
    slots: Sequence[Slot],
    condition: sa.ColumnElement[bool] | None,
) -> Any:
    """The vector leg's rows (leg 0) and the keyword candidates' documents (leg 1, filtered).

    The vector leg keeps its ``plan`` column (the exact filtered search learns its branch
    from it); keyword rows carry NULL there, and their (seg, slot) to find their scores.
    """
    parts: list[sa.Select[Any]] = []
    if vector is not None:
        v = vector.subquery("vec")
        plan = v.c.plan if "plan" in v.c else sa.null()
        parts.append(
            sa.select(
                v.c.id,
                v.c.document,
                v.c.meta,
                v.c.distance,
                sa.literal(0).label("leg"),
                plan.label("plan"),
                sa.null().label("seg"),
                sa.null().label("slot"),
            )
        )
    if kt is not None and slots:
        main, d = kt.main, kt.docs
        kw = (
            sa.select(
                main.c.id,
                main.c.document,
                main.c.meta,
                sa.null().label("distance"),
                sa.literal(1).label("leg"),
                sa.null().label("plan"),
                d.c.seg,
                d.c.slot,
            )
            .select_from(d.join(main, main.c.id == d.c.id))
            .where(_slots_in(kt, slots))
        )
        if condition is not None:
            kw = kw.where(condition)
        parts.append(kw)
    return parts[0] if len(parts) == 1 else sa.union_all(*parts)


def op_hybrid_legs(
    search: Search,
    query: str,
    fetch_k: int,
    filter: Mapping[str, Any] | None,
    *,
    filter_strategy: str | None = None,
    bm25: BM25 | None = None,
) -> Op[tuple[list[tuple[Document, float]], list[tuple[Document, float]]]]:
    """Both legs, each best first: (document, distance) and (document, keyword score).

    Raises:
        KeywordIndexMissingError: the table has neither the keyword index nor ``FULLTEXT``.
    """
    table = search.table
    if not isinstance(query, str):
        msg = f"query must be a string, got {type(query).__name__}"
        raise InvalidInputError(msg)
    check_k("fetch_k", fetch_k)
    filter = check_filter(filter)
    info = yield from table.op_info()
    if info is None:
        return [], []
    main = table.table
    condition = compile_filter(filter, main.c.meta) if filter else None
    kt = table.keyword
    fulltext = False
    if kt is None:
        if table.fulltext is None:
            table.fulltext = yield from op_has_fulltext(table.name)
        fulltext = table.fulltext
        if not fulltext:
            raise KeywordIndexMissingError(table.name)
    # Keyword candidates first (no embedding needed), then one statement for the vector leg
    # and the candidates' documents.
    scored: list[tuple[Slot, float]] = []
    if kt is not None:
        scored = yield from op_keyword_candidates(kt, query, bm25)
    vector = yield from embed_query(query)
    params: dict[str, Any] = {
        "qv": encode_query_vector(
            vector, table.dimension, reject_zero=table.strategy is DistanceStrategy.COSINE
        )
    }
    stmt, learn = vector_leg(search, fetch_k, filter, filter_strategy)
    if fulltext:
        params["kq"] = query
        rows = yield from read(fts_hybrid_sql(main, stmt, fetch_k, condition), params)
        vec_rows = [r for r in rows if r.score is None]
        learn(vec_rows)
        keyword = [(_doc(r), float(r.score)) for r in rows if r.score is not None]
        return vector_leg_rows(vec_rows), sorted(keyword, key=lambda p: -p[1])
    score_of = dict(scored)
    # Unfiltered, every candidate exists: fetch the best fetch_k. Filtered, the filter
    # decides: fetch a wider slice, and more slices while too few match.
    step = fetch_k if condition is None else max(fetch_k * 4, 100)
    slots = [x for x, _ in scored[:step]]
    rows = yield from read(_docs_rows(kt, stmt, slots, condition), params)
    vec_rows = [r for r in rows if r.leg == 0]
    learn(vec_rows)
    found = [r for r in rows if r.leg == 1]
    start = step
    while condition is not None and len(found) < fetch_k and start < len(scored):
        more = [x for x, _ in scored[start : start + step]]
        found += yield from read(_docs_rows(kt, None, more, condition))
        start += step
    keyword = sorted(
        ((_doc(r), score_of[(int(r.seg), int(r.slot))]) for r in found),
        key=lambda p: (-p[1], str(p[0].id)),
    )
    return vector_leg_rows(vec_rows), keyword[:fetch_k]


def op_hybrid(
    search: Search,
    query: str,
    k: int,
    fetch_k: int,
    filter: Mapping[str, Any] | None,
    fusion: str | Fusion,
    *,
    filter_strategy: str | None = None,
) -> Op[list[tuple[Document, float]]]:
    """Hybrid search: both legs, then ``fusion`` to the best k (document, fused score)."""
    check_k("k", k)
    fuse = resolve_fusion(fusion)
    vector, keyword = yield from op_hybrid_legs(
        search, query, max(fetch_k, k), filter, filter_strategy=filter_strategy
    )
    return fuse(vector, keyword, k)


# ---------------------------------------------------------------------------- lifecycle


def op_create_keyword_index(table: TableState, batch_size: int = 500) -> Op[int]:
    """Create the side tables if missing and index every stored row; returns rows indexed.

    Existing documents are read in id order, ``batch_size`` at a time, and each batch is
    indexed in its own transaction (re-running it is safe: a document indexed again replaces
    its earlier postings). Writes by this store are indexed from the moment the tables exist;
    other processes' stores see the index when they next open the table.
    """
    check_k("batch_size", batch_size)
    info = yield from table.op_info()
    if info is None:
        msg = f"table {table.name!r} does not exist yet: add documents or call create_table()"
        raise InvalidInputError(msg)
    kt = table.keyword or KeywordTables(table.table)
    for ddl in kt.create_ddl(info.id_length):
        yield from write(sa.text(ddl))
    table.keyword = kt
    main = table.table
    done = 0
    last: str | None = None
    while True:
        page = sa.select(main.c.id, main.c.document).order_by(main.c.id).limit(batch_size)
        if last is not None:
            page = page.where(main.c.id > last)
        rows = yield from read(page)
        if not rows:
            return done
        yield from write(*kt.write_steps([r.id for r in rows], [r.document or "" for r in rows]))
        done += len(rows)
        last = rows[-1].id


def op_drop_keyword_tables(table: TableState) -> Op[None]:
    """Drop the side tables (before the main table goes)."""
    kt = table.keyword
    if kt is None:
        rows = yield from read(KEYWORD_TABLE_QUERY, {"name": f"{table.name}_kw"})
        if not rows or KeywordTables.parse_comment(rows[0][0]) is None:
            return
        kt = KeywordTables(table.table)
    yield from write(sa.text(kt.drop_ddl()))
    table.keyword = None


KEYWORD_TABLE_QUERY = sa.text(
    "SELECT TABLE_COMMENT FROM INFORMATION_SCHEMA.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :name"
)


class TiDBVectorStoreRetriever(VectorStoreRetriever):
    """``VectorStoreRetriever`` that also runs ``search_type="hybrid"`` (vector + keyword).

    ``search_kwargs`` go to :meth:`TiDBVectorStore.hybrid_search` (``k``, ``fetch_k``,
    ``filter``, ``fusion``).
    """

    allowed_search_types: ClassVar[Collection[str]] = (
        "similarity",
        "similarity_score_threshold",
        "mmr",
        "hybrid",
    )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            store: Any = self.vectorstore
            docs: list[Document] = store.hybrid_search(query, **(self.search_kwargs | kwargs))
            return docs
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.search_type == "hybrid":
            store: Any = self.vectorstore
            found: list[Document] = await store.ahybrid_search(
                query, **(self.search_kwargs | kwargs)
            )
            return found
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)
