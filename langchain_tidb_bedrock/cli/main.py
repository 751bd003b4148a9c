"""``tidb-bedrock`` / ``python -m langchain_tidb_bedrock``: ingest, ask, chat and demo.

With nothing configured it runs fully offline on a local tidb-server and LocalBedrock, and says
so in one line on stderr. Expected failures (bad paths, unreachable servers, missing AWS
settings) end with one ``error: ...`` line and exit code 1 (2 for bad arguments or paths).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from botocore.exceptions import BotoCoreError, ClientError
from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableConfig

from langchain_tidb_bedrock.aws_config import BedrockConfigError
from langchain_tidb_bedrock.chains.prompts import format_sources
from langchain_tidb_bedrock.chains.rag import create_rag_chain
from langchain_tidb_bedrock.cli.ingest import (
    SUPPORTED_SUFFIXES,
    add_new_documents,
    chunk_id,
    discover_files,
    ingest_paths,
)
from langchain_tidb_bedrock.cli.services import DEFAULT_TABLE, RuntimeConfigError, open_runtime
from langchain_tidb_bedrock.embeddings.titan import BedrockEmbeddingError
from langchain_tidb_bedrock.vectorstores.connection import ConnectionConfigError
from langchain_tidb_bedrock.vectorstores.filters import FilterError

__all__ = ["DEMO_FACTS", "DEMO_QUESTION", "DEMO_TABLE", "build_parser", "main"]

DEMO_TABLE = "tidb_bedrock_demo"
DEMO_SOURCE = "tidb-bedrock-tutorial"
DEMO_QUESTION = "What is TiDB?"
DEMO_FACTS = (
    "TiDB is an open-source distributed SQL database that supports Hybrid Transactional and "
    "Analytical Processing (HTAP) workloads.",
    "TiDB is MySQL compatible and features horizontal scalability, strong consistency, and "
    "high availability.",
    "TiDB Serverless is a fully managed, autoscaling deployment of TiDB that lets you start "
    "using TiDB instantly for free.",
    "TiDB Vector Search lets you store embeddings in a VECTOR column and search them with "
    "functions such as VEC_COSINE_DISTANCE.",
    "Amazon Bedrock is a fully managed service that offers a choice of foundation models, such "
    "as Meta Llama 3 and Amazon Titan, through a single API.",
)
_HISTORY_TURNS = 6  # question/answer pairs kept for rewriting follow-ups


class _UsageError(Exception):
    """A bad argument: reported like argparse's errors (exit 2)."""


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS lets the options go before or after the subcommand without one default
    # overwriting the other.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--tidb-url", help="SQLAlchemy URL of TiDB (default: TIDB_* or local)")
    common.add_argument("--table", help=f"vector table (default: {DEFAULT_TABLE})")
    common.add_argument("--k", type=int, help="passages to retrieve (default: 4; demo: 3)")
    common.add_argument(
        "--bedrock-endpoint-url", help="bedrock-runtime endpoint (default: AWS or LocalBedrock)"
    )
    common.add_argument("--region", help="AWS region (implies real Bedrock)")
    common.add_argument("--llm-model-id", help="chat model id (default: BEDROCK_LLM_MODEL_ID)")
    common.add_argument(
        "--embedding-model-id", help="embedding model id (default: BEDROCK_EMBEDDING_MODEL_ID)"
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="tidb-bedrock",
        description="RAG on TiDB vector search and Amazon Bedrock (offline when unconfigured).",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser("ingest", parents=[common], help="load .txt/.md files and folders")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--batch-size", type=int, default=128, help="chunks per embedding batch")
    ingest.add_argument("--chunk-size", type=int, default=1000, help="characters per chunk")
    ingest.add_argument("--chunk-overlap", type=int, default=150, help="overlap in characters")
    ingest.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    for name, text in (("ask", "answer one question"), ("chat", "interactive chat with history")):
        command = sub.add_parser(name, parents=[common], help=text)
        if name == "ask":
            command.add_argument("question")
        command.add_argument(
            "--filter", help='metadata filter as JSON, e.g. \'{"source": "a.md"}\''
        )
        command.add_argument(
            "--source", action="append", help="only passages from this source (repeatable)"
        )

    sub.add_parser("demo", parents=[common], help="store five facts and ask 'What is TiDB?'")
    return parser


def _option(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)


def _open(args: argparse.Namespace, table: str) -> Any:
    return open_runtime(
        tidb_url=_option(args, "tidb_url"),
        table=_option(args, "table") or table,
        bedrock_endpoint_url=_option(args, "bedrock_endpoint_url"),
        region=_option(args, "region"),
        llm_model_id=_option(args, "llm_model_id"),
        embedding_model_id=_option(args, "embedding_model_id"),
    )


def _search_filter(args: argparse.Namespace) -> dict[str, Any] | None:
    parts: list[dict[str, Any]] = []
    raw = _option(args, "filter")
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            msg = f"--filter is not valid JSON: {exc}"
            raise _UsageError(msg) from None
        if not isinstance(parsed, dict):
            msg = "--filter must be a JSON object"
            raise _UsageError(msg)
        parts.append(parsed)
    sources = _option(args, "source")
    if sources:
        # Ingested files are stored under their absolute path: accept the path as typed.
        resolved = [Path(s).resolve().as_posix() if Path(s).exists() else s for s in sources]
        parts.append({"source": {"$in": resolved}})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _config(args: argparse.Namespace, default_k: int) -> RunnableConfig:
    k = _option(args, "k") or default_k
    if k < 1:
        msg = f"--k must be positive, got {k}"
        raise _UsageError(msg)
    configurable: dict[str, Any] = {"k": k}
    search_filter = _search_filter(args)
    if search_filter is not None:
        configurable["filter"] = search_filter
    return {"configurable": configurable}


def _stream_answer(
    chain: Runnable[Any, dict[str, Any]],
    inputs: Any,
    config: RunnableConfig,
    on_context: Callable[[list[Document]], None] | None = None,
) -> tuple[str, list[Document]]:
    """Print the answer as it streams; return it with the retrieved documents."""
    answer: list[str] = []
    context: list[Document] = []
    for chunk in chain.stream(inputs, config):
        if "context" in chunk:
            context = chunk["context"]
            if on_context is not None:
                on_context(context)
        piece = chunk.get("answer")
        if piece:
            answer.append(piece)
            print(piece, end="", flush=True)
    print()
    return "".join(answer), context


def _print_sources(docs: Sequence[Document]) -> None:
    if not docs:
        print("Sources: none (nothing was retrieved)")
        return
    print("Sources:")
    for line in format_sources(docs):
        print(line)


def _cmd_ingest(args: argparse.Namespace) -> int:
    files, ignored = discover_files(args.paths)  # bad paths fail before any server starts
    if ignored:
        shown = ", ".join(p.as_posix() for p in ignored[:5]) + (", ..." if len(ignored) > 5 else "")
        kinds = "/".join(SUPPORTED_SUFFIXES)
        print(f"note: skipping {len(ignored)} files that are not {kinds}: {shown}", file=sys.stderr)
    if not files:
        print("note: no .txt or .md files to ingest", file=sys.stderr)
        return 0
    with _open(args, DEFAULT_TABLE) as runtime:
        summary = ingest_paths(
            runtime.store,
            args.paths,
            batch_size=args.batch_size,
            show_progress=not args.no_progress,
            chunk_size=args.chunk_size,
            chunk_overlap=args.chunk_overlap,
        )
        unreadable = summary.ignored[len(ignored) :]
        if unreadable:
            print(f"note: skipped {len(unreadable)} files that are not UTF-8 text", file=sys.stderr)
        print(f"Ingested into table {runtime.store.table_name}: {summary}")
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    config = _config(args, 4)
    with _open(args, DEFAULT_TABLE) as runtime:
        chain = create_rag_chain(runtime.store, runtime.llm)
        _, context = _stream_answer(chain, args.question, config)
        _print_sources(context)
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    config = _config(args, 4)
    with _open(args, DEFAULT_TABLE) as runtime:
        chain = create_rag_chain(runtime.store, runtime.llm)
        print("Ask about your documents ('exit' or Ctrl-D to quit).")
        history: list[tuple[str, str]] = []
        while True:
            try:
                question = input("you> ").strip()
            except EOFError:
                print()
                break
            if question.lower() in ("exit", "quit"):
                break
            if not question:
                continue
            print("bot> ", end="", flush=True)
            answer, context = _stream_answer(
                chain, {"question": question, "chat_history": history}, config
            )
            _print_sources(context)
            history = [*history, ("human", question), ("ai", answer)][-2 * _HISTORY_TURNS :]
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    config = _config(args, 3)
    docs = [
        Document(
            id=chunk_id(DEMO_SOURCE, fact),
            page_content=fact,
            metadata={"source": DEMO_SOURCE, "chunk": n},
        )
        for n, fact in enumerate(DEMO_FACTS)
    ]
    with _open(args, DEMO_TABLE) as runtime:
        added, present = add_new_documents(runtime.store, docs)
        print(
            f"Stored {len(docs)} facts in table {runtime.store.table_name} "
            f"({added} embedded, {present} already there)."
        )
        print(f"\nQuestion: {DEMO_QUESTION}")

        def show_retrieved(context: list[Document]) -> None:
            print(f"Retrieved {len(context)} passages (vector search):")
            for n, doc in enumerate(context, start=1):
                print(f"  [{n}] {doc.page_content}")
            print("\nAnswer:")

        chain = create_rag_chain(runtime.store, runtime.llm)
        _, context = _stream_answer(chain, DEMO_QUESTION, config, on_context=show_retrieved)
        _print_sources(context)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ingest": _cmd_ingest,
    "ask": _cmd_ask,
    "chat": _cmd_chat,
    "demo": _cmd_demo,
}

# Expected failures: reported in one line, no traceback.
_EXPECTED: tuple[type[BaseException], ...] = (
    RuntimeConfigError,
    BedrockConfigError,
    ConnectionConfigError,
    BedrockEmbeddingError,
    BotoCoreError,
    ClientError,
    sa.exc.SQLAlchemyError,
)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 when a service fails or is misconfigured, 2 for bad arguments or paths.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage error
        return int(exc.code or 0)
    verbose = bool(_option(args, "verbose", False))
    # Library warnings (e.g. "no vector index: exact kNN") are details, not CLI output.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s: %(message)s"
    )
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (_UsageError, FileNotFoundError, NotADirectoryError, FilterError) as exc:
        if verbose:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except _EXPECTED as exc:
        if verbose:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        if verbose:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {_one_line(exc)} (-v shows the traceback)",
            file=sys.stderr,
        )
        return 1
