"""LocalBedrock: a local ``bedrock-runtime`` stand-in served over real HTTP.

Real boto3 / langchain-aws clients talk to it through ``endpoint_url``; nothing is mocked on the
client side. It speaks the wire contract of InvokeModel, InvokeModelWithResponseStream (event-stream
framing with both CRCs), Converse and ConverseStream, validates requests the way Bedrock does and
answers errors in Bedrock's shape, so botocore raises the same exception classes.

The "models" behind it are stand-ins, not models (see ``_standin_models``):

* ``amazon.titan-embed-text-v2:0`` returns deterministic hashed bag-of-words/character-3-gram
  vectors: texts sharing words are close in cosine terms.
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

Test knobs (thread-safe): ``latency`` (seconds slept per request), ``throttle_rate`` (fraction of
requests answered 429, spread evenly), ``throttle_every`` (every Nth request), ``retry_after_ms``
(the 429's ``x-amz-retry-after``), ``fail_next(status, code, message, headers, times)``,
``stream_error_after(n_events, code)``; records: ``requests`` (:class:`RecordedRequest`),
``max_in_flight``; ``reset()`` clears them all.
"""

from __future__ import annotations

import base64
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
from langchain_tidb_bedrock.local import _standin_models as models

__all__ = ["LocalBedrock", "RecordedRequest", "TITAN_V2_MODEL_ID"]

TITAN_V2_MODEL_ID = "amazon.titan-embed-text-v2:0"
_ERROR_NS = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_OPS = {
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
    "converse": "Converse",
    "converse-stream": "ConverseStream",
}
_LLAMA = re.compile(r"(?:(us|eu|apac|global)\.)?meta\.llama(3(?:-[1-3])?)-\d+b-instruct-v1:0")
# Llama 3.2 and 3.3 are only served through cross-Region inference profiles.
_PROFILE_ONLY = {"3-2", "3-3"}
_TITAN_KEYS = {"inputText", "dimensions", "normalize", "embeddingTypes"}
_LLAMA_KEYS = {"prompt", "temperature", "top_p", "max_gen_len", "images"}
_INFERENCE_KEYS = {"maxTokens", "temperature", "topP", "stopSequences"}
_MAX_CHARS = 50_000
_MAX_TITAN_TOKENS = 8_192
THROTTLE_MESSAGE = "Too many requests, please wait before trying again."
INVALID_MODEL_MESSAGE = "The provided model identifier is invalid."
UNSUPPORTED_OP_MESSAGE = (
    "This action doesn't support the model that you provided. "
    "Try again with a supported text or chat model."
)


class _BedrockError(Exception):
    """An error answered in Bedrock's shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra


def _invalid(message: str) -> _BedrockError:
    return _BedrockError(400, "ValidationException", message)


def _malformed(detail: str) -> _BedrockError:
    return _invalid(f"Malformed input request: {detail}, please reformat your input and try again.")


MAX_RECORDED_REQUESTS = 100_000


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

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; requests are recorded instead."""

    def do_POST(self) -> None:
        """Serve one bedrock-runtime operation."""
        self.server.owner._handle(self)

    def _unknown(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.owner._send_error(self, _BedrockError(404, "UnknownOperationException", ""))

    do_GET = do_PUT = do_DELETE = do_HEAD = _unknown  # noqa: N815


class LocalBedrock:
    """A ``bedrock-runtime`` stand-in on a local port (stdlib ``ThreadingHTTPServer``).

    Example:
        ```python
        with LocalBedrock() as server:
            client = boto3.client("bedrock-runtime", **server.client_kwargs())
        ```
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0) -> None:
        self.host, self.port = host, port
        self._initial_latency = latency
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # Bounded: a standalone server runs for hours; tests look at the recent requests only.
        self._requests: deque[RecordedRequest] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._failures: deque[_BedrockError] = deque()
        self._stream_errors: deque[_StreamError] = deque()
        self._counter = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.latency = latency
        self.throttle_rate = 0.0
        self.throttle_every = 0
        self.retry_after_ms = 10
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

    # ------------------------------------------------------------ knobs and records

    def reset(self) -> None:
        """Clear every knob (latency back to the constructor's) and every record."""
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
                self._failures.append(_BedrockError(status, code, message, dict(headers or {})))

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
        record = RecordedRequest(
            op=op or "Unknown",
            model_id=unquote(parts[2]) if len(parts) > 2 else "",
            headers=dict(handler.headers.items()),
            body=body,
            time=time.time(),
            path=path,
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
                    raise _BedrockError(404, "UnknownOperationException", "")
                self._inject_faults()
                if raw and body is None:
                    raise _invalid(
                        "Malformed input request, please reformat your input and try again."
                    )
                self._dispatch(handler, op, record.model_id, body)
            except _BedrockError as err:
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
            raise _BedrockError(
                429, "ThrottlingException", THROTTLE_MESSAGE, {"x-amz-retry-after": retry_after}
            )

    def _dispatch(self, handler: _Handler, op: str, model_id: str, body: Any) -> None:
        kind = _model_kind(model_id)
        if kind == "titan":
            if op != "InvokeModel":
                raise _invalid(UNSUPPORTED_OP_MESSAGE)
            self._titan(handler, body)
        elif op in ("InvokeModel", "InvokeModelWithResponseStream"):
            self._llama_invoke(handler, body, stream=op != "InvokeModel")
        else:
            self._converse(handler, body, stream=op == "ConverseStream")

    # ------------------------------------------------------------ models

    def _titan(self, handler: _Handler, body: Any) -> None:
        text, dims, normalize, types = _validate_titan(body)
        tokens = models.count_tokens(text)
        if tokens > _MAX_TITAN_TOKENS:
            raise _invalid(
                f"400 Bad Request: Too many input tokens. Max input tokens: {_MAX_TITAN_TOKENS}, "
                f"request input token count: {tokens}"
            )
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

    def _llama_invoke(self, handler: _Handler, body: Any, *, stream: bool) -> None:
        prompt, max_gen_len = _validate_llama(body)
        started = time.monotonic()
        reply, reason = models.apply_limits(models.generate(prompt), max_tokens=max_gen_len)
        stop_reason = "length" if reason == "max_tokens" else "stop"
        in_tokens = models.count_tokens(prompt)
        parts = models.pieces(reply)
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

    def _converse(self, handler: _Handler, body: Any, *, stream: bool) -> None:
        prompt, last_user, config = _validate_converse(body)
        started = time.monotonic()
        reply, reason = models.apply_limits(
            models.generate(prompt, last_user),
            max_tokens=config.get("maxTokens"),
            stop_sequences=config.get("stopSequences") or (),
        )
        parts = models.pieces(reply)
        usage = {
            "inputTokens": models.count_tokens(prompt),
            "outputTokens": len(parts),
            "totalTokens": models.count_tokens(prompt) + len(parts),
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
    def _send_error(handler: _Handler, err: _BedrockError) -> None:
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


# ---------------------------------------------------------------- validation


def _model_kind(model_id: str) -> str:
    """``"titan"`` or ``"llama"``; Bedrock's errors for unknown or profile-only ids."""
    bare = model_id
    if bare.startswith("arn:"):
        bare = bare.split(":", 5)[-1].split("/", 1)[
            -1
        ]  # foundation-model/... inference-profile/...
    if bare == TITAN_V2_MODEL_ID:
        return "titan"
    match = _LLAMA.fullmatch(bare)
    if match is None:
        raise _invalid(INVALID_MODEL_MESSAGE)
    if match.group(1) is None and match.group(2) in _PROFILE_ONLY:
        raise _invalid(
            f"Invocation of model ID {bare} with on-demand throughput isn't supported. Retry "
            "your request with the ID or ARN of an inference profile that contains this model."
        )
    return "llama"


def _type_name(value: Any) -> str:
    return {str: "String", bool: "Boolean", int: "Integer", float: "Number", list: "JSONArray"}.get(
        type(value), "JSONObject"
    )


def _check_keys(body: Any, allowed: set[str], required: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _malformed(f"#: expected type: JSONObject, found: {_type_name(body)}")
    for key in body:
        if key not in allowed:
            raise _malformed(f"#: extraneous key [{key}] is not permitted")
    if required not in body:
        raise _malformed(f"#: required key [{required}] not found")
    return body


def _number(body: dict[str, Any], key: str, low: float, high: float) -> None:
    if key not in body:
        return
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _malformed(f"#/{key}: expected type: Number, found: {_type_name(value)}")
    if not low <= value <= high:
        raise _malformed(f"#/{key}: {value} is not between {low} and {high}")


def _validate_titan(body: Any) -> tuple[str, int, bool, list[str]]:
    body = _check_keys(body, _TITAN_KEYS, "inputText")
    text = body["inputText"]
    if not isinstance(text, str):
        raise _malformed(f"#/inputText: expected type: String, found: {_type_name(text)}")
    if not text:
        raise _malformed("#/inputText: expected minLength: 1, actual: 0")
    if len(text) > _MAX_CHARS:
        raise _malformed(f"#/inputText: expected maxLength: {_MAX_CHARS}, actual: {len(text)}")
    dims = body.get("dimensions", 1024)
    if isinstance(dims, bool) or dims not in (256, 512, 1024):
        raise _malformed(f"#/dimensions: {json.dumps(dims)} is not a valid enum value")
    normalize = body.get("normalize", True)
    if not isinstance(normalize, bool):
        raise _malformed(f"#/normalize: expected type: Boolean, found: {_type_name(normalize)}")
    types = body.get("embeddingTypes", ["float"])
    if not isinstance(types, list) or not types:
        raise _malformed("#/embeddingTypes: expected minimum item count: 1")
    for item in types:
        if item not in ("float", "binary"):
            raise _malformed(f"#/embeddingTypes: {json.dumps(item)} is not a valid enum value")
    return text, int(dims), normalize, types


def _validate_llama(body: Any) -> tuple[str, int]:
    body = _check_keys(body, _LLAMA_KEYS, "prompt")
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        raise _malformed(f"#/prompt: expected type: String, found: {_type_name(prompt)}")
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    _number(body, "max_gen_len", 1, 2048)
    return prompt, int(body.get("max_gen_len", 512))


def _validate_converse(body: Any) -> tuple[str, str, dict[str, Any]]:
    """The prompt text (system + user turns), the last user text and ``inferenceConfig``."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise _invalid(
            "1 validation error detected: Value null at 'messages' failed to satisfy "
            "constraint: Member must not be null"
        )
    messages = body["messages"]
    if not messages:
        raise _invalid("The model returned the following errors: messages must not be empty")
    user_texts: list[str] = []
    previous = None
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise _invalid(f"Invalid message role: {role}")
        if role == previous:
            raise _invalid(
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        if previous is None and role != "user":
            raise _invalid(
                "A conversation must start with a user message. Try again with a "
                "conversation that starts with a user message."
            )
        previous = role
        if role == "user":
            texts = [b["text"] for b in message.get("content") or [] if "text" in b]
            user_texts.append("\n".join(texts))
    config = body.get("inferenceConfig") or {}
    for key in config:
        if key not in _INFERENCE_KEYS:
            raise _invalid(f"Unknown inferenceConfig key: {key}")
    _number(config, "temperature", 0, 1)
    _number(config, "topP", 0, 1)
    if "maxTokens" in config and (
        not isinstance(config["maxTokens"], int) or config["maxTokens"] < 1
    ):
        raise _invalid("The value of maxTokens must be a positive integer.")
    system = "\n".join(b["text"] for b in body.get("system") or [] if "text" in b)
    prompt = "\n\n".join([system, *user_texts]) if system else "\n\n".join(user_texts)
    return prompt, user_texts[-1] if user_texts else "", config
