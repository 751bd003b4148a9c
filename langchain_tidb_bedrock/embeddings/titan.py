"""Titan Text Embeddings V2 on Amazon Bedrock, built for bulk ingestion.

``BedrockTitanEmbeddings`` keeps langchain-aws ``BedrockEmbeddings``' fields and client setup but
replaces its sequential, retry-less loop: requests run concurrently under an adaptive (AIMD)
concurrency window and a client-side rate limiter that learns the quota's sustainable rate from
throttling (botocore's adaptive mode was measured and not kept); throttling and transient errors
are retried with full-jitter backoff until an optional deadline, and a final failure hands back
the vectors already computed and names the inputs that were not embedded instead of dropping
them (see ``_rate``). What a failure means is decided by ``langchain_tidb_bedrock._bedrock_faults``;
a fault in one response (a 5xx, an unreadable body, a bad vector) is retried and fails at most
the text it answered. Every vector is checked (length, finite, unit norm when normalised) before
it is returned.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, ClassVar, Literal

import numpy as np

try:  # langsmith's dependency on CPython: installed with langchain-core
    import orjson as _orjson
except ImportError:  # pragma: no cover - PyPy
    _orjson = None  # type: ignore[assignment]
from botocore.config import Config
from langchain_aws import BedrockEmbeddings
from langchain_aws.utils import create_aws_client
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from typing_extensions import Self

from langchain_tidb_bedrock._bedrock_faults import (
    RETRYABLE,
    access_hint,
    classify,
    describe,
    refused_model,
    refuses_every_request,
    reported_token_count,
    retry_after,
)
from langchain_tidb_bedrock.aws_config import (
    is_local_endpoint,
    local_endpoint_settings,
    require_aws,
    resolve_endpoint,
)
from langchain_tidb_bedrock.embeddings._rate import AdaptiveWindow, Deadline, RateLearner
from langchain_tidb_bedrock.embeddings._titan_ids import (
    DEFAULT_EMBEDDING_MODEL_ID,
    SUPPORTED,
    VALID_DIMENSIONS,
    check_embedding_model_id,
)
from langchain_tidb_bedrock.errors import (
    BedrockConfigError,
    BedrockEmbeddingError,
    BedrockResponseError,
    InvalidEmbeddingError,
    InvalidInputError,
    PartialEmbeddingError,
    UnsupportedModelError,
)

__all__ = [
    "DEFAULT_EMBEDDING_MODEL_ID",
    "MAX_INPUT_CHARS",
    "MAX_INPUT_TOKENS",
    "BedrockEmbeddingError",
    "BedrockTitanEmbeddings",
    "InvalidEmbeddingError",
    "PartialEmbeddingError",
    "UnsupportedModelError",
    "VALID_DIMENSIONS",
    "estimate_tokens",
]

MAX_INPUT_CHARS = 50_000
MAX_INPUT_TOKENS = 8_192
NORM_TOLERANCE = 1e-3
"""How far from 1 a normalised vector's L2 norm may be (Titan sends float32 values)."""
# A bad vector is sent for once more (a corrupted response); a second one fails the text, since
# a model that keeps answering the wrong shape is not cured by waiting.
_BAD_VECTOR_RETRIES = 1

_ASCII_LETTERS = re.compile(r"[A-Za-z_]+")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_ASCII_PUNCT = re.compile(r"[!-/:-@\[-^`{-~]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def estimate_tokens(text: str) -> int:
    """A conservative (high) estimate of Titan's token count for ``text``.

    The larger of two counts: (1) one token per 4 letters of each ASCII word and per 3 digits of
    each number (rounded up), plus one per ASCII punctuation mark and per non-ASCII character
    (CJK, emoji, accents); (2) one per non-ASCII character plus one per 4 ASCII characters.
    Never below the number of words and punctuation marks, so dense code and CJK text are not
    under-counted the way a characters-per-token rule would.
    """
    non_ascii = len(_NON_ASCII.findall(text))
    fine = (
        sum(math.ceil(len(w) / 4) for w in _ASCII_LETTERS.findall(text))
        + sum(math.ceil(len(d) / 3) for d in _ASCII_DIGITS.findall(text))
        + len(_ASCII_PUNCT.findall(text))
        + non_ascii
    )
    coarse = non_ascii + math.ceil((len(text) - non_ascii) / 4)
    return max(fine, coarse)


def _fit(text: str) -> str:
    """The longest prefix of ``text`` within Titan's character and (estimated) token limits."""
    text = text[:MAX_INPUT_CHARS]
    if len(text) <= MAX_INPUT_TOKENS or estimate_tokens(text) <= MAX_INPUT_TOKENS:
        return text
    low, high = MAX_INPUT_TOKENS, len(text)  # the estimate never exceeds the length
    while low < high:  # the estimate only grows with the prefix: binary search its length
        mid = (low + high + 1) // 2
        if estimate_tokens(text[:mid]) <= MAX_INPUT_TOKENS:
            low = mid
        else:
            high = mid - 1
    return text[:low]


_NUMBER_TYPES = frozenset({float, int})


def _loads(raw: bytes) -> Any:
    """Parse a response body with orjson where installed, else (or where it refuses) ``json``.

    orjson takes a tenth of ``json.loads``'s time on a 1,024-float vector; ``json`` still reads
    what orjson refuses (``NaN``), so the vector check can name the problem.
    """
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def vector_problem(vector: object, dimensions: int, *, normalized: bool) -> str | None:
    """What is wrong with ``vector`` as Titan's answer, or None if nothing is.

    Checks that it is a list of ``dimensions`` finite numbers and, when ``normalized``, that its
    L2 norm is 1 (within :data:`NORM_TOLERANCE`). The answer never quotes the values.
    """
    if not isinstance(vector, list):
        return f"a JSON {type(vector).__name__}, not a list of numbers"
    if len(vector) != dimensions:
        return f"{len(vector)} dimensions, expected {dimensions}"
    # The types present, not an isinstance per value: a quarter of the time on 1,024 values.
    if not set(map(type, vector)) <= _NUMBER_TYPES:  # bool is its own type: refused
        return "values that are not numbers"
    array = np.asarray(vector, dtype=np.float64)
    if not np.isfinite(array).all():
        return "values that are not finite (NaN or infinity)"
    if normalized:
        norm = float(np.linalg.norm(array))
        if abs(norm - 1.0) > NORM_TOLERANCE:
            return f"L2 norm {norm:.6g}, expected 1 (normalize=True)"
    return None


class _NotAttemptedError(RuntimeError):
    """A text left unsent because another one failed in a way no retry can cure."""

    def __init__(self) -> None:
        super().__init__("not attempted: an earlier text failed with an error no retry can cure")


def _weight(err: BaseException) -> int:
    # The error to report: a real cause beats the deadline, which beats "not attempted".
    return 0 if isinstance(err, _NotAttemptedError) else 1 if isinstance(err, TimeoutError) else 2


class BedrockTitanEmbeddings(BedrockEmbeddings):
    """Amazon Titan Text Embeddings V2 on Bedrock, concurrent and throttling-tolerant.

    Built on langchain-aws ``BedrockEmbeddings`` (same AWS fields and client), with concurrent
    requests, deduplication, retries with an adaptive rate limiter, input checks and usage counts.

    Setup:
        Install ``langchain-tidb-bedrock`` and configure AWS credentials and a region with access
        to ``amazon.titan-embed-text-v2:0``:

        ```bash
        pip install -U langchain-tidb-bedrock
        export AWS_REGION=us-east-1
        export AWS_ACCESS_KEY_ID=...  AWS_SECRET_ACCESS_KEY=...   # or AWS_PROFILE=...
        ```

        Offline, run ``python -m langchain_tidb_bedrock.local bedrock --port 8999`` and pass
        ``endpoint_url="http://127.0.0.1:8999"``.

    Key init args — embedding params:
        model_id: str
            Bedrock model id (default ``amazon.titan-embed-text-v2:0``, or the
            ``BEDROCK_EMBEDDING_MODEL_ID`` environment variable).
        dimensions: int
            256, 512 or 1024 (default 1024).
        normalize: bool
            Titan's server-side ``normalize`` flag (default True).
        on_long_text: Literal["truncate", "error"]
            What to do with a text over 50,000 characters or (estimated conservatively) 8,192
            tokens (default truncate, with a warning).

    Key init args — client params:
        region_name: str | None
            AWS region; falls back to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
        credentials_profile_name: str | None
            Named AWS profile.
        endpoint_url: str | None
            Custom endpoint, e.g. a LocalBedrock.
        config: botocore.config.Config | None
            Client config; its retry settings are replaced (retries are done here).
        max_concurrency: int
            Requests in flight at most (default 16).
        max_retries: int
            Retries per text on throttling / transient errors: 5xx, timeouts, unreadable
            bodies (default 8).
        timeout: float | None
            Overall deadline in seconds for one ``embed_documents`` call (default none);
            past it, :class:`PartialEmbeddingError` carries the vectors already computed.
        adaptive_rate_limit: bool
            Pace requests at the rate learned from throttling (default True).

    Instantiate:
        ```python
        from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings

        embeddings = BedrockTitanEmbeddings(
            region_name="us-east-1",
            dimensions=1024,
            # endpoint_url="http://127.0.0.1:8999",  # LocalBedrock
        )
        ```

    Embed single text:
        ```python
        vector = embeddings.embed_query("What is TiDB?")
        vector[:3]
        ```

        ```python
        [-0.0393, 0.0152, 0.0488]
        ```

    Embed multiple text:
        ```python
        vectors = embeddings.embed_documents(["TiDB is a SQL database.", "Bedrock hosts models."])
        len(vectors), len(vectors[0])
        ```

        ```python
        (2, 1024)
        ```

    Async:
        ```python
        vector = await embeddings.aembed_query("What is TiDB?")
        vectors = await embeddings.aembed_documents(["TiDB", "Bedrock"])
        ```
    """

    # Titan refuses empty or whitespace-only input: TiDBVectorStore checks a whole list for
    # them before embedding or writing anything.
    rejects_blank_texts: ClassVar[bool] = True

    model_id: str = Field(
        default_factory=lambda: (
            os.environ.get("BEDROCK_EMBEDDING_MODEL_ID") or DEFAULT_EMBEDDING_MODEL_ID
        )
    )
    """Bedrock model id; defaults to ``BEDROCK_EMBEDDING_MODEL_ID`` or Titan Text V2."""

    dimensions: int = 1024
    """Output dimensions: 256, 512 or 1024."""

    normalize: bool = True
    """Sent to Titan as its ``normalize`` flag (unit vectors); no client-side normalisation, but
    a returned vector that is not unit length is refused (:class:`InvalidEmbeddingError`)."""

    max_concurrency: int = Field(default=16, ge=1)
    """Requests in flight at most; the HTTP connection pool is sized to match."""

    max_retries: int = Field(default=8, ge=0)
    """Retries per text for throttling, 5xx, model-not-ready, timeouts and unreadable bodies
    (a vector of the wrong length or norm is sent for once more at most)."""

    timeout: float | None = Field(default=None, gt=0)
    """Overall deadline in seconds per call; then the call stops and reports what it has."""

    adaptive_rate_limit: bool = True
    """Pace requests with a client-side rate limiter that learns the quota's sustainable rate
    from throttling (unlimited until the first 429)."""

    backoff_base: float = Field(default=0.25, gt=0)
    """First retry's backoff ceiling in seconds (doubles per attempt, full jitter)."""

    backoff_max: float = Field(default=20.0, gt=0)
    """Largest backoff ceiling in seconds."""

    on_long_text: Literal["truncate", "error"] = "truncate"
    """Texts over 50,000 characters or about 8,192 tokens (see :func:`estimate_tokens`):
    ``"truncate"`` (with a warning) or ``"error"``."""

    _pool: ThreadPoolExecutor | None = PrivateAttr(default=None)
    _pool_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _limiter: AdaptiveWindow | None = PrivateAttr(default=None)
    _rate: RateLearner | None = PrivateAttr(default=None)
    _usage_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _usage: dict[str, int] = PrivateAttr(default_factory=dict)

    @field_validator("dimensions")
    @classmethod
    def _check_dimensions(cls, value: int) -> int:
        if value not in VALID_DIMENSIONS:
            msg = f"dimensions must be one of {VALID_DIMENSIONS} for Titan Text V2, got {value}"
            raise InvalidInputError(msg)
        return value

    def _check_model_kwargs(self) -> None:
        # model_kwargs are merged into the request body last: they must not silently override
        # the validated fields.
        for key in ("dimensions", "normalize"):
            if self.model_kwargs and key in self.model_kwargs:
                value = self.model_kwargs[key]
                if value != getattr(self, key) or type(value) is not type(getattr(self, key)):
                    msg = (
                        f"model_kwargs[{key!r}]={value!r} conflicts with {key}="
                        f"{getattr(self, key)!r}: pass {key}={value!r} instead "
                        f"(use dimensions=/normalize=, not model_kwargs)"
                    )
                    raise InvalidInputError(msg)

    @model_validator(mode="after")
    def validate_environment(self) -> Self:
        """Check region/credentials early and build one client sized for the concurrency.

        Overrides (by name) the parent's validator so only one client is built.
        """
        self._check_model_kwargs()  # argument errors first, before the environment checks
        check_embedding_model_id(self.model_id)  # e.g. Titan V1 refuses dimensions/normalize
        self._limiter = AdaptiveWindow(self.max_concurrency)
        self._rate = RateLearner() if self.adaptive_rate_limit else None
        self.reset_usage()
        if self.client is not None:
            return self
        keys = (self.aws_access_key_id, self.aws_secret_access_key)
        has_keys = bool(keys[0] and keys[1])
        self.endpoint_url = resolve_endpoint(
            self.endpoint_url, self.region_name, self.credentials_profile_name, has_keys=has_keys
        )
        if is_local_endpoint(self.endpoint_url):
            self.region_name, placeholder_keys = local_endpoint_settings(
                self.region_name, self.credentials_profile_name, has_keys=has_keys
            )
            if placeholder_keys:
                keys = (SecretStr("local"), SecretStr("local"))
        else:
            self.region_name = require_aws(
                self.region_name, self.credentials_profile_name, has_explicit_keys=has_keys
            )
        self.client = create_aws_client(
            region_name=self.region_name,
            credentials_profile_name=self.credentials_profile_name,
            aws_access_key_id=keys[0],
            aws_secret_access_key=keys[1],
            aws_session_token=self.aws_session_token,
            endpoint_url=self.endpoint_url,
            config=self._client_config(),
            service_name="bedrock-runtime",
        )
        return self

    def _client_config(self) -> Config:
        # One attempt per botocore call: backoff, rate limiting and accounting happen here.
        pool = max(self.max_concurrency, getattr(self.config, "max_pool_connections", None) or 10)
        ours = Config(
            max_pool_connections=pool,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        return self.config.merge(ours) if self.config is not None else ours

    # ------------------------------------------------------------ usage

    @property
    def usage(self) -> dict[str, int]:
        """Counters since construction: input_tokens, requests, embedded, retries, throttles."""
        with self._usage_lock:
            return dict(self._usage)

    def reset_usage(self) -> None:
        """Zero the usage counters."""
        with self._usage_lock:
            self._usage = dict.fromkeys(
                ("input_tokens", "requests", "embedded", "retries", "throttles"), 0
            )

    def _count(self, **deltas: int) -> None:
        with self._usage_lock:
            for key, delta in deltas.items():
                self._usage[key] += delta

    # ------------------------------------------------------------ one text

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        prepared = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                msg = f"Text at index {i} is {type(text).__name__}, not str"
                raise TypeError(msg)
            if not text.strip():
                msg = f"Text at index {i} is empty or whitespace; Titan cannot embed it"
                raise InvalidInputError(msg)
            fitted = _fit(text)
            if len(fitted) == len(text):
                prepared.append(text)
                continue
            if self.on_long_text == "error":
                if len(text) > MAX_INPUT_CHARS:
                    msg = (
                        f"Text at index {i} has {len(text):,} characters; Titan accepts at most "
                        f"{MAX_INPUT_CHARS:,} (set on_long_text='truncate' to cut it)"
                    )
                else:
                    msg = (
                        f"Text at index {i} has about {estimate_tokens(text):,} tokens "
                        f"(conservative estimate); Titan accepts at most {MAX_INPUT_TOKENS:,} "
                        f"(split it into smaller chunks, or set on_long_text='truncate' to cut it)"
                    )
                raise InvalidInputError(msg)
            warnings.warn(
                f"Text at index {i} has {len(text):,} characters; truncated to "
                f"{len(fitted):,} to stay within Titan's limits of {MAX_INPUT_CHARS:,} "
                f"characters and {MAX_INPUT_TOKENS:,} tokens (estimated conservatively)",
                stacklevel=3,
            )
            prepared.append(fitted)
        return prepared

    def _body(self, text: str) -> str:
        payload: dict[str, Any] = {
            "inputText": text,
            "dimensions": self.dimensions,
            "normalize": self.normalize,
        }
        if self.model_kwargs:
            payload.update(self.model_kwargs)
        return json.dumps(payload)

    def _invoke(self, body: str, position: int) -> list[float]:
        """One InvokeModel; the vector, checked. ``position`` only names the text in errors."""
        response = self.client.invoke_model(
            body=body,
            modelId=self.model_id,
            accept="application/json",
            contentType="application/json",
        )
        raw = response["body"].read()
        try:
            data = _loads(raw)
        except ValueError as err:  # not JSON, or not UTF-8 (the body itself is not quoted)
            msg = (
                f"{self.model_id} answered the text at input position {position} with a "
                f"{len(raw):,}-byte body that is not JSON ({type(err).__name__})"
            )
            raise BedrockResponseError(msg, index=position) from None
        vector = None
        if isinstance(data, dict):
            vector = data.get("embedding")
            by_type = data.get("embeddingsByType")
            if vector is None and isinstance(by_type, dict):
                vector = by_type.get("float")
        if vector is None:
            shape = f"keys {sorted(data)}" if isinstance(data, dict) else type(data).__name__
            msg = (
                f"{self.model_id} answered the text at input position {position} with no "
                f"embedding (JSON {shape})"
            )
            raise BedrockResponseError(msg, index=position)
        problem = vector_problem(vector, self.dimensions, normalized=self.normalize)
        if problem is not None:
            raise InvalidEmbeddingError(position, self.model_id, problem)
        tokens = data.get("inputTextTokenCount")
        self._count(input_tokens=tokens if isinstance(tokens, int) else 0, embedded=1)
        result: list[float] = vector
        return result

    def _embed_text(
        self, text: str, position: int, cancelled: threading.Event, deadline: Deadline
    ) -> list[float]:
        """Embed one text: retries throttling and transient errors, cuts an over-long text once.

        ``position`` is the text's (first) input position, for error messages. Raises the last
        error when retries run out or no retry can help. An error every other request would meet
        too (a daily quota, an access error, a refused model or parameter) also sets
        ``cancelled`` so the other texts are not sent; a fault of one response (5xx, unreadable
        body, bad vector) fails this text only.
        """
        limiter = self._limiter
        assert limiter is not None  # noqa: S101 - set by the validator
        body = self._body(text)
        attempt = bad_vectors = 0
        cut = False
        while True:
            if cancelled.is_set():
                raise _NotAttemptedError
            if deadline.passed():
                raise deadline.error()
            while self._rate is not None and (pause := self._rate.delay()) > 0:
                left = deadline.remaining()
                if left is not None and pause > left:
                    raise deadline.error()  # no send token before the deadline
                if cancelled.wait(pause):
                    raise _NotAttemptedError
            epoch = limiter.acquire()
            outcome = "error"
            try:
                self._count(requests=1)
                vector = self._invoke(body, position)
                outcome = "ok"
                if self._rate is not None:
                    self._rate.success()
                return vector
            except Exception as err:
                kind = classify(err)
                if kind == "throttle":
                    outcome = "throttle"
                    self._count(throttles=1)
                    # Bedrock's quota throttles carry no retry-after (its service model has
                    # none); a throttle that names its own wait is paced by that hint instead.
                    if self._rate is not None and not retry_after(err):
                        self._rate.throttled()
                if kind == "input_too_long" and not cut and self.on_long_text == "truncate":
                    # The service counts tokens its own way: cut by its count and retry once.
                    text, cut = self._cut(text, err), True
                    body = self._body(text)
                    continue
                if refuses_every_request(err):
                    cancelled.set()  # every other text would meet the same refusal
                    if refused_model(err):
                        msg = f"{SUPPORTED}; Bedrock refused {self.model_id!r} ({describe(err)})"
                        raise UnsupportedModelError(self.model_id, msg) from err
                    if kind == "access":
                        raise BedrockConfigError(access_hint(err, self.model_id)) from err
                    raise
                if isinstance(err, InvalidEmbeddingError):
                    bad_vectors += 1
                retryable = kind in RETRYABLE and bad_vectors <= _BAD_VECTOR_RETRIES
                if not retryable or attempt >= self.max_retries:
                    raise
                ceiling = min(self.backoff_max, self.backoff_base * 2**attempt)
                if kind == "throttle" and self._rate is not None and not retry_after(err):
                    # The rate limiter spaces the retry; a growing backoff would only idle it.
                    ceiling = self.backoff_base
                # The server's hint counts too, but never beyond backoff_max.
                hint = min(retry_after(err), self.backoff_max)
                delay = max(random.uniform(0, ceiling), hint)  # noqa: S311
            finally:
                limiter.release(outcome, epoch)
            self._count(retries=1)
            left = deadline.remaining()
            cancelled.wait(delay if left is None else min(delay, left))  # wakes when abandoned
            attempt += 1

    def _cut(self, text: str, err: BaseException) -> str:
        counted = reported_token_count(err)
        assert counted is not None  # noqa: S101 - classified as input_too_long
        count, limit = counted
        # Proportional cut with a 10% margin: the service's tokens are not evenly spread.
        keep = max(1, int(len(text) * limit / count * 0.9))
        warnings.warn(
            f"Bedrock counted {count:,} tokens in a text of {len(text):,} characters (limit "
            f"{limit:,}); retrying once with its first {keep:,} characters",
            stacklevel=2,
        )
        return text[:keep]

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="titan-embed"
                )
            return self._pool

    @staticmethod
    def _dedupe(texts: list[str]) -> dict[str, list[int]]:
        positions: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            positions.setdefault(text, []).append(i)
        return positions

    @staticmethod
    def _assemble(
        positions: dict[str, list[int]],
        outcomes: list[list[float] | BaseException],
        total: int,
    ) -> list[list[float]]:
        vectors: list[list[float] | None] = [None] * total
        failed: list[int] = []
        last: BaseException | None = None
        for indices, outcome in zip(positions.values(), outcomes, strict=True):
            if isinstance(outcome, BaseException):
                failed.extend(indices)
                if last is None or _weight(outcome) > _weight(last):
                    last = outcome
                continue
            for i in indices:
                vectors[i] = outcome
        if isinstance(last, UnsupportedModelError):
            raise last  # the model, not a text: nothing was or could be embedded
        if failed:
            assert last is not None  # noqa: S101 - a failure always carries its error
            raise PartialEmbeddingError(sorted(failed), total, last, vectors)
        return [v for v in vectors if v is not None]

    # ------------------------------------------------------------ public API

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts concurrently (``max_concurrency`` at once), in input order.

        Args:
            texts: Texts to embed; a text repeated in the list is requested once.

        Returns:
            One vector per input text.

        Raises:
            ValueError: An empty/whitespace text, or a too-long one with ``on_long_text="error"``.
            PartialEmbeddingError: Some texts failed after retries, hit a daily quota or an
                access error, or were not done by ``timeout``; it carries the vectors
                computed (``vectors``) and the failed input positions (``failed_indices``).
                A vector of the wrong length or norm (twice for the same text) fails that text
                with an :class:`InvalidEmbeddingError` (``last_error``) naming its position.
        """
        prepared = self._prepare(texts)
        if not prepared:
            return []
        positions = self._dedupe(prepared)
        cancelled = threading.Event()
        deadline = Deadline(self.timeout)
        if len(positions) == 1 and self.timeout is None:  # no pool round-trip for one text
            outcomes: list[list[float] | BaseException] = []
            try:
                outcomes.append(self._embed_text(prepared[0], 0, cancelled, deadline))
            except Exception as err:
                outcomes.append(err)
            return self._assemble(positions, outcomes, len(prepared))
        pool = self._executor()
        futures: list[Future[list[float]]] = [
            pool.submit(self._embed_text, text, indices[0], cancelled, deadline)
            for text, indices in positions.items()
        ]
        # An error every text would meet cancels the rest itself; only the deadline stops waiting.
        _, pending = wait(futures, timeout=deadline.remaining())
        if pending:
            cancelled.set()  # queued texts are not sent; in-flight retries stop
        outcomes = []
        for future in futures:
            if not future.done():
                outcomes.append(deadline.error())
            elif future.exception() is not None:
                outcomes.append(future.exception())  # type: ignore[arg-type]
            else:
                outcomes.append(future.result())
        return self._assemble(positions, outcomes, len(prepared))

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text (same checks and retries as documents)."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`: a semaphore bounds the requests in flight.

        boto3 has no async client, so each request runs on this instance's thread pool.
        """
        prepared = self._prepare(texts)
        if not prepared:
            return []
        positions = self._dedupe(prepared)
        loop = asyncio.get_running_loop()
        pool = self._executor()
        gate = asyncio.Semaphore(self.max_concurrency)
        cancelled = threading.Event()
        deadline = Deadline(self.timeout)

        async def one(text: str, position: int) -> list[float]:
            async with gate:
                return await loop.run_in_executor(
                    pool, self._embed_text, text, position, cancelled, deadline
                )

        tasks = [asyncio.ensure_future(one(t, idx[0])) for t, idx in positions.items()]
        try:
            await asyncio.wait(tasks, timeout=deadline.remaining())
        except asyncio.CancelledError:
            cancelled.set()  # requests already in the pool stop instead of retrying on
            for task in tasks:
                task.cancel()
            raise
        outcomes: list[list[float] | BaseException] = []
        for task in tasks:
            if not task.done():
                cancelled.set()
                task.cancel()
                outcomes.append(deadline.error())
            elif task.exception() is not None:
                outcomes.append(task.exception())  # type: ignore[arg-type]
            else:
                outcomes.append(task.result())
        return self._assemble(positions, outcomes, len(prepared))

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self.aembed_documents([text]))[0]

    def close(self) -> None:
        """Shut down the worker threads (a later call starts new ones)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
