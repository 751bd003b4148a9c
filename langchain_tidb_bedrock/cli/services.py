"""Decide what the CLI and examples connect to, start local stand-ins when needed, clean up.

TiDB: an explicit URL, else ``TIDB_URL`` / ``TIDB_HOST``..., else a ``LocalTiDB`` (a real
tidb-server) on a persistent data dir, shared by the commands running at the same time and
stopped by the last one (see :mod:`langchain_tidb_bedrock.local.shared_server`). Bedrock: an
explicit endpoint, else real AWS when credentials and a region resolve, else a ``LocalBedrock``
shared the same way (see :mod:`langchain_tidb_bedrock.local.shared_bedrock`), or one in this
process when it cannot be shared.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from langchain_tidb_bedrock.embeddings._titan_ids import (
    DEFAULT_EMBEDDING_MODEL_ID,
    VALID_DIMENSIONS,
    check_embedding_model_id,
)
from langchain_tidb_bedrock.errors import BedrockConfigError, InvalidInputError, RuntimeConfigError
from langchain_tidb_bedrock.local.offline import DATA_DIR_ENV, local_data_dir

# The heavy modules (SQLAlchemy's engine, langchain-aws, the store) are imported where used, so
# `tidb-bedrock --help` and argument errors answer at once.
if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings
    from langchain_tidb_bedrock.local.shared_bedrock import LocalBedrockLease
    from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_DIMENSIONS",
    "DEFAULT_TABLE",
    "Runtime",
    "RuntimeConfigError",
    "local_data_dir",
    "open_runtime",
]

DEFAULT_TABLE = "langchain_tidb_bedrock"
DEFAULT_DIMENSIONS = 512  # for a new table; an existing table's own size wins
_TIDB_HINT = "set TIDB_URL or TIDB_HOST/TIDB_USER/TIDB_PASSWORD (or pass --tidb-url)"
_AWS_HINT = "set AWS credentials and AWS_REGION (or pass --bedrock-endpoint-url)"
# Any of these means the user meant real AWS, so missing pieces are an error, not a fallback.
_AWS_INTENT_VARS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK")


class Runtime(NamedTuple):
    """What :func:`open_runtime` yields; unpacks as ``store, llm, embeddings``."""

    store: TiDBVectorStore
    llm: BaseChatModel
    embeddings: BedrockTitanEmbeddings


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _check_tidb(store: TiDBVectorStore, where: str) -> None:
    import sqlalchemy as sa

    try:
        with store.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip() or type(exc.orig).__name__
        msg = (
            f"cannot connect to TiDB at {where}: {reason}; check --tidb-url or the TIDB_* settings"
        )
        raise RuntimeConfigError(msg) from exc


def _dimensions(probe: TiDBVectorStore, asked: int | None) -> int:
    """The embedding size: the existing table's, else ``asked``, else the default.

    Checked before anything is embedded, so a mismatch costs nothing.
    """
    stored = probe.table_dimension()
    if stored is None:
        return DEFAULT_DIMENSIONS if asked is None else asked
    if asked is not None and asked != stored:
        msg = (
            f"table {probe.table_name!r} stores {stored}-dimensional vectors, but {asked} "
            "dimensions were asked for (--dimensions); leave it out to use the table's"
        )
        raise InvalidInputError(msg)
    if stored not in VALID_DIMENSIONS:
        msg = (
            f"table {probe.table_name!r} stores {stored}-dimensional vectors; Titan Text "
            f"Embeddings V2 makes {', '.join(map(str, VALID_DIMENSIONS))}: use another table"
        )
        raise InvalidInputError(msg)
    return stored


def _wants_real_aws(region: str | None) -> bool:
    return bool(region) or any(os.environ.get(name) for name in _AWS_INTENT_VARS)


def _share_bedrock(data_dir: Path) -> LocalBedrockLease:
    from langchain_tidb_bedrock.local.shared_bedrock import acquire_local_bedrock

    return acquire_local_bedrock(data_dir)


def _bedrock_endpoint(
    stack: contextlib.ExitStack, sharing: Future[LocalBedrockLease], details: list[str]
) -> str:
    """The shared LocalBedrock's endpoint; one in this process if it cannot be shared.

    Leaving the shared one is ``_leave``'s job (registered when the join began).
    """
    try:
        lease = sharing.result()
    except (RuntimeConfigError, OSError) as exc:
        from langchain_tidb_bedrock.local.bedrock import LocalBedrock

        endpoint = str(stack.enter_context(LocalBedrock()).endpoint_url)
        details.append(
            f"note: LocalBedrock at {endpoint}, in this process (not shared: {exc}); it "
            "extracts sentences from the retrieved passages and is not a language model"
        )
        return endpoint
    shared = (
        f"shared with {lease.others} other command(s)"
        if not lease.started
        else "started for this command"
    )
    details.append(
        f"note: LocalBedrock at {lease.endpoint_url}, pid {lease.pid}, {shared}; it extracts "
        "sentences from the retrieved passages and is not a language model"
    )
    return lease.endpoint_url


@contextlib.contextmanager
def open_runtime(
    *,
    tidb_url: str | None = None,
    table: str = DEFAULT_TABLE,
    bedrock_endpoint_url: str | None = None,
    region: str | None = None,
    llm_model_id: str | None = None,
    embedding_model_id: str | None = None,
    dimensions: int | None = None,
    max_tokens: int = 512,
    announce: Callable[[str], None] | None = _stderr,
    verbose: bool = False,
) -> Iterator[Runtime]:
    """Resolve TiDB and Bedrock, yield ``(store, llm, embeddings)``, then clean up.

    Whatever this starts (a local tidb-server, a LocalBedrock) is stopped on exit, errors
    included, and pooled connections are closed.

    Args:
        tidb_url: SQLAlchemy URL of TiDB; default ``TIDB_URL`` / ``TIDB_HOST``..., else a local
            tidb-server whose data persists in :func:`local_data_dir`.
        table: Vector table name.
        bedrock_endpoint_url: bedrock-runtime endpoint (e.g. a LocalBedrock); default real AWS
            when configured, else a LocalBedrock shared with the other commands running (one
            in this process if that fails).
        region: AWS region (passing it means real AWS is wanted).
        llm_model_id: Chat model id; default ``BEDROCK_LLM_MODEL_ID`` or Llama 3.2 3B.
        embedding_model_id: Embedding model id; default ``BEDROCK_EMBEDDING_MODEL_ID`` or Titan V2.
        dimensions: Titan V2 dimensions (256, 512 or 1024); vectors are normalised. Default:
            the table's when it exists, else :data:`DEFAULT_DIMENSIONS`.
        max_tokens: Most tokens per answer.
        announce: Called with ONE line (at most 100 characters) when local stand-ins replace
            unconfigured services (default: stderr); None to stay quiet.
        verbose: Also announce the details: where the local data is, whether the server was
            shared, and how to configure real services.

    Yields:
        The :class:`Runtime` triple.

    Raises:
        RuntimeConfigError: TiDB is unreachable or the local one cannot start.
        BedrockConfigError: Real AWS was asked for (region or credentials set) but is incomplete.
        ConnectionConfigError: The TiDB URL is not a MySQL URL.
        InvalidInputError: ``dimensions`` differs from the existing table's (nothing embedded).
    """
    from langchain_tidb_bedrock.db.connection import redact, tidb_url_from_env

    model_id = check_embedding_model_id(
        embedding_model_id
        or os.environ.get("BEDROCK_EMBEDDING_MODEL_ID")
        or DEFAULT_EMBEDDING_MODEL_ID
    )
    with contextlib.ExitStack() as stack:
        local_parts: list[str] = []
        details: list[str] = []
        url = tidb_url or tidb_url_from_env()
        # A LocalBedrock to start or join is looked for in a thread while TiDB is resolved and
        # the rest is imported: a first command's stand-in starts on the other core.
        sharing: Future[LocalBedrockLease] | None = None
        if bedrock_endpoint_url is None and not _wants_real_aws(region):
            from langchain_tidb_bedrock.aws_config import aws_is_configured

            if not aws_is_configured(region):
                pool = stack.enter_context(ThreadPoolExecutor(1, "local-bedrock"))
                sharing = pool.submit(_share_bedrock, local_data_dir().resolve())
                stack.callback(_leave, sharing)
        if url is not None:
            where = redact(url)
        else:
            from langchain_tidb_bedrock.local.shared_server import acquire_local_tidb

            data_dir = local_data_dir().resolve()
            try:
                lease = acquire_local_tidb(data_dir)
            except RuntimeConfigError as exc:
                msg = f"{exc}; or {_TIDB_HINT}"
                raise RuntimeConfigError(msg) from exc
            stack.callback(lease.release)
            url = where = lease.url
            local_parts.append("a local TiDB")
            shared = (
                f"shared with {lease.others} other command(s)"
                if not lease.started
                else "started for this command"
            )
            details.append(
                f"note: local TiDB: data in {data_dir}, server pid {lease.pid}, {shared}; "
                "the last command using it stops it"
            )

        endpoint = bedrock_endpoint_url
        if sharing is None and endpoint is None:
            from langchain_tidb_bedrock.aws_config import aws_is_configured, require_aws

            if not aws_is_configured(region):  # real AWS was meant (region or keys set)
                require_aws(region)  # raises BedrockConfigError naming what is missing
                msg = "AWS credentials or region could not be resolved for Amazon Bedrock"
                raise BedrockConfigError(msg)
        from langchain_tidb_bedrock.db.engine import TiDBEngine
        from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings
        from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

        engine = TiDBEngine(url)
        stack.callback(engine.close)
        # The store first, without a model: the table's size decides the model's.
        store = TiDBVectorStore(None, engine=engine, table_name=table)
        _check_tidb(store, where)
        size = _dimensions(store, dimensions)
        if sharing is not None:
            endpoint = _bedrock_endpoint(stack, sharing, details)
            local_parts.append("LocalBedrock (a stand-in, not a model)")
        embeddings = BedrockTitanEmbeddings(
            dimensions=size,
            normalize=True,
            region_name=region,
            endpoint_url=endpoint,
            model_id=model_id,
        )
        stack.callback(embeddings.close)
        from langchain_tidb_bedrock.chat_models.llama import create_llama3_chat

        llm = create_llama3_chat(
            llm_model_id, region_name=region, endpoint_url=endpoint, max_tokens=max_tokens
        )
        store.embedding = embeddings
        # Announced only once everything is up, so a failure prints just its error line.
        if local_parts and announce is not None:
            hints = [_TIDB_HINT] if local_parts[0] == "a local TiDB" else []
            if endpoint is not None and bedrock_endpoint_url is None:
                hints.append(_AWS_HINT)
            more = "" if verbose else "; -v for details"
            announce(f"note: using {' and '.join(local_parts)}{more}")
            if verbose:
                details.append(f"note: to use real services, {'; '.join(hints)}")
                for line in details:
                    announce(line)
        yield Runtime(store, llm, embeddings)


def _leave(sharing: Future[LocalBedrockLease]) -> None:
    """Leave the shared LocalBedrock (waiting for the join, if an earlier step failed first)."""
    try:
        lease = sharing.result()
    except (RuntimeConfigError, OSError):
        return  # nothing was joined
    lease.release()
