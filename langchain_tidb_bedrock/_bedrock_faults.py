"""What a failed Bedrock call means: the one classification every Bedrock caller shares.

The Titan embeddings, the RAG answer stream and any other code that calls ``bedrock-runtime``
decide "wait and retry", "stop everything" or "give up on this one" from :func:`classify`, so a
daily-quota 429 is fatal everywhere, not retried in one place and failed fast in another.

Example:
    ```python
    try:
        response = client.invoke_model(...)
    except Exception as exc:
        if classify(exc) in RETRYABLE and attempt < max_retries:
            ...  # back off (at least retry_after(exc) seconds) and send again
        raise
    ```

The kinds (:data:`Fault`):

* ``"throttle"``: a per-minute quota or a busy model (429 ThrottlingException, also in-stream
  ``throttlingException``); slow down and retry.
* ``"quota_exhausted"``: the daily token quota ("Too many tokens per day", also 429) or a
  ServiceQuotaExceededException; no retry helps today, and every other request meets it too.
* ``"transient"``: 5xx (with or without Bedrock's error shape: a load balancer's plain 502 is
  one), model not ready, model timeout, a dropped or timed-out connection, a body cut short, an
  in-stream model error, or a 200 whose body could not be read
  (:class:`~langchain_tidb_bedrock.errors.BedrockResponseError`); retry with backoff.
* ``"input_too_long"``: "Too many input tokens" (400); the service's count is in the message
  (:func:`reported_token_count`), so the input can be cut and sent once more.
* ``"access"``: 403, unknown or expired credentials; no retry helps (see :func:`access_hint`).
* ``"fatal"``: anything else (a validation error, an unknown model...); not retried.

This module imports nothing of the package but ``errors``.
"""

from __future__ import annotations

import re
from typing import Literal

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from langchain_tidb_bedrock.errors import BedrockResponseError

__all__ = [
    "RETRYABLE",
    "Fault",
    "access_hint",
    "classify",
    "describe",
    "error_code",
    "refuses_every_request",
    "refused_model",
    "reported_token_count",
    "retry_after",
    "retryable",
]

Fault = Literal["throttle", "quota_exhausted", "transient", "input_too_long", "access", "fatal"]
"""What a failed call means for its caller (see the module docstring)."""

RETRYABLE: frozenset[Fault] = frozenset({"throttle", "transient"})
"""The kinds a retry (after a backoff) can cure."""

# Codes compare in lower case: an HTTP error says "ThrottlingException", the same error inside
# an event stream says "throttlingException".
_THROTTLE_CODES = {"throttlingexception", "toomanyrequestsexception"}
_QUOTA_CODES = {"servicequotaexceededexception"}
_TRANSIENT_CODES = {
    "serviceunavailableexception",
    "internalserverexception",
    "modelnotreadyexception",
    "modeltimeoutexception",
    "modelstreamerrorexception",
    "serviceunavailable",
    "internalfailure",
    "requesttimeout",
}
_ACCESS_CODES = {
    "accessdeniedexception",
    "accessdenied",
    "unrecognizedclientexception",
    "expiredtokenexception",
    "expiredtoken",
    "invalidsignatureexception",
}
_EXPIRED_CODES = {"expiredtokenexception", "expiredtoken"}
# Refusals of what every request of a call shares (model id, parameters), not of one input.
_SHAPE_CODES = {"validationexception", "resourcenotfoundexception", "unknownoperationexception"}
_NETWORK_ERRORS = (
    ReadTimeoutError,
    ConnectTimeoutError,
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,  # the body ended before its Content-Length
    ResponseStreamingError,  # the connection broke while the body was read
)
_DAILY = re.compile(r"per\s+day", re.IGNORECASE)
_TOKEN_COUNT = re.compile(r"Too many input tokens.*?request input token count:\s*(\d+)", re.S)
_MAX_TOKENS = re.compile(r"Max input tokens:\s*(\d+)")
_MODEL_ID = re.compile(r"model identifier|model not found", re.IGNORECASE)


def _details(exc: BaseException) -> tuple[str, str, int]:
    """``(code, message, HTTP status)`` of a botocore ``ClientError``; empty otherwise."""
    if not isinstance(exc, ClientError):
        return "", "", 0
    info = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(info.get("Code", "")), str(info.get("Message", "")), int(status or 0)


def error_code(exc: BaseException) -> str:
    """The service's error code (``"ThrottlingException"``, ``"502"``...), or ``""``."""
    return _details(exc)[0]


def classify(exc: BaseException) -> Fault:
    """The :data:`Fault` kind of ``exc``, an error raised by a Bedrock call.

    Args:
        exc: What the call raised: a botocore ``ClientError`` (HTTP or in-stream), a botocore
            connection error, a :class:`~langchain_tidb_bedrock.errors.BedrockResponseError`,
            or anything else (``"fatal"``).

    Returns:
        One of ``"throttle"``, ``"quota_exhausted"``, ``"transient"``, ``"input_too_long"``,
        ``"access"``, ``"fatal"``.
    """
    if isinstance(exc, (*_NETWORK_ERRORS, BedrockResponseError)):
        return "transient"
    code, message, status = _details(exc)
    key = code.lower()
    if key in _THROTTLE_CODES:
        # The daily token quota answers 429 ThrottlingException too; waiting does not cure it.
        return "quota_exhausted" if _DAILY.search(message) else "throttle"
    if key in _QUOTA_CODES:
        return "quota_exhausted"
    if key in _TRANSIENT_CODES or status >= 500 or (code.isdigit() and code.startswith("5")):
        return "transient"
    if key in _ACCESS_CODES or status == 403:
        return "access"
    if key == "validationexception" and _TOKEN_COUNT.search(message):
        return "input_too_long"
    return "fatal"


def retryable(exc: BaseException) -> bool:
    """Whether a retry after a backoff can cure ``exc`` (a throttle or a transient fault)."""
    return classify(exc) in RETRYABLE


def refuses_every_request(exc: BaseException) -> bool:
    """Whether every other request of the same call would meet ``exc`` too.

    True for an exhausted quota, an access error, and the service refusing what all the requests
    of a call share (a validation error that is not about one input's length, an unknown model
    or operation). A fault in one response (5xx, a garbled body, a wrong vector, a model error on
    one input) is not: the other requests go on.
    """
    kind = classify(exc)
    if kind in ("quota_exhausted", "access"):
        return True
    return kind == "fatal" and error_code(exc).lower() in _SHAPE_CODES


def refused_model(exc: BaseException) -> bool:
    """Whether Bedrock refused the model id itself (an unknown or mistyped identifier)."""
    code, message, _ = _details(exc)
    return code.lower() in ("validationexception", "resourcenotfoundexception") and bool(
        _MODEL_ID.search(message)
    )


def describe(exc: BaseException) -> str:
    """``"Code: message"`` of a service error in one line, else the exception's type."""
    code, message, _ = _details(exc)
    return f"{code}: {' '.join(message.split())}" if code else type(exc).__name__


def retry_after(exc: BaseException) -> float:
    """The server's ``x-amz-retry-after`` hint in seconds (0 when there is none)."""
    if not isinstance(exc, ClientError):
        return 0.0
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return max(0.0, float(headers.get("x-amz-retry-after", 0)) / 1000.0)
    except (TypeError, ValueError):
        return 0.0


def reported_token_count(exc: BaseException) -> tuple[int, int] | None:
    """``(count, limit)`` from a "Too many input tokens" refusal, else None."""
    _, message, _ = _details(exc)
    found = _TOKEN_COUNT.search(message)
    if found is None:
        return None
    limit = _MAX_TOKENS.search(message)
    return int(found.group(1)), int(limit.group(1)) if limit else 8_192


def access_hint(exc: BaseException, model_id: str) -> str:
    """What to check after a 403 or an expired-credentials error (no secrets, no input text)."""
    code, message, status = _details(exc)
    head = f"Bedrock refused access to {model_id} ({code or status}: {message})."
    if code.lower() in _EXPIRED_CODES or "expired" in message.lower():
        return (
            f"{head} The AWS session token has expired: refresh the credentials (aws sso "
            "login, a new assume-role session, or the instance/task role) and try again."
        )
    if code.lower() in ("unrecognizedclientexception", "invalidsignatureexception"):
        return (
            f"{head} The access key is not recognised or the secret does not match: check the "
            "credentials in use (AWS_PROFILE, environment keys) and the session token."
        )
    meta = (
        " Meta Llama models also need the AWS Marketplace permissions "
        "(aws-marketplace:Subscribe, aws-marketplace:ViewSubscriptions) for the first use."
        if "meta." in model_id
        else ""
    )
    return (
        f"{head} Check that the IAM policy of the caller allows bedrock:InvokeModel on this "
        "model (and on the inference profile and its Regions, for a cross-Region id), and "
        f"that no Service Control Policy or permissions boundary denies it.{meta} Expired "
        "session credentials can also answer 403: refresh them if they are temporary."
    )
