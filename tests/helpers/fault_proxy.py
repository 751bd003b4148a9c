"""A loopback HTTP proxy that corrupts chosen responses of a local HTTP server (LocalBedrock).

LocalBedrock answers like Bedrock; the faults a real network and service add on top are not its
job: a load balancer's plain 502 with an HTML page, a 200 whose body arrives garbled, a model that
returns a vector of the wrong length or not normalised. Put this proxy between a real boto3 client
and LocalBedrock to inject them over real HTTP.

Each request is forwarded whole, and the whole response read back (streamed responses arrive in
one piece); a fault then rewrites the status, headers and body before the client sees them.

Example:
    ```python
    with FaultProxy(bedrock.endpoint_url) as proxy:
        proxy.inject(plain_status(502), times=1)
        proxy.inject(vector_length(253), when=lambda body: body["inputText"] == "beta")
        emb = BedrockTitanEmbeddings(endpoint_url=proxy.endpoint_url, dimensions=256)
    ```
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "FaultProxy",
    "Response",
    "garbled_body",
    "plain_status",
    "vector_length",
    "vector_scaled",
]


@dataclass
class Response:
    """A response on its way back to the client; a fault edits it in place."""

    status: int
    headers: dict[str, str]
    body: bytes


Fault = Callable[[Response], None]
# Hop-by-hop and length headers: the proxy sends its own.
_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def plain_status(status: int) -> Fault:
    """A bare ``status`` with an HTML page, as a load balancer sends: no Bedrock error shape."""

    def fault(response: Response) -> None:
        response.status = status
        response.headers = {"Content-Type": "text/html"}
        response.body = b"<html><body><h1>%d</h1></body></html>" % status

    return fault


def garbled_body() -> Fault:
    """Keep the 200 and its headers, but cut the JSON body off in the middle."""

    def fault(response: Response) -> None:
        response.body = response.body[: max(1, len(response.body) // 2)]

    return fault


def _edit_vector(edit: Callable[[list[float]], list[float]]) -> Fault:
    def fault(response: Response) -> None:
        data = json.loads(response.body)
        data["embedding"] = edit(data["embedding"])
        if "float" in data.get("embeddingsByType", {}):
            data["embeddingsByType"]["float"] = data["embedding"]
        response.body = json.dumps(data).encode()

    return fault


def vector_length(n: int) -> Fault:
    """Titan's answer with its vector cut (or padded with zeros) to ``n`` values."""
    return _edit_vector(lambda v: (v + [0.0] * n)[:n])


def vector_scaled(factor: float) -> Fault:
    """Titan's answer with every value of its vector multiplied by ``factor``."""
    return _edit_vector(lambda v: [x * factor for x in v])


@dataclass
class _Rule:
    fault: Fault
    times: int | None  # None: every matching request
    when: Callable[[Any], bool] | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, owner: FaultProxy) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def handle(self) -> None:
        """Serve the connection; a client closing an idle keep-alive socket is not an error."""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def _forward(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        response = self.server.owner._exchange(self.command, self.path, self.headers, raw)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_POST = do_GET = do_PUT = do_DELETE = _forward  # noqa: N815


class FaultProxy:
    """Forward 127.0.0.1:<port> to a loopback HTTP server, applying the faults injected.

    Thread-safe. Every request is counted (``forwarded``), and every fault applied
    (``injected``). Bounded: it listens on 127.0.0.1 only and forwards to loopback only.

    Args:
        target_url: the server's ``http://127.0.0.1:<port>`` (e.g. ``LocalBedrock.endpoint_url``).
    """

    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        if target.scheme != "http" or target.hostname not in ("127.0.0.1", "localhost"):
            msg = f"FaultProxy forwards to a loopback http:// server only, not {target_url!r}"
            raise ValueError(msg)
        self.target_port = target.port or 80
        self.forwarded = 0
        self.injected = 0
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FaultProxy",
            daemon=True,
        )

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` for a client's ``endpoint_url``."""
        return f"http://127.0.0.1:{self.port}"

    def inject(
        self, fault: Fault, *, times: int | None = 1, when: Callable[[Any], bool] | None = None
    ) -> None:
        """Apply ``fault`` to the next ``times`` responses (None: all) whose request matches.

        Args:
            fault: what to do to the response (:func:`plain_status`, :func:`garbled_body`,
                :func:`vector_length`, :func:`vector_scaled`).
            times: how many responses to corrupt; None for every matching one.
            when: a predicate on the request's JSON body (None: every request matches).
        """
        with self._lock:
            self._rules.append(_Rule(fault, times, when))

    def _pick(self, raw: bytes) -> Fault | None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.forwarded += 1
            for rule in self._rules:
                if rule.times == 0 or (rule.when is not None and not rule.when(body)):
                    continue
                if rule.times is not None:
                    rule.times -= 1
                self.injected += 1
                return rule.fault
        return None

    def _exchange(self, method: str, path: str, headers: Any, raw: bytes) -> Response:
        fault = self._pick(raw)
        conn = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in _DROPPED | {"host"}}
            conn.request(method, path, body=raw, headers=sent)
            upstream = conn.getresponse()
            body = upstream.read()
            kept = {k: v for k, v in upstream.getheaders() if k.lower() not in _DROPPED}
            response = Response(upstream.status, kept, body)
        finally:
            conn.close()
        if fault is not None:
            fault(response)
        return response

    def start(self) -> FaultProxy:
        """Serve in a daemon thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
