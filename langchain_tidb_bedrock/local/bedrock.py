"""LocalBedrock: a local ``bedrock-runtime`` stand-in served over real HTTP.

Real boto3 / langchain-aws clients talk to it through ``endpoint_url``; nothing is mocked on the
client side. It speaks the wire contract of InvokeModel, InvokeModelWithResponseStream (event-stream
framing with both CRCs), Converse and ConverseStream, validates requests the way Bedrock does and
answers errors in Bedrock's shape, so botocore raises the same exception classes.

The "models" behind it are stand-ins, not models (see ``_standin_models``):

* ``amazon.titan-embed-text-v2:0`` returns deterministic hashed bag-of-words/character-3-gram
  vectors: texts sharing words are close in cosine terms.
* ``amazon.rerank-v1:0`` and ``cohere.rerank-v3-5:0`` score each document by a BM25-style overlap
  of its words with the query (see ``_rerank``), through bedrock-agent-runtime ``Rerank``
  (``POST /rerank``, on the same port) and through InvokeModel. They are served only in the
  regions AWS lists for them (the region is read from the request's SigV4 credential scope;
  us-east-1 without one), so ``amazon.rerank-v1:0`` is refused in us-east-1 as on the service.
* Llama 3 ids (``us.meta.llama3-2-3b-instruct-v1:0``, ``meta.llama3-8b-instruct-v1:0``, ...)
  answer extractively: the sentences of the ``[n]`` passages in the prompt that best overlap the
  question, each cited, prefixed with ``(LocalBedrock stand-in)``; or a rewritten standalone
  question when the prompt has a ``Follow-up question:``.

Prompt contract of the Llama stand-in (the prompt is the system text plus the user turns, or the raw
InvokeModel ``prompt``):

* passages are lines starting ``[1] ``, ``[2] ``...; a passage runs on over the following lines
  until the next ``[n] `` line or a blank line;
* the question is the text after the last ``Question:`` (up to a blank line), else the last user
  message;
* answer: the 1-2 passage sentences sharing most non-stop-words with the question, each followed by
  its ``[n]``, prefixed ``(LocalBedrock stand-in) ``; with no overlap:
  ``(LocalBedrock stand-in) I don't know based on the provided context.``;
* a prompt containing ``Follow-up question:`` gets only a standalone question: the follow-up plus
  the content words of the last ``Human:`` line under ``Chat history:`` that it lacks.

Quotas, per model id as on the service (see ``_quotas``): ``requests_per_minute``,
``tokens_per_minute`` and ``tokens_per_day`` (constructor arguments and attributes, settable while
serving; None = unlimited) answer 429 ThrottlingException with Bedrock's messages and no
retry-after header; the rerank models count requests only (their quotas are in requests).
Requests are validated as the service does (see ``_validation``).

Test knobs (thread-safe): ``latency`` (seconds slept per request), ``throttle_rate`` (fraction of
requests answered 429, spread evenly), ``throttle_every`` (every Nth request), ``retry_after_ms``
(the 429's ``x-amz-retry-after``), ``fail_next(status, code, message, headers, times)``,
``stream_error_after(n_events, code)``, ``rerank_page_size`` (``Rerank`` results per page, the
rest behind ``nextToken``; None = one page), ``add_inference_profile(model_id)`` (an application
inference profile wrapping a model, for InvokeModel); records: ``requests``
(:class:`RecordedRequest`, with the request's region), ``max_in_flight``; ``reset()`` clears
them all.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from langchain_tidb_bedrock.local import _eventstream as es
from langchain_tidb_bedrock.local import _rerank as reranker
from langchain_tidb_bedrock.local import _standin_models as models
from langchain_tidb_bedrock.local._batch_jobs import BatchJobs
from langchain_tidb_bedrock.local._quotas import REQUESTS_MESSAGE, Quotas
from langchain_tidb_bedrock.local._validation import (
    LLAMA_DEFAULT_MAX_TOKENS,
    TITAN_V2_MODEL_ID,
    UNSUPPORTED_OP_MESSAGE,
    UNSUPPORTED_STREAMING_MESSAGE,
    BedrockError,
    Model,
    check_media_types,
    check_region,
    invalid,
    resolve_model,
    tool_call,
    validate_converse,
    validate_llama,
    validate_rerank,
    validate_rerank_invoke,
    validate_titan,
)

__all__ = ["LocalBedrock", "RecordedRequest", "TITAN_V2_MODEL_ID"]

_ERROR_NS = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_OPS = {
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
    "converse": "Converse",
    "converse-stream": "ConverseStream",
}
_MAX_TITAN_TOKENS = 8_192
THROTTLE_MESSAGE = REQUESTS_MESSAGE

MAX_RECORDED_REQUESTS = 100_000
DEFAULT_REGION = "us-east-1"
_SCOPE_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")


@dataclass
class RecordedRequest:
    """One request as LocalBedrock saw it (``status`` is filled in once answered)."""

    op: str
    model_id: str
    headers: dict[str, str]
    body: Any
    time: float
    path: str = ""
    status: int = 0
    region: str = ""


@dataclass
class _StreamError:
    after: int
    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the accept backlog must absorb 64+ clients connecting at once

    def __init__(self, address: tuple[str, int], owner: LocalBedrock) -> None:
        super().__init__(address, _Handler)
        self.owner = owner


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server
    record: RecordedRequest | None = None

    def start_response(self, status: int) -> None:
        # Record the status before any byte goes out: a client may read ``requests`` right after.
        if self.record is not None:
            self.record.status = status
        self.send_response(status)

    def handle(self) -> None:
        """Serve the connection; a client closing an idle keep-alive socket is not an error."""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; requests are recorded instead."""

    def do_POST(self) -> None:
        """Serve one bedrock-runtime operation (or a batch-job control-plane one)."""
        if not self.server.owner.batch_jobs.serve(self, "POST"):
            self.server.owner._handle(self)

    def do_GET(self) -> None:
        """Serve GetModelInvocationJob and ListModelInvocationJobs."""
        if not self.server.owner.batch_jobs.serve(self, "GET"):
            self._unknown()

    def _unknown(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.owner._send_error(self, BedrockError(404, "UnknownOperationException", ""))

    do_PUT = do_DELETE = do_HEAD = _unknown  # noqa: N815


class LocalBedrock:
    """A ``bedrock-runtime`` stand-in on a local port (stdlib ``ThreadingHTTPServer``).

    Example:
        ```python
        with LocalBedrock() as server:
            client = boto3.client("bedrock-runtime", **server.client_kwargs())
        ```
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        tokens_per_day: int | None = None,
        s3_endpoint_url: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._initial_latency = latency
        self._initial_quotas = (requests_per_minute, tokens_per_minute, tokens_per_day)
        self.quotas = Quotas(requests_per_minute, tokens_per_minute, tokens_per_day)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # Bounded: a standalone server runs for hours; tests look at the recent requests only.
        self._requests: deque[RecordedRequest] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._failures: deque[BedrockError] = deque()
        self._stream_errors: deque[_StreamError] = deque()
        self._counter = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.latency = latency
        self.throttle_rate = 0.0
        self.throttle_every = 0
        self.retry_after_ms = 10
        self.rerank_page_size: int | None = None
        self.inference_profiles: dict[str, str] = {}
        # Batch inference jobs (control plane + runner) read and write S3 at s3_endpoint_url.
        self.batch_jobs = BatchJobs(self, s3_endpoint_url)
        self.reset()

    # ------------------------------------------------------------ lifecycle

    def _bind(self) -> _Server:
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
        return self._server

    def start(self) -> LocalBedrock:
        """Serve in a daemon thread; returns ``self``."""
        server = self._bind()
        if self._thread is None:
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="LocalBedrock",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the foreground until interrupted."""
        server = self._bind()
        try:
            server.serve_forever()
        finally:
            server.server_close()
            self._server = None

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(timeout=5)
                self._thread = None
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalBedrock:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` for ``endpoint_url=`` of boto3 / langchain-aws clients."""
        if self._server is None:
            if self.port:  # a fixed port is known before binding
                return f"http://{self.host}:{self.port}"
            msg = "LocalBedrock is not started; call start() or use it as a context manager"
            raise RuntimeError(msg)
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("bedrock-runtime", ...)``."""
        return {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"}

    # ------------------------------------------------------------ quotas

    @property
    def requests_per_minute(self) -> float | None:
        """Requests per minute per model id (None: unlimited); settable while serving."""
        return self.quotas.requests_per_minute

    @requests_per_minute.setter
    def requests_per_minute(self, value: float | None) -> None:
        self.quotas.requests_per_minute = value

    @property
    def tokens_per_minute(self) -> float | None:
        """Tokens (input + reserved output) per minute per model id (None: unlimited)."""
        return self.quotas.tokens_per_minute

    @tokens_per_minute.setter
    def tokens_per_minute(self, value: float | None) -> None:
        self.quotas.tokens_per_minute = value

    @property
    def tokens_per_day(self) -> int | None:
        """Tokens per model id per UTC day (None: unlimited)."""
        return self.quotas.tokens_per_day

    @tokens_per_day.setter
    def tokens_per_day(self, value: int | None) -> None:
        self.quotas.tokens_per_day = value

    def _admit(self, model: Model, tokens: int) -> None:
        refused = self.quotas.admit(model.key, tokens)
        if refused is not None:
            raise BedrockError(429, "ThrottlingException", refused)

    # ------------------------------------------------------------ knobs and records

    def reset(self) -> None:
        """Clear every knob (latency and quotas back to the constructor's) and every record."""
        rpm, tpm, tpd = self._initial_quotas
        self.quotas.requests_per_minute = rpm
        self.quotas.tokens_per_minute = tpm
        self.quotas.tokens_per_day = tpd
        self.quotas.reset()
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._stream_errors.clear()
            self._counter = 0
            self.max_in_flight = 0  # the peak since reset; in_flight itself stays live
            self.latency = self._initial_latency
            self.throttle_rate = 0.0
            self.throttle_every = 0
            self.retry_after_ms = 10
            self.rerank_page_size = None
            self.inference_profiles = {}

    def add_inference_profile(self, model_id: str, region: str = DEFAULT_REGION) -> str:
        """Create an application inference profile wrapping ``model_id``; returns its ARN.

        InvokeModel accepts the ARN and runs the wrapped model (``Rerank`` refuses it, as the
        service does). ``reset()`` forgets the profiles.
        """
        resolve_model(model_id)  # unknown ids are refused here already
        profile = hashlib.blake2b(model_id.encode(), digest_size=6).hexdigest()
        with self._lock:
            self.inference_profiles[profile] = model_id
        return f"arn:aws:bedrock:{region}:123456789012:application-inference-profile/{profile}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received since the last ``reset()``."""
        with self._lock:
            return list(self._requests)

    def fail_next(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with this error (e.g. 503 ServiceUnavailable)."""
        with self._lock:
            for _ in range(times):
                self._failures.append(BedrockError(status, code, message, dict(headers or {})))

    def stream_error_after(
        self,
        n_events: int,
        code: str = "modelStreamErrorException",
        message: str = "The model stream failed (LocalBedrock injected error).",
    ) -> None:
        """Make the next streamed response send ``n_events`` events, then an exception event."""
        extra: dict[str, Any] = {}
        if code == "modelStreamErrorException":
            extra = {"originalStatusCode": 500, "originalMessage": message}
        with self._lock:
            self._stream_errors.append(_StreamError(n_events, code, message, extra))

    # ------------------------------------------------------------ request handling

    def _handle(self, handler: _Handler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        path = urlsplit(handler.path).path
        parts = path.split("/")  # split before unquoting: the id itself may hold "/"
        op = _OPS.get(parts[3]) if len(parts) == 4 and parts[1] == "model" else None
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        model_id = unquote(parts[2]) if len(parts) > 2 else ""
        if path == "/rerank":  # bedrock-agent-runtime Rerank: the model is in the body
            op, model_id = "Rerank", _rerank_model_arn(body)
        scope = _SCOPE_REGION.search(handler.headers.get("Authorization") or "")
        record = RecordedRequest(
            op=op or "Unknown",
            model_id=model_id,
            headers=dict(handler.headers.items()),
            body=body,
            time=time.time(),
            path=path,
            region=scope.group(1) if scope else DEFAULT_REGION,
        )
        handler.record = record
        with self._lock:
            self._requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency > 0:
                time.sleep(self.latency)
            try:
                if op is None:
                    raise BedrockError(404, "UnknownOperationException", "")
                self._inject_faults()
                check_media_types(op, handler.headers, raw)
                if raw and body is None:
                    raise invalid(
                        "Malformed input request, please reformat your input and try again."
                    )
                self._dispatch(handler, op, record.model_id, body, record.region)
            except BedrockError as err:
                self._send_error(handler, err)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (e.g. closed a stream early)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _inject_faults(self) -> None:
        with self._lock:
            if self._failures:
                raise self._failures.popleft()
            k = self._counter
            self._counter += 1
            rate, every = self.throttle_rate, self.throttle_every
            retry_after = str(self.retry_after_ms)
        # Bresenham-style spread: exactly ``rate`` of requests, deterministic, never random bursts.
        throttled = (rate > 0 and int((k + 1) * rate) > int(k * rate)) or (
            every > 0 and k % every == every - 1
        )
        if throttled:
            raise BedrockError(
                429, "ThrottlingException", THROTTLE_MESSAGE, {"x-amz-retry-after": retry_after}
            )

    def _dispatch(self, handler: _Handler, op: str, model_id: str, body: Any, region: str) -> None:
        if op == "Rerank":
            self._rerank(handler, body, region)
            return
        with self._lock:
            profiles = dict(self.inference_profiles)
        model = resolve_model(model_id, profiles)
        if model.kind == "rerank":
            check_region(model, region)
            if op == "InvokeModelWithResponseStream":
                raise invalid(UNSUPPORTED_STREAMING_MESSAGE)
            if op != "InvokeModel":
                raise invalid(UNSUPPORTED_OP_MESSAGE)
            self._rerank_invoke(handler, model, body)
        elif model.kind == "titan":
            if op == "InvokeModelWithResponseStream":
                raise invalid(UNSUPPORTED_STREAMING_MESSAGE)
            if op != "InvokeModel":
                raise invalid(UNSUPPORTED_OP_MESSAGE)
            self._titan(handler, model, body)
        elif op in ("InvokeModel", "InvokeModelWithResponseStream"):
            self._llama_invoke(handler, model, body, stream=op != "InvokeModel")
        else:
            self._converse(handler, model, body, stream=op == "ConverseStream")

    # ------------------------------------------------------------ models

    def _titan(self, handler: _Handler, model: Model, body: Any) -> None:
        text, dims, normalize, types = validate_titan(body)
        tokens = models.count_tokens(text)
        if tokens > _MAX_TITAN_TOKENS:
            raise invalid(
                f"400 Bad Request: Too many input tokens. Max input tokens: {_MAX_TITAN_TOKENS}, "
                f"request input token count: {tokens}"
            )
        self._admit(model, tokens)
        vector = models.embed(text, dims, normalize=normalize)
        # The float vector is serialised once and spliced in twice: this is the server's hot path.
        floats = json.dumps(vector)
        by_type = [f'"float": {floats}'] if "float" in types else []
        if "binary" in types:
            by_type.append(f'"binary": {json.dumps(models.binary(vector))}')
        data = (
            f'{{"embedding": {floats}, "inputTextTokenCount": {tokens}, '
            f'"embeddingsByType": {{{", ".join(by_type)}}}}}'
        )
        self._send_json(handler, data, input_tokens=tokens, output_tokens=0)

    def _rerank(self, handler: _Handler, body: Any, region: str) -> None:
        request = validate_rerank(body, region)
        # The token is bound to the request it continues (everything but the token itself).
        fingerprint = _fingerprint({k: v for k, v in body.items() if k != "nextToken"})
        start = 0
        if request.next_token is not None:
            start = _read_token(request.next_token, fingerprint)
        self._admit(request.model, 0)  # rerank quotas count requests, not tokens
        ranked = reranker.rank(request.query, request.texts, request.number_of_results)
        with self._lock:
            page = self.rerank_page_size
        end = len(ranked) if page is None else min(len(ranked), start + page)
        payload: dict[str, Any] = {
            "results": [{"index": i, "relevanceScore": score} for i, score in ranked[start:end]]
        }
        if end < len(ranked):
            payload["nextToken"] = _make_token(end, fingerprint)
        self._send_json(handler, payload)

    def _rerank_invoke(self, handler: _Handler, model: Model, body: Any) -> None:
        query, texts, top_n = validate_rerank_invoke(body, model)
        self._admit(model, 0)
        results = [
            {"index": i, "relevance_score": score}
            for i, score in reranker.rank(query, texts, top_n)
        ]
        payload: dict[str, Any] = {"results": results}
        if model.key.startswith("cohere."):
            payload = {
                "id": str(uuid.uuid4()),
                "results": results,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            }
        self._send_json(handler, payload)

    def _llama_invoke(self, handler: _Handler, model: Model, body: Any, *, stream: bool) -> None:
        prompt, max_gen_len = validate_llama(body)
        in_tokens = models.count_tokens(prompt)
        # Bedrock reserves the input plus the whole output budget up front, then refunds.
        self._admit(model, in_tokens + max_gen_len)
        started = time.monotonic()
        reply, reason = models.apply_limits(models.generate(prompt), max_tokens=max_gen_len)
        stop_reason = "length" if reason == "max_tokens" else "stop"
        parts = models.pieces(reply)
        self.quotas.settle(model.key, in_tokens + max_gen_len, in_tokens + len(parts))
        if not stream:
            payload = {
                "generation": reply,
                "prompt_token_count": in_tokens,
                "generation_token_count": len(parts),
                "stop_reason": stop_reason,
            }
            self._send_json(handler, payload, input_tokens=in_tokens, output_tokens=len(parts))
            return

        def chunks() -> Iterator[bytes]:
            for i, piece in enumerate(parts):
                yield _chunk(
                    {
                        "generation": piece,
                        "prompt_token_count": in_tokens if i == 0 else None,
                        "generation_token_count": i + 1,
                        "stop_reason": None,
                    }
                )
            latency_ms = int((time.monotonic() - started) * 1000)
            yield _chunk(
                {
                    "generation": "",
                    "prompt_token_count": None,
                    "generation_token_count": len(parts),
                    "stop_reason": stop_reason,
                    "amazon-bedrock-invocationMetrics": {
                        "inputTokenCount": in_tokens,
                        "outputTokenCount": len(parts),
                        "invocationLatency": latency_ms,
                        "firstByteLatency": latency_ms,
                    },
                }
            )

        self._send_stream(handler, chunks(), {"X-Amzn-Bedrock-Content-Type": "application/json"})

    def _converse(self, handler: _Handler, model: Model, body: Any, *, stream: bool) -> None:
        prompt, last_user, config = validate_converse(body, model)
        in_tokens = models.count_tokens(prompt)
        reserved = in_tokens + int(config.get("maxTokens") or LLAMA_DEFAULT_MAX_TOKENS)
        self._admit(model, reserved)
        started = time.monotonic()
        call = tool_call(body, last_user) if model.tools else None
        if call is not None:
            self._tool_use(handler, model, call, reserved, in_tokens, started, stream=stream)
            return
        reply, reason = models.apply_limits(
            models.generate(prompt, last_user),
            max_tokens=config.get("maxTokens"),
            stop_sequences=config.get("stopSequences") or (),
        )
        parts = models.pieces(reply)
        self.quotas.settle(model.key, reserved, in_tokens + len(parts))
        usage = {
            "inputTokens": in_tokens,
            "outputTokens": len(parts),
            "totalTokens": in_tokens + len(parts),
        }
        if not stream:
            payload = {
                "output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
                "stopReason": reason,
                "usage": usage,
                "metrics": {"latencyMs": int((time.monotonic() - started) * 1000)},
            }
            self._send_json(handler, payload)
            return

        def events() -> Iterator[bytes]:
            yield es.event("messageStart", {"role": "assistant"})
            for piece in parts:
                yield es.event(
                    "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}
                )
            yield es.event("contentBlockStop", {"contentBlockIndex": 0})
            yield es.event("messageStop", {"stopReason": reason})
            latency_ms = int((time.monotonic() - started) * 1000)
            yield es.event("metadata", {"usage": usage, "metrics": {"latencyMs": latency_ms}})

        self._send_stream(handler, events(), {})

    def _tool_use(
        self,
        handler: _Handler,
        model: Model,
        call: dict[str, Any],
        reserved: int,
        in_tokens: int,
        started: float,
        *,
        stream: bool,
    ) -> None:
        """Answer with one ``toolUse`` block (stopReason ``tool_use``), as Converse does."""
        arguments = json.dumps(call["input"])
        out_tokens = models.count_tokens(arguments)
        self.quotas.settle(model.key, reserved, in_tokens + out_tokens)
        usage = {
            "inputTokens": in_tokens,
            "outputTokens": out_tokens,
            "totalTokens": in_tokens + out_tokens,
        }
        if not stream:
            message = {"role": "assistant", "content": [{"toolUse": call}]}
            self._send_json(
                handler,
                {
                    "output": {"message": message},
                    "stopReason": "tool_use",
                    "usage": usage,
                    "metrics": {"latencyMs": int((time.monotonic() - started) * 1000)},
                },
            )
            return
        start = {"toolUse": {"toolUseId": call["toolUseId"], "name": call["name"]}}

        def events() -> Iterator[bytes]:
            yield es.event("messageStart", {"role": "assistant"})
            yield es.event("contentBlockStart", {"contentBlockIndex": 0, "start": start})
            yield es.event(
                "contentBlockDelta",
                {"contentBlockIndex": 0, "delta": {"toolUse": {"input": arguments}}},
            )
            yield es.event("contentBlockStop", {"contentBlockIndex": 0})
            yield es.event("messageStop", {"stopReason": "tool_use"})
            latency_ms = int((time.monotonic() - started) * 1000)
            yield es.event("metadata", {"usage": usage, "metrics": {"latencyMs": latency_ms}})

        self._send_stream(handler, events(), {})

    # ------------------------------------------------------------ responses

    @staticmethod
    def _send_json(
        handler: _Handler,
        payload: Any,  # a JSON-able object, or already-serialised JSON text
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        handler.start_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if input_tokens is not None:
            handler.send_header("X-Amzn-Bedrock-Input-Token-Count", str(input_tokens))
            handler.send_header("X-Amzn-Bedrock-Output-Token-Count", str(output_tokens or 0))
            handler.send_header("X-Amzn-Bedrock-Invocation-Latency", "1")
        handler.end_headers()
        handler.wfile.write(data)

    def _send_stream(
        self, handler: _Handler, frames: Iterator[bytes], headers: dict[str, str]
    ) -> None:
        with self._lock:
            error = self._stream_errors.popleft() if self._stream_errors else None
        handler.start_response(200)
        handler.send_header("Content-Type", "application/vnd.amazon.eventstream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        for sent, message in enumerate(frames):
            if error is not None and sent >= error.after:
                break
            _write_chunk(handler, message)
        if error is not None:
            _write_chunk(handler, es.exception(error.code, error.message, **error.extra))
        handler.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _send_error(handler: _Handler, err: BedrockError) -> None:
        data = json.dumps({"message": err.message, **err.extra}).encode()
        handler.start_response(err.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        handler.send_header("x-amzn-ErrorType", err.code + _ERROR_NS)
        for name, value in err.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)


def _write_chunk(handler: _Handler, data: bytes) -> None:
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _chunk(obj: dict[str, Any]) -> bytes:
    return es.event("chunk", {"bytes": base64.b64encode(json.dumps(obj).encode()).decode()})


def _rerank_model_arn(body: Any) -> str:
    try:
        config = body["rerankingConfiguration"]["bedrockRerankingConfiguration"]
        return str(config["modelConfiguration"]["modelArn"])
    except (KeyError, TypeError):
        return ""


def _fingerprint(body: Any) -> str:
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=8).hexdigest()


def _make_token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{fingerprint}".encode()).decode()


def _read_token(token: str, fingerprint: str) -> int:
    """The offset a ``nextToken`` continues from; refused when it belongs to another request."""
    try:
        offset, _, bound = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if bound == fingerprint:
            return int(offset)
    except ValueError:
        pass
    raise invalid("The nextToken is invalid or does not match this request.")
