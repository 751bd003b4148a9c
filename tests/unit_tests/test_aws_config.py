"""aws_config's credential check honours container roles and instance profiles (no real AWS)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from langchain_tidb_bedrock.aws_config import (
    BedrockConfigError,
    aws_is_configured,
    credentials_available,
    require_aws,
)

CREDENTIALS = {
    "AccessKeyId": "x",
    "SecretAccessKey": "y",
    "Token": "z",
    "Expiration": "2099-01-01T00:00:00Z",
}


class _CredentialsHandler(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        body = json.dumps(CREDENTIALS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing in the environment or ~/.aws; IMDS left enabled unless a test disables it."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_METADATA_SERVICE_TIMEOUT",
        "AWS_METADATA_SERVICE_NUM_ATTEMPTS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))


@pytest.fixture
def credentials_server() -> Iterator[str]:
    _CredentialsHandler.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CredentialsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/creds"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.enable_socket  # its own credentials endpoint on 127.0.0.1 (`make unit` blocks sockets)
@pytest.mark.usefixtures("no_credentials")
def test_container_role_credentials_count(
    monkeypatch: pytest.MonkeyPatch, credentials_server: str
) -> None:
    # ECS task roles / EKS pod identity: botocore's container provider reads this URI.
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", credentials_server)
    assert credentials_available()
    assert aws_is_configured(region_name="us-east-1")
    assert require_aws("us-east-1") == "us-east-1"
    assert _CredentialsHandler.hits
    assert set(_CredentialsHandler.hits) == {"/creds"}


class _SilentMetadataHandler(BaseHTTPRequestHandler):
    """An instance-metadata endpoint that counts requests and answers none in time."""

    hits: ClassVar[list[str]] = []

    def _stall(self) -> None:
        type(self).hits.append(f"{self.command} {self.path}")
        time.sleep(3)  # longer than the probe's 1 s timeout

    def do_GET(self) -> None:
        self._stall()

    def do_PUT(self) -> None:
        self._stall()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def silent_metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    _SilentMetadataHandler.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SilentMetadataHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{server.server_port}/"
    )
    try:
        yield _SilentMetadataHandler.hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.enable_socket  # its own metadata endpoint on 127.0.0.1 (`make unit` blocks sockets)
@pytest.mark.usefixtures("no_credentials")
def test_no_credentials_is_quick_and_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, silent_metadata: list[str]
) -> None:
    # Off EC2 the instance-metadata probe must fail fast: one attempt with a 1 s timeout, counted
    # at a metadata endpoint that never answers (botocore's default is one second per attempt,
    # retried, for the token and again for the role).
    assert not aws_is_configured(region_name="us-east-1")
    # The token PUT, then one GET of the role (IMDSv1 fallback); a retry would add GETs.
    assert 1 <= len(silent_metadata) <= 2, silent_metadata
    assert len([h for h in silent_metadata if h.startswith("PUT")]) <= 1
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    silent_metadata.clear()
    assert not credentials_available()
    assert silent_metadata == []  # disabled: never asked
    with pytest.raises(BedrockConfigError, match="AWS_ACCESS_KEY_ID"):
        require_aws("us-east-1")


def test_instance_profile_provider_is_kept_unless_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import botocore.credentials

    seen: list[list[str]] = []
    original = botocore.credentials.CredentialResolver.load_credentials

    def spy(self: botocore.credentials.CredentialResolver) -> Any:
        seen.append([p.METHOD for p in self.providers])
        return original(self)

    monkeypatch.setattr(botocore.credentials.CredentialResolver, "load_credentials", spy)
    credentials_available()
    assert "iam-role" in seen[-1]
    assert "container-role" in seen[-1]
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    credentials_available()
    assert "iam-role" not in seen[-1]
    assert "container-role" in seen[-1]
