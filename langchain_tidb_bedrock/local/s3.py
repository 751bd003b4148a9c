"""LocalS3: Amazon S3 on a local port, served by moto's server mode.

Real boto3 S3 clients talk to it over HTTP through ``endpoint_url``; nothing is patched in the
client process. It needs the ``s3`` extra (``pip install 'langchain-tidb-bedrock[s3]'``, which
installs ``moto[server]``). LocalBedrock's batch inference jobs read their input from it and write
their output to it, the way Bedrock uses the caller's S3 buckets.
"""

from __future__ import annotations

import contextlib
import io
import logging
from types import TracebackType
from typing import Any

__all__ = ["LocalS3"]

_REGION = "us-east-1"


class LocalS3:
    """An S3 stand-in on a local port (moto's ``ThreadedMotoServer``), for real boto3 clients.

    Example:
        ```python
        with LocalS3() as s3:
            client = boto3.client("s3", **s3.client_kwargs())
            client.create_bucket(Bucket="docs")
        ```

    moto keeps its data in process-wide backends, so two LocalS3 in one process share buckets;
    :meth:`reset` empties them all.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._server: Any = None

    def start(self) -> LocalS3:
        """Serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as err:  # pragma: no cover - depends on the install
            msg = "LocalS3 needs moto's server mode: pip install 'langchain-tidb-bedrock[s3]'"
            raise ImportError(msg) from err
        # werkzeug logs every request at INFO; the suite and benchmarks want quiet.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        with contextlib.redirect_stdout(io.StringIO()):
            server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def reset(self) -> None:
        """Delete every bucket and object (all moto backends of this process)."""
        from moto.backends import get_backend

        for backend in get_backend("s3").values():
            for partition in backend.values():
                partition.reset()

    def __enter__(self) -> LocalS3:
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
        """``http://host:port`` for ``endpoint_url=`` of boto3 S3 clients."""
        if self._server is None:
            msg = "LocalS3 is not started; call start() or use it as a context manager"
            raise RuntimeError(msg)
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", ...)``."""
        return {"endpoint_url": self.endpoint_url, "region_name": _REGION}
