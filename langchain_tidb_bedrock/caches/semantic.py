"""``TiDBSemanticCache``: an LLM cache that also answers prompts that mean the same thing."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from langchain_core.caches import RETURN_VAL_TYPE
from sqlalchemy.engine import URL

from langchain_tidb_bedrock.caches._codec import (
    decode_generations,
    encode_generations,
    key_hash,
    prompt_text,
)
from langchain_tidb_bedrock.caches._table import check_size
from langchain_tidb_bedrock.caches.base import TiDBCacheBase
from langchain_tidb_bedrock.db.engine import TiDBEngine
from langchain_tidb_bedrock.db.runner import Op, embed_query, read
from langchain_tidb_bedrock.db.tables import NOT_EXPIRED
from langchain_tidb_bedrock.errors import InvalidInputError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

__all__ = ["TiDBSemanticCache"]

_RECENT_VECTORS = 256  # prompts embedded by a missed lookup, reused by the update that follows


def _vector_text(vector: list[float]) -> str:
    if not vector or not all(math.isfinite(x) for x in vector):
        msg = "the embedding model returned an empty vector or one with non-finite values"
        raise InvalidInputError(msg)
    return orjson.dumps([float(x) for x in vector]).decode()


class TiDBSemanticCache(TiDBCacheBase):
    """Semantic LLM cache on TiDB: a prompt close enough in meaning to a cached one is a hit.

    Setup:
        Point it at TiDB like the vector store, and give it an embedding model:

        ```python
        from langchain_core.globals import set_llm_cache

        from langchain_tidb_bedrock import BedrockTitanEmbeddings, TiDBSemanticCache

        set_llm_cache(TiDBSemanticCache(BedrockTitanEmbeddings(dimensions=256)))
        ```

    Key init args:
        embeddings: Embeddings
            Embeds each prompt (its text: see ``prompt_to_text``).
        engine: TiDBEngine | None
            A shared engine (never closed by the cache).
        connection_string: str | None
            A TiDB URL for a private engine; defaults to the ``TIDB_*`` environment.
        table_name: str
            The table (default ``langchain_semantic_cache``), created on the first update.
        score_threshold: float
            The least **cosine similarity** (``1 - cosine distance``, from -1 to 1; higher is
            closer) between a prompt and a cached prompt for a hit. Default 0.9. It is a
            similarity, not a distance: raising it makes hits rarer and safer.
        ttl: float | timedelta | None
            How long an entry answers (seconds); None keeps entries until cleared.
        prompt_to_text: Callable[[str], str] | None
            The text embedded for a prompt. By default a chat model's serialised conversation
            becomes ``role: text`` lines (all messages, so different histories stay apart) and
            a plain prompt is used as is.

    Lookup:
        The same prompt to the same model configuration is found by its hash first (no
        embedding call). Otherwise one statement searches only the rows of this ``llm_string``
        (primary-key prefix), nearest first, and the nearest is a hit when its similarity
        reaches ``score_threshold``: an entry cached for another model or temperature never
        answers, however near.

        ```python
        llm.invoke("What is TiDB?")  # Bedrock; cached
        llm.invoke("what is TiDB")  # the cache (similarity >= score_threshold)
        ```

    Update:
        Upserts by (llm_string, prompt): one row per prompt and model configuration. The
        vector of a prompt that just missed is reused, so a miss costs one embedding call.

    Clear:
        ```python
        cache.clear()  # everything
        cache.clear(llm_string=llm_string)  # one model configuration
        ```

    Async:
        ``alookup``, ``aupdate`` and ``aclear`` run natively on the async driver (and the
        embedding model's async methods).
    """

    def __init__(
        self,
        embeddings: Embeddings,
        *,
        engine: TiDBEngine | sa.Engine | None = None,
        connection_string: str | URL | None = None,
        table_name: str = "langchain_semantic_cache",
        score_threshold: float = 0.9,
        ttl: float | timedelta | None = None,
        prompt_to_text: Callable[[str], str] | None = None,
        tls: bool | None = None,
        ca_path: str | None = None,
        engine_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Create the cache; no database or embedding call happens here.

        Args:
            embeddings: the embedding model for prompts.
            engine: a shared :class:`TiDBEngine` (or SQLAlchemy engine).
            connection_string: a TiDB URL for a private engine (closed by :meth:`close`).
            table_name: the cache table.
            score_threshold: the least cosine similarity (-1..1) for a hit.
            ttl: seconds (or a timedelta) an entry stays valid; None for no expiry.
            prompt_to_text: the text embedded for a prompt (default: see the class docs).
            tls: force TLS on or off for a private engine (default on for remote hosts).
            ca_path: CA bundle for a private engine's TLS.
            engine_args: extra ``create_engine`` arguments for a private engine.
        """
        if (
            isinstance(score_threshold, bool)
            or not isinstance(score_threshold, (int, float))
            or not -1.0 <= score_threshold <= 1.0
        ):
            msg = (
                f"score_threshold is a cosine similarity between -1 and 1 (higher: stricter), "
                f"got {score_threshold!r}"
            )
            raise InvalidInputError(msg)
        self.embeddings = embeddings
        self.score_threshold = float(score_threshold)
        self._to_text = prompt_to_text or prompt_text
        self._recent: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        super().__init__(
            table_name=table_name,
            ttl=ttl,
            columns=["embedding VECTOR NOT NULL"],
            engine=engine,
            connection_string=connection_string,
            tls=tls,
            ca_path=ca_path,
            engine_args=engine_args,
        )
        # The llm_hash condition is the primary key's prefix: only this model configuration's
        # rows are ranked (an exact scan of a small set; no vector index needed or wanted, as
        # an ANN index would rank every model's rows before the filter).
        self._nearest_sql = (
            f"SELECT generations, VEC_COSINE_DISTANCE(embedding, %(v)s) AS d FROM {self._table.t} "
            f"WHERE llm_hash = %(l)s AND VEC_DIMS(embedding) = %(n)s AND {NOT_EXPIRED} "
            "ORDER BY d IS NULL, d, prompt_hash LIMIT 1"
        )

    def __repr__(self) -> str:
        return (
            f"TiDBSemanticCache(table_name={self.table_name!r}, "
            f"score_threshold={self.score_threshold})"
        )

    # ------------------------------------------------------------------ vectors

    def _remember(self, text: str, vector: list[float]) -> None:
        with self._lock:
            self._recent[text] = vector
            self._recent.move_to_end(text)
            while len(self._recent) > _RECENT_VECTORS:
                self._recent.popitem(last=False)

    def _op_vector(self, text: str) -> Op[list[float]]:
        with self._lock:
            vector = self._recent.pop(text, None)
        if vector is None:
            vector = yield from embed_query(text)
        return vector

    # ------------------------------------------------------------------ operations

    def _op_lookup(self, prompt: str, llm_string: str) -> Op[RETURN_VAL_TYPE | None]:
        llm = key_hash(llm_string, "llm_string")
        rows = yield from self._op_exact(llm, prompt)
        if rows is None:  # no table yet: nothing cached, and no embedding call
            return None
        if rows:
            return decode_generations(bytes(rows[0][0]))
        text = self._to_text(prompt)
        vector = yield from self._op_vector(text)
        params = {"l": llm, "v": _vector_text(vector), "n": len(vector)}
        rows = yield from read(self._nearest_sql, params)
        if rows:
            generations, distance = tuple(rows[0])
            if distance is not None and 1.0 - float(distance) >= self.score_threshold:
                return decode_generations(bytes(generations))
        self._remember(text, vector)  # a miss is usually followed by update() of this prompt
        return None

    def _op_update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> Op[None]:
        llm = key_hash(llm_string, "llm_string")
        key = key_hash(prompt, "prompt")
        raw = check_size(encode_generations(return_val))
        vector = yield from self._op_vector(self._to_text(prompt))
        row = (llm, key, _vector_text(vector), raw)
        yield from self._table.op_write((self._update_sql, [row]))
        return None

    @property
    def _embeddings(self) -> Embeddings:
        return self.embeddings
