"""A loopback TCP proxy that adds network latency and counts request/response round trips.

Against a local server every round trip costs microseconds, so a client that makes three where
one would do looks as fast as one that makes one; TiDB Cloud from another region charges
20-80 ms for each. Put this proxy between the client and a local TiDB to see that cost, and to
count the round trips of an operation exactly.

Example:
    ```python
    with LatencyProxy(server.port, rtt=0.05) as proxy:
        conn = pymysql.connect(host="127.0.0.1", port=proxy.port, user="root")
        proxy.reset()
        conn.cursor().execute("SELECT 1")
        assert proxy.round_trips == 1
    ```
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import socket
import threading
import time
from types import TracebackType

from sqlalchemy.engine import make_url

__all__ = ["LatencyProxy"]

_CHUNK = 65536


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Link:
    """One proxied connection: a client socket, a server socket and three pump threads."""

    def __init__(self, proxy: LatencyProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        # Server->client chunks with their delivery time; the sender thread releases them in
        # order once due, so a multi-chunk response is delayed once, not once per chunk.
        self.outbox: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.ready = threading.Condition()
        self.awaiting_response = False
        self.dropping = False  # after a cut: the server's replies never reach the client
        self.threads = [
            threading.Thread(target=self._client_to_server, daemon=True),
            threading.Thread(target=self._server_to_proxy, daemon=True),
            threading.Thread(target=self._proxy_to_client, daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        with self.ready:
            self.outbox.append((0.0, None))
            self.ready.notify()

    def _client_to_server(self) -> None:
        try:
            while data := self.client.recv(_CHUNK):
                with self.proxy._lock:
                    # A request starts (or continues): the next server bytes answer it.
                    self.awaiting_response = True
                keep = self.proxy._take_byte_cut(len(data))
                if keep is not None:
                    # The request reaches the server only up to the armed byte: cut there.
                    self.dropping = True
                    if keep:
                        self.server.sendall(data[:keep])
                    self.close()
                    return
                marker = self.proxy.cut_after
                if marker is not None and marker in data:
                    # The request reaches the server; its reply is lost with the connection.
                    with self.proxy._lock:
                        self.proxy.cuts_left -= 1
                        if self.proxy.cuts_left <= 0:
                            self.proxy.cut_after = None
                        self.proxy.cuts_made += 1
                    self.dropping = True  # before sending: the reply may come at once
                    self.server.sendall(data)
                    time.sleep(0.3)
                    self.close()
                    return
                self.server.sendall(data)
            self.server.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()

    def _server_to_proxy(self) -> None:
        try:
            while data := self.server.recv(_CHUNK):
                if self.dropping:
                    continue
                keep = self.proxy._take_byte_cut(len(data))
                if keep is not None:
                    # The reply reaches the client only up to the armed byte, then the close.
                    self.dropping = True
                    data = data[:keep]
                    with self.ready:
                        if data:
                            self.outbox.append((time.monotonic() + self.proxy.rtt, data))
                        self.outbox.append((time.monotonic() + self.proxy.rtt, None))
                        self.ready.notify()
                    continue
                with self.proxy._lock:
                    if self.awaiting_response:
                        self.awaiting_response = False
                        self.proxy._round_trips += 1
                with self.ready:
                    self.outbox.append((time.monotonic() + self.proxy.rtt, data))
                    self.ready.notify()
        except OSError:
            pass
        with self.ready:
            self.outbox.append((time.monotonic() + self.proxy.rtt, None))
            self.ready.notify()

    def _proxy_to_client(self) -> None:
        while True:
            with self.ready:
                while not self.outbox:
                    self.ready.wait()
                due, data = self.outbox.popleft()
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if data is None:
                self.close()
                return
            try:
                self.client.sendall(data)
            except OSError:
                self.close()
                return


class LatencyProxy:
    """Forward a loopback port to a loopback ``host:port``, delaying server->client data.

    The whole round-trip time is added to the server->client direction: each request/response
    exchange then takes at least ``rtt`` seconds, however the response is chunked. A round trip
    is counted when server data follows client data on a connection (the server's greeting on
    connect, which no request preceded, is not one).

    Bounded: it listens on 127.0.0.1 only, forwards only to loopback, accepts at most
    ``max_connections`` connections and stops by itself after ``lifetime`` seconds.

    Args:
        target_port: the server's port.
        target_host: the server's host; must be loopback.
        rtt: seconds added to every server->client transfer.
        max_connections: connections accepted over the proxy's life; later ones are refused.
        lifetime: seconds after which the proxy stops by itself.
    """

    def __init__(
        self,
        target_port: int,
        *,
        target_host: str = "127.0.0.1",
        rtt: float = 0.0,
        max_connections: int = 64,
        lifetime: float = 600.0,
    ) -> None:
        if not _is_loopback(target_host):
            msg = f"LatencyProxy forwards to loopback only, not {target_host!r}"
            raise ValueError(msg)
        if rtt < 0:
            msg = "rtt must be >= 0"
            raise ValueError(msg)
        self.target = (target_host, target_port)
        self.rtt = rtt
        self.max_connections = max_connections
        self.lifetime = lifetime
        self.connections = 0
        # Bytes that, once forwarded to the server, cut that connection before any reply (once).
        self.cut_after: bytes | None = None
        self.cuts_left = 1  # how many such requests are cut before cut_after resets
        self.cuts_made = 0
        # Bytes (both directions, all connections) still forwarded before the connection
        # carrying the next one is cut mid-stream; None: no byte cut armed. Fires once.
        self.cut_at_byte: int | None = None
        self._round_trips = 0
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _take_byte_cut(self, n: int) -> int | None:
        """How much of an ``n``-byte chunk to forward before the armed byte cut (None: all)."""
        with self._lock:
            if self.cut_at_byte is None:
                return None
            if n <= self.cut_at_byte:
                self.cut_at_byte -= n
                return None
            keep, self.cut_at_byte = self.cut_at_byte, None
            self.cuts_made += 1
            return keep

    @property
    def round_trips(self) -> int:
        """Round trips counted since the start or the last :meth:`reset`."""
        with self._lock:
            return self._round_trips

    def reset(self) -> None:
        """Start counting round trips from zero."""
        with self._lock:
            self._round_trips = 0
            for link in self._links:
                link.awaiting_response = False

    def url(self, url: str) -> str:
        """``url`` (a SQLAlchemy URL of the target) rewritten to go through the proxy."""
        return (
            make_url(url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    @property
    def running(self) -> bool:
        """Whether the proxy still accepts connections."""
        return self._thread.is_alive()

    def start(self) -> LatencyProxy:
        """Listen and forward in background threads; returns self."""
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self._thread.start()
        return self

    def _serve(self) -> None:
        deadline = time.monotonic() + self.lifetime
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                if self.connections >= self.max_connections:
                    client.close()
                    continue
                try:
                    server = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                for s in (client, server):
                    s.settimeout(None)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.connections += 1
                link = _Link(self, client, server)
                with self._lock:
                    self._links.append(link)
                link.start()
        finally:
            self._listener.close()
            self._close_links()

    def _close_links(self) -> None:
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def stop(self) -> None:
        """Stop listening and close every proxied connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        else:
            self._listener.close()
            self._close_links()

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
