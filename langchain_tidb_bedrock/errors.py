"""Every error the package raises on purpose, under one base class.

Each keeps the built-in class it always had (``ValueError`` for bad input or settings,
``RuntimeError`` for a service that cannot do what was asked), so existing ``except`` clauses
still catch it, and ``except TiDBBedrockError`` catches them all.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

__all__ = [
    "AnswerStreamError",
    "BatchInferenceError",
    "BedrockConfigError",
    "BedrockEmbeddingError",
    "BedrockModelUnavailableError",
    "BedrockResponseError",
    "CommitUnknownError",
    "ConnectionConfigError",
    "FilterError",
    "IngestInterrupted",
    "InvalidEmbeddingError",
    "KeywordIndexMissingError",
    "LoadDataWarningError",
    "PartialEmbeddingError",
    "InvalidInputError",
    "RuntimeConfigError",
    "SourceNameError",
    "TiDBBedrockError",
    "TiDBConnectionError",
    "TiFlashUnavailableError",
    "UnsupportedModelError",
    "WriteError",
    "service_errors",
]


class TiDBBedrockError(Exception):
    """Base class of every error this package raises on purpose."""


if TYPE_CHECKING:
    from langchain_tidb_bedrock.db.unavailable import TiDBConnectionError


def __getattr__(name: str) -> object:
    # TiDBConnectionError is also SQLAlchemy's OperationalError: defined with the engine, so that
    # importing this module (the CLI's start-up) does not load SQLAlchemy.
    if name == "TiDBConnectionError":
        from langchain_tidb_bedrock.db.unavailable import TiDBConnectionError

        return TiDBConnectionError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class InvalidInputError(TiDBBedrockError, ValueError):
    """An argument the package cannot use: the message names it and where; nothing is written."""


class FilterError(InvalidInputError):
    """A malformed metadata filter; the message names the bad part and where it is."""


class SourceNameError(InvalidInputError):
    """Two files to ingest would be stored under one source name (or ``name=`` was ambiguous)."""


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped an ingest: what was stored, and what a rerun finishes.

    A ``KeyboardInterrupt`` on purpose, so code that lets Ctrl-C through still does. Files
    cut short are marked incomplete in what is stored (see ``ingest.sources``); running the
    same ingest again embeds only what is missing.

    Attributes:
        stored: New chunks embedded and stored before the interrupt.
        pending: New chunks this run wanted to store.
        incomplete: Sources (files) of which only some chunks (or two versions) are stored.
        not_started: Sources none of whose new chunks were stored yet.
    """

    def __init__(
        self,
        stored: int,
        pending: int,
        incomplete: list[str],
        not_started: list[str] | None = None,
    ) -> None:
        self.stored, self.pending = stored, pending
        self.incomplete, self.not_started = incomplete, list(not_started or [])
        parts = [f"{stored} of {pending} new {'chunk' if pending == 1 else 'chunks'} stored"]
        if incomplete:
            n = len(incomplete)
            parts.append(f"{n} {'file is' if n == 1 else 'files are'} incomplete")
        if self.not_started:
            n = len(self.not_started)
            parts.append(f"{n} {'file was' if n == 1 else 'files were'} not started")
        super().__init__("; ".join([*parts, "run the same ingest again to finish"]))


class ConnectionConfigError(InvalidInputError):
    """The TiDB connection settings are missing or inconsistent."""


class BedrockConfigError(TiDBBedrockError, RuntimeError):
    """AWS region or credentials for Bedrock are missing; the message says what to set."""


class BedrockEmbeddingError(TiDBBedrockError, RuntimeError):
    """Some inputs could not be embedded; ``failed_indices`` lists them (input positions)."""

    def __init__(self, failed_indices: list[int], total: int, last_error: BaseException) -> None:
        self.failed_indices = failed_indices
        self.total = total
        self.last_error = last_error
        shown = ", ".join(map(str, failed_indices[:20])) + (
            ", ..." if len(failed_indices) > 20 else ""
        )
        super().__init__(
            f"{len(failed_indices)} of {total} texts were not embedded (input indices [{shown}]); "
            f"last error: {type(last_error).__name__}: {last_error}"
        )


class TiFlashUnavailableError(TiDBBedrockError, RuntimeError):
    """The operation needs a TiFlash store, and this TiDB has none."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"{operation} needs a TiDB with TiFlash (the columnar store that holds vector "
            "indexes), and this server has no TiFlash store; a standalone tidb-server "
            "(LocalTiDB) has none. Search still works here, as exact kNN. Use TiDB Cloud "
            "Starter or a cluster with TiFlash for an HNSW index; offline, "
            "LocalTiDB(tiflash=True) runs a tidb-server with mock TiFlash stores that accept "
            "vector indexes (`python -m langchain_tidb_bedrock.local tidb build --tiflash`)."
        )


class KeywordIndexMissingError(TiDBBedrockError, RuntimeError):
    """Hybrid search needs a keyword index, and the table has none."""

    def __init__(self, table: str) -> None:
        super().__init__(
            f"table {table!r} has no keyword index for hybrid search: create the store with "
            "keyword_search=True (new tables), or call create_keyword_index() once to build it "
            "for the rows already stored"
        )


class UnsupportedModelError(InvalidInputError):
    """A model id the package cannot use for the job, or one Bedrock refused as an identifier.

    Embeddings support Titan Text Embeddings V2 only (``amazon.titan-embed-text-v2:0``).

    Attributes:
        model_id: The id that was given.
    """

    def __init__(self, model_id: str, message: str) -> None:
        self.model_id = model_id
        super().__init__(message)


class BatchInferenceError(TiDBBedrockError, RuntimeError):
    """A batch inference run could not finish: S3 or Bedrock refused, or a job failed.

    The message names the job or the bucket and what to do; nothing of the texts is in it.
    """


def service_errors() -> tuple[type[BaseException], ...]:
    """The client libraries' errors that mean a service failed: botocore's and SQLAlchemy's.

    Imported when called, so that importing this module stays cheap; an ``except`` clause
    evaluates it only when an exception reaches it.
    """
    from botocore.exceptions import BotoCoreError, ClientError
    from sqlalchemy.exc import SQLAlchemyError

    return (BotoCoreError, ClientError, SQLAlchemyError)


class LoadDataWarningError(TiDBBedrockError, RuntimeError):
    """TiDB accepted the rows with warnings (it would have altered data): nothing is kept."""


class RuntimeConfigError(TiDBBedrockError, RuntimeError):
    """TiDB or Bedrock could not be reached or set up; the message says what to fix."""


class BedrockModelUnavailableError(BedrockConfigError):
    """Bedrock does not serve the model in this region, or not to this account.

    Attributes:
        model_id: The model (or ARN) that was asked for.
        region: The region the request went to.
        offered_regions: Regions where AWS lists the model (empty when unknown).
    """

    def __init__(
        self, model_id: str, region: str, offered_regions: tuple[str, ...], detail: str
    ) -> None:
        self.model_id, self.region, self.offered_regions = model_id, region, offered_regions
        if offered_regions and region not in offered_regions:
            advice = (
                f"{model_id} is not offered in {region}; AWS lists it in "
                f"{', '.join(offered_regions)}: pass region_name= one of them"
            )
        else:
            advice = (
                f"Bedrock does not serve {model_id} to this account in {region}: check that the "
                "model is offered there and that the IAM policy allows bedrock:Rerank and "
                "bedrock:InvokeModel on it"
            )
        super().__init__(f"{advice} (Bedrock said: {detail})")


def _scrub(message: str) -> str:
    # Drivers quote offending values ("Duplicate entry 'x' for key"): keep the words only.
    return re.sub(r"'(?:[^'\\]|\\.)*'", "'…'", message.splitlines()[0] if message else "")


class CommitUnknownError(TiDBBedrockError, RuntimeError):
    """The connection was lost while TiDB committed: the transaction may or may not be stored."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(
            "the connection to TiDB was lost during COMMIT: the rows may be stored; rerun the "
            "call (upserts are idempotent)"
        )


class WriteError(TiDBBedrockError, RuntimeError):
    """TiDB refused a write. ``committed`` rows (input positions before ``position``) are stored.

    The message names the table, the positions and TiDB's error, never the data being written.
    """

    def __init__(
        self, table: str, position: int, count: int, committed: int, cause: BaseException
    ) -> None:
        self.table = table
        self.position = position
        self.count = count
        self.committed = committed
        self.commit_unknown = isinstance(cause, CommitUnknownError)
        span = f"{position}-{position + count - 1}"
        if self.commit_unknown:
            super().__init__(
                f"writing documents {span} into table {table!r}: the connection to TiDB was "
                f"lost during COMMIT, so documents {span} may be stored; the {committed} "
                f"documents before position {position} are stored, none after {span}; rerun "
                "the call (upserts are idempotent)"
            )
            return
        orig = getattr(cause, "orig", cause)
        args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
        code = f" {args[0]}" if args and isinstance(args[0], int) else ""
        detail = _scrub(str(args[1])) if len(args) > 1 else type(orig).__name__
        super().__init__(
            f"writing documents {span} into table {table!r} failed "
            f"(TiDB error{code}: {detail}); the {committed} documents before position "
            f"{position} are stored, none after"
        )


class PartialEmbeddingError(BedrockEmbeddingError):
    """A :class:`BedrockEmbeddingError` that keeps the work already done.

    Attributes:
        vectors: One entry per input text: its vector, or None where it failed.
        failed_indices: The input positions that were not embedded.
        last_error: The error behind the failures (a ``TimeoutError`` at the deadline).
    """

    def __init__(
        self,
        failed_indices: list[int],
        total: int,
        last_error: BaseException,
        vectors: list[list[float] | None],
    ) -> None:
        super().__init__(failed_indices, total, last_error)
        self.vectors = vectors


class AnswerStreamError(TiDBBedrockError, RuntimeError):
    """The answer stream failed after text had been streamed.

    Attributes:
        model: The model that was answering.
        chars: Characters streamed before the failure.
        chunks: Chunks (about one token each) streamed before the failure.
    """

    def __init__(self, model: str, chars: int, chunks: int, cause: BaseException) -> None:
        self.model, self.chars, self.chunks = model, chars, chunks
        # botocore's ClientError carries the service's code; read it without importing botocore.
        response = getattr(cause, "response", None)
        code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
        super().__init__(
            f"the answer stream from {model} failed after {chars:,} characters in {chunks:,} "
            f"chunks had been streamed ({code or type(cause).__name__}); the answer is "
            "incomplete and was not retried, since a retry would repeat what was streamed"
        )


class BedrockResponseError(TiDBBedrockError, RuntimeError):
    """Bedrock answered with a body the client cannot use (not JSON, no vector, a bad vector).

    A fault of one response, like a 5xx: retried, and it fails only the input it answered.
    The message never quotes the body or the input text.

    Attributes:
        index: The input position of the text the response answered (None if not about one).
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class InvalidEmbeddingError(BedrockResponseError):
    """Bedrock returned a vector that cannot be right for the request.

    Wrong length, not finite numbers, or not unit length although ``normalize=True`` was asked.

    Attributes:
        index: The input position of the text (the first one, for a repeated text).
        model_id: The model that returned the vector.
        problem: What is wrong with it, e.g. "253 dimensions, expected 256".
    """

    def __init__(self, index: int, model_id: str, problem: str) -> None:
        super().__init__(
            f"{model_id} returned an unusable vector for the text at input position {index}: "
            f"{problem}",
            index=index,
        )
        self.model_id, self.problem = model_id, problem
