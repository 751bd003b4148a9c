"""Amazon Bedrock rerank models as a LangChain document compressor.

``BedrockReranker`` does what langchain-aws ``BedrockRerank`` leaves to the caller: it takes a
model id (and builds the foundation-model ARN ``Rerank`` insists on), splits past 1,000 sources and
merges the batches by score, follows ``nextToken``, retries throttling under the same
learned-rate limiter as the Titan client, runs its async methods without blocking the event loop,
and reaches the same models through ``InvokeModel`` where ``Rerank`` cannot go (Bedrock API keys,
inference profiles).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from botocore.config import Config
from botocore.exceptions import ClientError
from langchain_aws.utils import create_aws_client
from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.utils import secret_from_env
from pydantic import AliasChoices, ConfigDict, Field, PrivateAttr, SecretStr, model_validator
from typing_extensions import Self

from langchain_tidb_bedrock._bedrock_faults import access_hint, classify, retry_after
from langchain_tidb_bedrock.aws_config import (
    is_local_endpoint,
    local_endpoint_settings,
    require_aws,
    resolve_region,
)
from langchain_tidb_bedrock.document_compressors._requests import (
    AMAZON_RERANK_MODEL_ID,
    COHERE_RERANK_MODEL_ID,
    MAX_QUERY_CHARS,
    MAX_SOURCES,
    MAX_TEXT_CHARS,
    OFFERED_REGIONS,
    ModelRef,
    Provider,
    invoke_body,
    merge,
    parse_invoke_results,
    parse_model,
    rerank_request,
    split,
)
from langchain_tidb_bedrock.embeddings._rate import RateLearner
from langchain_tidb_bedrock.errors import BedrockConfigError, BedrockModelUnavailableError

__all__ = [
    "AMAZON_RERANK_MODEL_ID",
    "COHERE_RERANK_MODEL_ID",
    "DEFAULT_RERANK_MODEL_ID",
    "BedrockReranker",
]

DEFAULT_RERANK_MODEL_ID = AMAZON_RERANK_MODEL_ID
_T = TypeVar("_T")
_MAX_PAGES = 1_000  # a service that keeps sending tokens must not loop for ever

_UNAVAILABLE = (
    "model identifier is invalid",
    "don't have access to the model",
    "do not have access to the model",
)


def _fault(err: BaseException) -> str:
    """What a failed call means: a shared fault kind, or ``"unavailable"`` (not served here)."""
    if isinstance(err, ClientError):
        message = str(err.response.get("Error", {}).get("Message", "")).lower()
        if any(fragment in message for fragment in _UNAVAILABLE):
            return "unavailable"
    return classify(err)


def _service_says(err: BaseException) -> str:
    if isinstance(err, ClientError):
        info = err.response.get("Error", {})
        return f"{info.get('Code', '')}: {info.get('Message', '')}"
    return type(err).__name__


class BedrockReranker(BaseDocumentCompressor):
    """Amazon Bedrock rerank models (Amazon Rerank 1.0, Cohere Rerank 3.5) as a compressor.

    Scores each document against the query, keeps the ``top_n`` best, and records the score in
    ``metadata["relevance_score"]`` (higher is more relevant).

    Setup:
        Install ``langchain-tidb-bedrock`` and configure AWS credentials and a region where the
        model is offered (Amazon Rerank 1.0 is not offered in us-east-1; Cohere Rerank 3.5 is):

        ```bash
        pip install -U langchain-tidb-bedrock
        export AWS_REGION=us-west-2
        export AWS_ACCESS_KEY_ID=...  AWS_SECRET_ACCESS_KEY=...   # or AWS_PROFILE=...
        ```

        Offline, run ``python -m langchain_tidb_bedrock.local bedrock --port 8999`` and pass
        ``endpoint_url="http://127.0.0.1:8999"``.

    Key init args — rerank params:
        model_id: str
            ``amazon.rerank-v1:0`` (default), ``cohere.rerank-v3-5:0``, a foundation-model ARN,
            or an inference-profile ARN (alias ``model``). A bare id becomes
            ``arn:aws:bedrock:<region>::foundation-model/<id>`` for the ``Rerank`` API.
        top_n: int | None
            Documents to keep (default 3; None keeps all, reordered).
        api: Literal["auto", "rerank", "invoke"]
            ``"rerank"``: the bedrock-agent-runtime ``Rerank`` API (SigV4 credentials,
            foundation models); ``"invoke"``: ``InvokeModel`` on bedrock-runtime (Bedrock API
            keys, inference profiles). ``"auto"`` (default) picks ``"invoke"`` for an inference
            profile or an API key, else ``"rerank"``.
        provider: Literal["amazon", "cohere"] | None
            The model's provider, needed only for an application inference-profile ARN with
            ``"invoke"`` (its ARN does not name the model).
        additional_model_request_fields: dict | None
            Extra model parameters, e.g. ``{"max_tokens_per_doc": 512}`` for Cohere.

    Key init args — client params:
        region_name: str | None
            AWS region; falls back to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
        credentials_profile_name: str | None
            Named AWS profile.
        api_key: SecretStr | None
            A Bedrock API key (default ``AWS_BEARER_TOKEN_BEDROCK``); only ``InvokeModel``
            accepts one.
        endpoint_url: str | None
            Custom endpoint for both services, e.g. a LocalBedrock.
        config: botocore.config.Config | None
            Client config; its retry settings are replaced (retries are done here).
        max_retries: int
            Retries per request on throttling and transient errors (default 8).
        max_concurrency: int
            Requests in flight when more than 1,000 documents are split (default 4).

    Instantiate:
        ```python
        from langchain_tidb_bedrock.document_compressors import BedrockReranker

        reranker = BedrockReranker(
            model_id="cohere.rerank-v3-5:0",
            region_name="us-east-1",
            top_n=3,
            # endpoint_url="http://127.0.0.1:8999",  # LocalBedrock
        )
        ```

    Rerank documents:
        ```python
        from langchain_core.documents import Document

        docs = [
            Document(page_content="Paris is the capital of France."),
            Document(page_content="TiDB stores vectors and supports vector search."),
        ]
        best = reranker.compress_documents(docs, "Does TiDB support vector search?")
        best[0].page_content, round(best[0].metadata["relevance_score"], 2)
        ```

        ```python
        ('TiDB stores vectors and supports vector search.', 0.81)
        ```

    Scores only:
        ```python
        reranker.rerank(["first text", "second text"], "query", top_n=1)
        ```

        ```python
        [{'index': 1, 'relevance_score': 0.42}]
        ```

    Async:
        ```python
        best = await reranker.acompress_documents(docs, "Does TiDB support vector search?")
        ```

    In a retriever:
        ```python
        from langchain_classic.retrievers import ContextualCompressionRetriever

        retriever = ContextualCompressionRetriever(
            base_compressor=reranker,
            base_retriever=vector_store.as_retriever(search_kwargs={"k": 20}),
        )
        ```
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, extra="forbid")

    model_id: str = Field(
        default=DEFAULT_RERANK_MODEL_ID, validation_alias=AliasChoices("model_id", "model")
    )
    """Model id, foundation-model ARN or inference-profile ARN."""

    top_n: int | None = Field(default=3, ge=1)
    """Documents to keep, best first (None: all)."""

    api: Literal["auto", "rerank", "invoke"] = "auto"
    """Which Bedrock API carries the request (see the class docstring)."""

    provider: Provider | None = None
    """``"amazon"`` or ``"cohere"``; read from the model id unless an ARN hides it."""

    additional_model_request_fields: dict[str, Any] | None = None
    """Extra model parameters (``additionalModelRequestFields`` / merged into the body)."""

    region_name: str | None = None
    """AWS region; ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` when not given."""

    credentials_profile_name: str | None = None
    """Named AWS profile."""

    aws_access_key_id: SecretStr | None = None
    """Access key id (else the default credential chain)."""

    aws_secret_access_key: SecretStr | None = None
    """Secret access key."""

    aws_session_token: SecretStr | None = None
    """Session token of temporary credentials."""

    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("AWS_BEARER_TOKEN_BEDROCK", default=None)
    )
    """Bedrock API key (bearer token); only ``InvokeModel`` accepts one."""

    endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("endpoint_url", "base_url")
    )
    """Endpoint of both bedrock-agent-runtime and bedrock-runtime (e.g. a LocalBedrock)."""

    config: Any = None
    """botocore ``Config``; its retries are replaced by one attempt per call."""

    client: Any = Field(default=None, exclude=True)
    """A ``bedrock-agent-runtime`` client (built when needed)."""

    runtime_client: Any = Field(default=None, exclude=True)
    """A ``bedrock-runtime`` client for the InvokeModel path (built when needed)."""

    max_retries: int = Field(default=8, ge=0)
    """Retries per request for throttling, 5xx, model-not-ready and timeouts."""

    backoff_base: float = Field(default=0.25, gt=0)
    """First retry's backoff ceiling in seconds (doubles per attempt, full jitter)."""

    backoff_max: float = Field(default=20.0, gt=0)
    """Largest backoff ceiling in seconds."""

    adaptive_rate_limit: bool = True
    """Pace requests at the rate learned from throttling (unlimited until the first 429)."""

    max_concurrency: int = Field(default=4, ge=1)
    """Requests in flight at most when the documents are split into several requests."""

    max_sources_per_request: int = Field(default=MAX_SOURCES, ge=1, le=MAX_SOURCES)
    """Documents per request (the service takes 1,000 at most)."""

    _ref: ModelRef | None = PrivateAttr(default=None)
    _api: Literal["rerank", "invoke"] = PrivateAttr(default="rerank")
    _keys: tuple[SecretStr | None, SecretStr | None] = PrivateAttr(default=(None, None))
    _rate: RateLearner | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor | None = PrivateAttr(default=None)
    _usage: dict[str, int] = PrivateAttr(default_factory=dict)

    # ------------------------------------------------------------ setup

    @model_validator(mode="after")
    def _setup(self) -> Self:
        """Resolve the region, the model and the API; check AWS settings early."""
        has_keys = bool(self.aws_access_key_id and self.aws_secret_access_key)
        has_api_key = bool(self.api_key and self.api_key.get_secret_value())
        self._keys = (self.aws_access_key_id, self.aws_secret_access_key)
        given = self.client or self.runtime_client
        if given is not None:
            self.region_name = self.region_name or given.meta.region_name
        elif is_local_endpoint(self.endpoint_url):
            self.region_name, placeholder = local_endpoint_settings(
                self.region_name, self.credentials_profile_name, has_keys=has_keys
            )
            if placeholder:
                self._keys = (SecretStr("local"), SecretStr("local"))
        else:
            self.region_name = require_aws(
                self.region_name,
                self.credentials_profile_name,
                has_explicit_keys=has_keys or has_api_key,
            )
        region = self.region_name or resolve_region(None, self.credentials_profile_name)
        ref = parse_model(self.model_id, region, self.provider)
        api = self.api
        if api == "auto":
            api = "invoke" if ref.rerank_arn is None or has_api_key else "rerank"
        if api == "rerank" and ref.rerank_arn is None:
            msg = (
                f"{self.model_id} is an inference profile; the Rerank API takes foundation-model "
                "ARNs only: use api='invoke' (or 'auto')"
            )
            raise ValueError(msg)
        if api == "rerank" and ref.region is not None and ref.region != region:
            msg = (
                f"the model ARN names region {ref.region} but the client is in {region}; "
                "Rerank does not support cross-Region calls: pass region_name="
                f"{ref.region!r} or the model id alone"
            )
            raise ValueError(msg)
        if api == "invoke" and ref.provider is None:
            msg = (
                f"cannot tell which InvokeModel body {self.model_id} takes: pass "
                "provider='amazon' or provider='cohere'"
            )
            raise ValueError(msg)
        self._ref, self._api = ref, api
        self._rate = RateLearner() if self.adaptive_rate_limit else None
        self.reset_usage()
        return self

    def _client_config(self) -> Config:
        # One attempt per botocore call: backoff, rate limiting and accounting happen here.
        pool = max(self.max_concurrency, getattr(self.config, "max_pool_connections", None) or 10)
        ours = Config(
            max_pool_connections=pool, retries={"total_max_attempts": 1, "mode": "standard"}
        )
        return self.config.merge(ours) if self.config is not None else ours

    def _client(self, service: Literal["bedrock-agent-runtime", "bedrock-runtime"]) -> Any:
        field = "client" if service == "bedrock-agent-runtime" else "runtime_client"
        with self._lock:
            existing = getattr(self, field)
            if existing is not None:
                return existing
            built = create_aws_client(
                service_name=service,
                region_name=self.region_name,
                credentials_profile_name=self.credentials_profile_name,
                aws_access_key_id=self._keys[0],
                aws_secret_access_key=self._keys[1],
                aws_session_token=self.aws_session_token,
                endpoint_url=self.endpoint_url,
                config=self._client_config(),
                # Rerank is SigV4 only; a key there would only make botocore look for a token.
                api_key=self.api_key if service == "bedrock-runtime" else None,
            )
            setattr(self, field, built)
            return built

    @property
    def resolved_api(self) -> Literal["rerank", "invoke"]:
        """The API requests go through: ``"rerank"`` or ``"invoke"``."""
        return self._api

    @property
    def model_arn(self) -> str | None:
        """The foundation-model ARN sent to ``Rerank`` (None for an inference profile)."""
        assert self._ref is not None  # noqa: S101 - set by the validator
        return self._ref.rerank_arn

    # ------------------------------------------------------------ usage

    @property
    def usage(self) -> dict[str, int]:
        """Counters since construction: requests, documents, retries, throttles."""
        with self._lock:
            return dict(self._usage)

    def reset_usage(self) -> None:
        """Zero the usage counters."""
        with self._lock:
            self._usage = dict.fromkeys(("requests", "documents", "retries", "throttles"), 0)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for key, delta in deltas.items():
                self._usage[key] += delta

    # ------------------------------------------------------------ retries

    def _pause(self) -> float:
        return self._rate.delay() if self._rate is not None else 0.0

    def _retry_delay(self, err: Exception, attempt: int) -> float:
        """Seconds to wait before sending again after ``err``; raises when no retry can help."""
        kind = _fault(err)
        assert self._ref is not None  # noqa: S101 - set by the validator
        if kind == "unavailable":
            region = self.region_name or ""
            offered = OFFERED_REGIONS.get(self._ref.model, ())
            raise BedrockModelUnavailableError(
                self.model_id, region, offered, _service_says(err)
            ) from err
        if kind == "access":
            raise BedrockConfigError(access_hint(err, self.model_id)) from err
        hint = retry_after(err)
        if kind == "throttle":
            self._count(throttles=1)
            if self._rate is not None and not hint:
                self._rate.throttled()
        if kind not in ("throttle", "transient") or attempt >= self.max_retries:
            raise err
        ceiling = min(self.backoff_max, self.backoff_base * 2**attempt)
        if kind == "throttle" and self._rate is not None and not hint:
            ceiling = self.backoff_base  # the rate limiter spaces the retry
        self._count(retries=1)
        return max(random.uniform(0, ceiling), min(hint, self.backoff_max))  # noqa: S311

    def _send(self, call: Callable[[], _T]) -> _T:
        attempt = 0
        while True:
            while (pause := self._pause()) > 0:
                time.sleep(pause)
            self._count(requests=1)
            try:
                result = call()
            except Exception as err:
                delay = self._retry_delay(err, attempt)
            else:
                if self._rate is not None:
                    self._rate.success()
                return result
            time.sleep(delay)
            attempt += 1

    async def _asend(self, call: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            while (pause := self._pause()) > 0:
                await asyncio.sleep(pause)
            self._count(requests=1)
            try:
                result = await loop.run_in_executor(self._executor(), call)
            except Exception as err:
                delay = self._retry_delay(err, attempt)
            else:
                if self._rate is not None:
                    self._rate.success()
                return result
            await asyncio.sleep(delay)
            attempt += 1

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="bedrock-rerank"
                )
            return self._pool

    def close(self) -> None:
        """Shut down the worker threads (a later call starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    # ------------------------------------------------------------ one request

    def _calls(self, query: str, texts: Sequence[str], wanted: int) -> _Batch:
        """The request(s) of one batch: ``Rerank`` pages, or one ``InvokeModel``."""
        assert self._ref is not None  # noqa: S101 - set by the validator
        extra = self.additional_model_request_fields
        if self._api == "rerank":
            assert self._ref.rerank_arn is not None  # noqa: S101 - checked by the validator
            request = rerank_request(query, texts, self._ref.rerank_arn, wanted, extra)
            return _Batch(self, "rerank", request, wanted)
        assert self._ref.provider is not None  # noqa: S101 - checked by the validator
        body = json.dumps(invoke_body(self._ref.provider, query, texts, wanted, extra))
        return _Batch(self, "invoke", body, wanted)

    # ------------------------------------------------------------ public API

    def _plan(
        self, documents: Sequence[str | Document], query: str, top_n: int | None
    ) -> tuple[list[int], list[str], int | None]:
        if not isinstance(query, str) or not query.strip():
            msg = "the rerank query must be a non-empty string"
            raise ValueError(msg)
        if len(query) > MAX_QUERY_CHARS:
            msg = (
                f"the rerank query has {len(query):,} characters; Bedrock Rerank accepts at "
                f"most {MAX_QUERY_CHARS:,}"
            )
            raise ValueError(msg)
        positions: list[int] = []
        texts: list[str] = []
        for i, doc in enumerate(documents):
            text = doc.page_content if isinstance(doc, Document) else doc
            if not isinstance(text, str):
                msg = f"document {i} is {type(text).__name__}, not a str or a Document"
                raise TypeError(msg)
            if text.strip():  # a blank text cannot be sent (and answers nothing)
                positions.append(i)
                texts.append(text[:MAX_TEXT_CHARS])
        keep = top_n if top_n is not None else self.top_n
        if keep is not None and keep < 1:
            msg = f"top_n must be at least 1, got {keep}"
            raise ValueError(msg)
        return positions, texts, keep

    def rerank(
        self,
        documents: Sequence[str | Document],
        query: str,
        top_n: int | None = None,
    ) -> list[dict[str, Any]]:
        """Score documents against ``query``; best first.

        More than ``max_sources_per_request`` (1,000) documents are sent in several requests
        and merged by score. Blank documents are not sent and not returned.

        Args:
            documents: Texts or Documents.
            query: The query (1 to 32,000 characters).
            top_n: How many to return (default: the ``top_n`` field; None there: all).

        Returns:
            ``[{"index": input position, "relevance_score": float}, ...]``, highest first.

        Raises:
            ValueError: A blank or over-long query, or ``top_n`` below 1.
            BedrockModelUnavailableError: The model is not served in the region.
            BedrockConfigError: Access denied or expired credentials.
            botocore.exceptions.ClientError: Any other refusal, or retries ran out.
        """
        positions, texts, keep = self._plan(documents, query, top_n)
        if not texts:
            return []
        chunks = split(len(texts), self.max_sources_per_request)
        batches = [self._calls(query, [texts[i] for i in r], _want(keep, len(r))) for r in chunks]
        if len(batches) == 1:
            results = [batches[0].run()]
        else:
            results = list(self._executor().map(_Batch.run, batches))
        self._count(documents=len(texts))
        return _ranked(positions, chunks, results, keep)

    async def arerank(
        self,
        documents: Sequence[str | Document],
        query: str,
        top_n: int | None = None,
    ) -> list[dict[str, Any]]:
        """Async :meth:`rerank`: requests run on worker threads, waits on the event loop."""
        positions, texts, keep = self._plan(documents, query, top_n)
        if not texts:
            return []
        chunks = split(len(texts), self.max_sources_per_request)
        batches = [self._calls(query, [texts[i] for i in r], _want(keep, len(r))) for r in chunks]
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(batch: _Batch) -> list[tuple[int, float]]:
            async with gate:
                return await batch.arun()

        results = await asyncio.gather(*(one(b) for b in batches))
        self._count(documents=len(texts))
        return _ranked(positions, chunks, results, keep)

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
        *,
        top_n: int | None = None,
    ) -> Sequence[Document]:
        """The ``top_n`` documents most relevant to ``query``, with ``relevance_score``.

        Args:
            documents: Retrieved documents.
            query: The question.
            callbacks: Unused (kept for the compressor interface).
            top_n: Overrides the ``top_n`` field for this call.

        Returns:
            Copies of the best documents, best first, each with
            ``metadata["relevance_score"]``.
        """
        return _with_scores(documents, self.rerank(documents, query, top_n))

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
        *,
        top_n: int | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents` (no thread is blocked while waiting)."""
        return _with_scores(documents, await self.arerank(documents, query, top_n))


class _Batch:
    """The requests for one batch of at most 1,000 sources (sync or async)."""

    def __init__(
        self,
        owner: BedrockReranker,
        api: Literal["rerank", "invoke"],
        request: Any,
        wanted: int,
    ) -> None:
        self.owner, self.api, self.request, self.wanted = owner, api, request, wanted

    def _invoke(self) -> list[tuple[int, float]]:
        assert self.owner._ref is not None  # noqa: S101 - set by the validator
        response = self.owner._client("bedrock-runtime").invoke_model(
            modelId=self.owner._ref.invoke_id,
            body=self.request,
            accept="application/json",
            contentType="application/json",
        )
        return parse_invoke_results(json.loads(response["body"].read()))

    def _page(self, token: str | None) -> Callable[[], dict[str, Any]]:
        kwargs = dict(self.request, nextToken=token) if token else self.request

        def call() -> dict[str, Any]:
            response: dict[str, Any] = self.owner._client("bedrock-agent-runtime").rerank(**kwargs)
            return response

        return call

    def _collect(
        self, found: list[tuple[int, float]], response: dict[str, Any], seen: set[str]
    ) -> str | None:
        """Add a page's results; the token of the next page, or None when done."""
        found.extend((int(r["index"]), float(r["relevanceScore"])) for r in response["results"])
        token = response.get("nextToken")
        if not token or not response["results"] or token in seen or len(found) >= self.wanted:
            return None
        if len(seen) >= _MAX_PAGES:
            return None
        seen.add(token)
        return str(token)

    def run(self) -> list[tuple[int, float]]:
        if self.api == "invoke":
            return self.owner._send(self._invoke)
        found: list[tuple[int, float]] = []
        seen: set[str] = set()
        token: str | None = None
        while True:
            token = self._collect(found, self.owner._send(self._page(token)), seen)
            if token is None:
                return found

    async def arun(self) -> list[tuple[int, float]]:
        if self.api == "invoke":
            return await self.owner._asend(self._invoke)
        found: list[tuple[int, float]] = []
        seen: set[str] = set()
        token: str | None = None
        while True:
            token = self._collect(found, await self.owner._asend(self._page(token)), seen)
            if token is None:
                return found


def _want(keep: int | None, size: int) -> int:
    # The service refuses numberOfResults above the number of sources.
    return size if keep is None else min(keep, size)


def _ranked(
    positions: list[int],
    chunks: list[range],
    results: Sequence[list[tuple[int, float]]],
    keep: int | None,
) -> list[dict[str, Any]]:
    merged = merge(
        (
            ([positions[i] for i in chunk], found)
            for chunk, found in zip(chunks, results, strict=True)
        ),
        keep,
    )
    return [{"index": index, "relevance_score": score} for index, score in merged]


def _with_scores(documents: Sequence[Document], ranked: list[dict[str, Any]]) -> list[Document]:
    out = []
    for item in ranked:
        doc = documents[item["index"]]
        metadata = {**doc.metadata, "relevance_score": item["relevance_score"]}
        out.append(doc.model_copy(update={"metadata": metadata}))
    return out
