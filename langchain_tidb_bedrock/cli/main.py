"""``tidb-bedrock`` (``python -m langchain_tidb_bedrock``): ingest, ask, chat, sources, demo...

With nothing configured it runs fully offline on a local tidb-server and LocalBedrock, and says
so in one line on stderr. Every option and path is checked before any server starts; bad input
ends with one ``error: ...`` line naming the option and exit code 2, like argparse's own
errors. Expected failures (unreachable servers, missing AWS settings) end with one ``error:``
line and exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from langchain_tidb_bedrock.cli.services import DEFAULT_TABLE, open_runtime
from langchain_tidb_bedrock.embeddings._titan_ids import VALID_DIMENSIONS, check_embedding_model_id
from langchain_tidb_bedrock.errors import (
    BatchInferenceError,
    BedrockConfigError,
    BedrockEmbeddingError,
    ConnectionConfigError,
    FilterError,
    IngestInterrupted,
    InvalidInputError,
    RuntimeConfigError,
    service_errors,
)

# Everything else is imported by the command that needs it: `ask` never loads the ingest
# pipeline or the chat history, and `--help` or a bad argument loads no LangChain at all.
if TYPE_CHECKING:
    from langchain_core.documents import Document
    from langchain_core.runnables import Runnable, RunnableConfig

    from langchain_tidb_bedrock.chat_message_histories.base import TiDBChatMessageHistory
    from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

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


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in the CLI's one-line form: ``error: ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _whole_number(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            msg = f"expected a whole number, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if value < minimum:
            msg = f"must be at least {minimum}, got {value}"
            raise argparse.ArgumentTypeError(msg)
        return value

    parse.__name__ = "whole number"  # argparse names the type in some messages
    return parse


def _text(text: str) -> str:
    if not text.strip():
        msg = "must not be empty"
        raise argparse.ArgumentTypeError(msg)
    return text.strip()


def _session(text: str) -> str:
    from langchain_tidb_bedrock.chat_message_histories.messages import check_session_id

    try:
        return check_session_id(text, "the session name")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _table(text: str) -> str:
    from langchain_tidb_bedrock.db.identifiers import validate_identifier

    try:
        return validate_identifier(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tidb_url(text: str) -> str:
    from langchain_tidb_bedrock.db.connection import parse_url

    try:
        parse_url(text, "--tidb-url")  # its errors never quote the URL (it holds a password)
    except ConnectionConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _http_url(text: str) -> str:
    parsed = urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        msg = f"expected an http:// or https:// URL, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


def _json_filter(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        msg = f"not valid JSON: {exc}"
        raise argparse.ArgumentTypeError(msg) from None
    if not isinstance(parsed, dict):
        msg = "must be a JSON object"
        raise argparse.ArgumentTypeError(msg)
    from langchain_tidb_bedrock.vectorstores.filters import validate_filter

    try:
        validate_filter(parsed)
    except FilterError as exc:
        raise argparse.ArgumentTypeError(_one_line(exc)) from None
    return parsed


def _embedding_model(text: str) -> str:
    try:
        return check_embedding_model_id(text.strip())
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rerank_model(text: str) -> str:
    from langchain_tidb_bedrock.document_compressors._requests import parse_model

    try:
        parse_model(text, "us-east-1")  # the form only: the region is known later
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def _add_rerank(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--rerank",
        type=_rerank_model,
        metavar="MODEL_ID",
        help="rerank the passages with this Bedrock rerank model (cohere.rerank-v3-5:0, or "
        "amazon.rerank-v1:0 outside us-east-1): fetch 20, keep the --k best",
    )


def _add_dimensions(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--dimensions",
        type=int,
        choices=VALID_DIMENSIONS,
        help="embedding size for a new table (default: 512); an existing table's own size is "
        "always used",
    )


def _common_options() -> _Parser:
    # SUPPRESS lets the options go before or after the subcommand without one default
    # overwriting the other.
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--tidb-url", type=_tidb_url, help="SQLAlchemy URL of TiDB (default: TIDB_* or local)"
    )
    common.add_argument("--table", type=_table, help=f"vector table (default: {DEFAULT_TABLE})")
    common.add_argument(
        "--k", type=_whole_number(1), help="passages to retrieve (default: 4; demo: 3)"
    )
    common.add_argument(
        "--bedrock-endpoint-url",
        type=_http_url,
        help="bedrock-runtime endpoint (default: AWS or LocalBedrock)",
    )
    common.add_argument("--region", type=_text, help="AWS region (implies real Bedrock)")
    common.add_argument(
        "--llm-model-id", type=_text, help="chat model id (default: BEDROCK_LLM_MODEL_ID)"
    )
    common.add_argument(
        "--embedding-model-id",
        type=_embedding_model,
        help="embedding model id (default: BEDROCK_EMBEDDING_MODEL_ID)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show details and tracebacks",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    common = _common_options()
    parser = _Parser(
        prog="tidb-bedrock",
        description="RAG on TiDB vector search and Amazon Bedrock (offline when unconfigured).",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser("ingest", parents=[common], help="load .txt/.md/.rst files and folders")
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument(
        "--glob",
        action="append",
        type=_text,
        metavar="PATTERN",
        help="only files matching PATTERN (repeatable; e.g. '*.py' for file names, "
        "'guides/*.md' for paths inside a folder), instead of .txt/.md/.markdown/.rst",
    )
    _add_dimensions(ingest)
    ingest.add_argument(
        "--batch-size", type=_whole_number(1), default=128, help="chunks per embedding batch"
    )
    ingest.add_argument(
        "--chunk-size", type=_whole_number(1), default=1000, help="characters per chunk"
    )
    ingest.add_argument(
        "--chunk-overlap", type=_whole_number(0), default=150, help="overlap in characters"
    )
    ingest.add_argument(
        "--prune",
        action="store_true",
        help="also delete stored chunks of files under PATH that no longer exist",
    )
    ingest.add_argument(
        "--name",
        type=_text,
        help="store a folder's files as NAME/... instead of under the folder's own name "
        "(one PATH only; keeps sources stable across renames)",
    )
    ingest.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    ingest.add_argument(
        "--batch-inference",
        metavar="S3_URI",
        help="embed new chunks through Bedrock batch inference jobs (half price, no per-minute "
        "quota) with input and output under S3_URI (s3://bucket/prefix); needs --role-arn",
    )
    ingest.add_argument(
        "--role-arn", help="IAM service role the batch jobs assume (with --batch-inference)"
    )
    ingest.add_argument("--s3-endpoint-url", help="S3 endpoint for --batch-inference")

    for name, text in (("ask", "answer one question"), ("chat", "interactive chat with history")):
        command = sub.add_parser(name, parents=[common], help=text)
        if name == "ask":
            command.add_argument("question", type=_text, metavar="QUESTION")
        else:
            command.add_argument(
                "--session",
                type=_session,
                metavar="NAME",
                help="keep this conversation in TiDB and resume it in later runs",
            )
        _add_rerank(command)
        command.add_argument(
            "--filter",
            type=_json_filter,
            help='metadata filter as JSON, e.g. \'{"chunk": {"$lt": 3}}\'',
        )
        command.add_argument(
            "--source",
            action="append",
            type=_text,
            help="only passages from this source or folder (repeatable)",
        )

    sub.add_parser("sources", parents=[common], help="list stored sources")
    delete = sub.add_parser(
        "delete", parents=[common], help="delete a stored source, or every source under a folder"
    )
    delete.add_argument(
        "--source",
        action="append",
        type=_text,
        required=True,
        help="a stored source, a folder of them, or a path as typed (repeatable)",
    )
    delete.add_argument(
        "--yes",
        action="store_true",
        help="delete without asking when more than one source matches",
    )
    demo = sub.add_parser("demo", parents=[common], help="store five facts and ask 'What is TiDB?'")
    _add_rerank(demo)
    _add_dimensions(demo)
    return parser


def _option(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks that span options; argparse exits 2 with one line when one fails."""
    problem = None
    if args.command == "ingest" and args.chunk_overlap >= args.chunk_size:
        problem = (
            f"argument --chunk-overlap: must be less than --chunk-size ({args.chunk_size}), "
            f"got {args.chunk_overlap}"
        )
    elif args.command == "ingest" and args.name is not None and len(args.paths) != 1:
        problem = f"argument --name: applies to one PATH, got {len(args.paths)}"
    elif args.command == "ingest" and args.batch_inference and not args.role_arn:
        problem = "argument --batch-inference: needs --role-arn"
    if problem is not None:
        parser.exit(2, f"error: {problem} (see {parser.prog} {args.command} --help)\n")


def _open(args: argparse.Namespace, table: str) -> Any:
    return open_runtime(
        tidb_url=_option(args, "tidb_url"),
        table=_option(args, "table") or table,
        bedrock_endpoint_url=_option(args, "bedrock_endpoint_url"),
        region=_option(args, "region"),
        llm_model_id=_option(args, "llm_model_id"),
        embedding_model_id=_option(args, "embedding_model_id"),
        dimensions=_option(args, "dimensions"),
        verbose=bool(_option(args, "verbose", False)),
    )


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def _note(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


def _as_typed(path: str) -> str:
    """A path relative to the working directory when it is under it (as a user types it)."""
    try:
        return Path(path).relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path


def _shown(names: Sequence[str], verbose: bool, most: int = 5) -> str:
    """Names for a one-line note: all with -v, else the first few and how to see the rest."""
    if verbose or len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[:most])}, ... ({len(names) - most} more; -v lists all)"


def _resolve_sources(store: TiDBVectorStore, values: Sequence[str]) -> tuple[list[str], int]:
    """Stored sources the ``--source`` values name; warns (with the closest) for the others.

    Returns:
        ``(matched sources, number of values that matched nothing)``.
    """
    from langchain_tidb_bedrock.ingest import closest_sources, list_sources, match_sources

    stored = list_sources(store)
    matched: dict[str, None] = {}
    unmatched = 0
    for value in values:
        found = match_sources(value, stored)
        if found:
            matched.update(dict.fromkeys(found))
            continue
        unmatched += 1
        close = closest_sources(value, stored)
        hint = f"; closest: {', '.join(close)}" if close else ""
        if not stored:
            hint = f"; table {store.table_name} has no sources yet"
        _warn(f"--source {value!r} matches no stored source{hint}")
    return list(matched), unmatched


def _search_config(
    args: argparse.Namespace, store: TiDBVectorStore, default_k: int
) -> RunnableConfig | None:
    """The chain's config; None when ``--source`` or ``--filter`` select nothing (warned)."""
    configurable: dict[str, Any] = {"k": _option(args, "k") or default_k}
    parts: list[dict[str, Any]] = []
    if _option(args, "filter"):
        parts.append(args.filter)
    if _option(args, "source"):
        sources, _ = _resolve_sources(store, args.source)
        if not sources:
            return None
        parts.append({"source": {"$in": sources}})
    if parts:
        configurable["filter"] = parts[0] if len(parts) == 1 else {"$and": parts}
    if _option(args, "filter") and not store.get(filter=configurable["filter"], limit=1):
        within = " among the --source selection" if _option(args, "source") else ""
        _warn(
            f"--filter {json.dumps(args.filter, ensure_ascii=False)} matches no stored chunk"
            f"{within} in table {store.table_name}"
        )
        return None
    return {"configurable": configurable}


@contextlib.contextmanager
def _reranker(args: argparse.Namespace, runtime: Any) -> Iterator[Any]:
    """``--rerank``: a BedrockReranker on the runtime's Bedrock endpoint and region, else None."""
    model_id = _option(args, "rerank")
    if not model_id:
        yield None
        return
    from langchain_tidb_bedrock.document_compressors.rerank import BedrockReranker

    embeddings = runtime.embeddings
    reranker = BedrockReranker(
        model_id=model_id, region_name=embeddings.region_name, endpoint_url=embeddings.endpoint_url
    )
    try:
        yield reranker
    finally:
        reranker.close()


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
    from langchain_tidb_bedrock.chains.prompts import format_sources

    if not docs:
        print("Sources: none (nothing was retrieved)")
        return
    print("Sources:")
    for line in format_sources(docs):
        print(line)


def _batch_embeddings(args: argparse.Namespace, store: TiDBVectorStore) -> Any:
    """``--batch-inference``: batch embeddings with the store's Titan settings, else None."""
    if not args.batch_inference:
        return None
    from langchain_tidb_bedrock.embeddings.batch import BedrockBatchEmbeddings

    try:
        return BedrockBatchEmbeddings.like(
            store.embeddings,
            args.batch_inference,
            args.role_arn,
            s3_endpoint_url=args.s3_endpoint_url,
            show_progress=not args.no_progress,
        )
    except ValueError as exc:  # a malformed S3 URI or role ARN: nothing was sent yet
        raise _UsageError(str(exc)) from exc


def _cmd_ingest(args: argparse.Namespace) -> int:
    from langchain_tidb_bedrock.ingest import SUPPORTED_SUFFIXES, ingest_plan, plan_ingest

    # Bad paths and clashing source names fail here, before any server starts.
    plan = plan_ingest(args.paths, name=args.name, glob=args.glob)
    verbose = bool(_option(args, "verbose", False))
    kinds = "/".join(SUPPORTED_SUFFIXES)
    if plan.ignored:
        n = len(plan.ignored)
        names = [p.as_posix() for p in plan.ignored]
        what = "file that is" if n == 1 else "files that are"
        _note(f"skipping {n} {what} not {kinds}: {_shown(names, verbose)}")
    if not plan.files and not args.prune:
        chosen = "matching --glob" if args.glob else kinds
        _note(f"no files to ingest ({chosen})")
        return 0
    with _open(args, DEFAULT_TABLE) as runtime:
        summary = ingest_plan(
            runtime.store,
            plan,
            batch_size=args.batch_size,
            show_progress=not args.no_progress,
            chunk_size=args.chunk_size,
            chunk_overlap=args.chunk_overlap,
            prune=args.prune,
            embeddings=_batch_embeddings(args, runtime.store),
        )
        if summary.unreadable:
            n = len(summary.unreadable)
            what = "file that is" if n == 1 else "files that are"
            names = [_as_typed(p) for p in summary.unreadable]
            _note(f"skipped {n} {what} not UTF-8 text: {_shown(names, verbose)}")
        if summary.missing_sources:
            n = summary.missing_sources
            gone = "stored file under these paths no longer exists; --prune deletes its chunks"
            if n != 1:
                gone = (
                    "stored files under these paths no longer exist; --prune deletes their chunks"
                )
            _note(f"{n} {gone}")
        print(f"Ingested into table {runtime.store.table_name}: {summary}")
    return 0


def _ask_loop(args: argparse.Namespace, questions: Iterator[str] | None) -> int:
    from langchain_tidb_bedrock.chains.rag import create_rag_chain

    with _open(args, DEFAULT_TABLE) as runtime, contextlib.ExitStack() as stack:
        config = _search_config(args, runtime.store, 4)
        if config is None:
            return 1
        reranker = stack.enter_context(_reranker(args, runtime))
        chain = create_rag_chain(runtime.store, runtime.llm, rerank=reranker)
        if questions is None:
            _, context = _stream_answer(chain, args.question, config)
            _print_sources(context)
            return 0
        from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

        print("Ask about your documents ('exit' or Ctrl-D to quit).")
        stored = _session_history(args, runtime.store)
        history: list[BaseMessage] = [] if stored is None else stored.messages
        for question in questions:
            print("bot> ", end="", flush=True)
            recent = history[-2 * _HISTORY_TURNS :]
            answer, context = _stream_answer(
                chain, {"question": question, "chat_history": recent}, config
            )
            _print_sources(context)
            turn = [HumanMessage(question), AIMessage(answer)]
            if stored is not None:
                stored.add_messages(turn)  # one statement: the turn is kept whole or not at all
            history = [*recent, *turn]
    return 0


def _session_history(
    args: argparse.Namespace, store: TiDBVectorStore
) -> TiDBChatMessageHistory | None:
    """``--session NAME``: the conversation kept in TiDB (on the store's engine), else None."""
    name = _option(args, "session")
    if name is None:
        return None
    from langchain_tidb_bedrock.chat_message_histories.base import TiDBChatMessageHistory

    stored = TiDBChatMessageHistory(name, engine=store.tidb_engine)
    earlier = len(stored.messages)
    state = f"resumed, {earlier} earlier messages" if earlier else "new"
    print(f"Session {name!r} ({state}); kept in TiDB table {stored.table_name}.")
    return stored


def _typed_questions() -> Iterator[str]:
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            print()
            return
        if question.lower() in ("exit", "quit"):
            return
        if question:
            yield question


def _cmd_ask(args: argparse.Namespace) -> int:
    return _ask_loop(args, None)


def _cmd_chat(args: argparse.Namespace) -> int:
    return _ask_loop(args, _typed_questions())


def _cmd_sources(args: argparse.Namespace) -> int:
    from langchain_tidb_bedrock.ingest import list_sources
    from langchain_tidb_bedrock.ingest.pipeline import plural

    with _open(args, DEFAULT_TABLE) as runtime:
        stored = list_sources(runtime.store)
        table = runtime.store.table_name
        if not stored:
            print(f"No sources stored in table {table}.")
            return 0
        width = max(len("SOURCE"), *(len(s.source) for s in stored))
        print(f"{'SOURCE':<{width}}  {'CHUNKS':>6}  INGESTED (UTC)")
        for s in stored:
            when = s.ingested_at.replace("T", " ").rstrip("Z") if s.ingested_at else "-"
            gone = "  (file gone)" if s.path and not Path(s.path).exists() else ""
            cut = "" if s.complete else f"  (incomplete: {s.expected} chunks in the file)"
            print(f"{s.source:<{width}}  {s.chunks:>6}  {when}{cut}{gone}")
        total = sum(s.chunks for s in stored)
        print(f"{plural(len(stored), 'source')}, {plural(total, 'chunk')} in table {table}")
        incomplete = [s.source for s in stored if not s.complete]
        if incomplete:
            what = "file is" if len(incomplete) == 1 else "files are"
            _note(
                f"{len(incomplete)} {what} incomplete (an ingest was interrupted); "
                "ingest again to finish"
            )
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    from langchain_tidb_bedrock.ingest import delete_sources, list_sources
    from langchain_tidb_bedrock.ingest.pipeline import plural

    with _open(args, DEFAULT_TABLE) as runtime:
        sources, unmatched = _resolve_sources(runtime.store, args.source)
        if not sources:
            print("Deleted nothing.")
            return 1
        chunks = {s.source: s.chunks for s in list_sources(runtime.store)}
        total = sum(chunks.get(s, 0) for s in sources)
        what = f"{plural(total, 'chunk')} of {plural(len(sources), 'source')}"
        verbose = bool(_option(args, "verbose", False))
        if len(sources) > 1 and not args.yes and not _confirm(what, sources, verbose):
            print("Deleted nothing.")
            return 1
        delete_sources(runtime.store, sources)
        print(f"Deleted {what}: {_shown(sources, verbose)}")
    return 1 if unmatched else 0


def _confirm(what: str, sources: Sequence[str], verbose: bool) -> bool:
    """Ask on the terminal before deleting several sources; refuse without one."""
    if not sys.stdin.isatty():
        msg = (
            f"--source matches {len(sources)} sources ({_shown(sources, verbose)}); "
            "pass --yes to delete them all (no terminal to ask)"
        )
        raise _UsageError(msg)
    print(f"Delete {what}: {_shown(sources, verbose)}? [y/N] ", end="", file=sys.stderr)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _cmd_demo(args: argparse.Namespace) -> int:
    from langchain_core.documents import Document

    from langchain_tidb_bedrock.chains.rag import create_rag_chain
    from langchain_tidb_bedrock.ingest import add_new_documents, chunk_id

    config: RunnableConfig = {"configurable": {"k": _option(args, "k") or 3}}
    docs = [
        Document(
            id=chunk_id(DEMO_SOURCE, fact),
            page_content=fact,
            metadata={"source": DEMO_SOURCE, "chunk": n},
        )
        for n, fact in enumerate(DEMO_FACTS)
    ]
    with _open(args, DEMO_TABLE) as runtime, contextlib.ExitStack() as stack:
        added, present = add_new_documents(runtime.store, docs)
        print(
            f"Stored {len(docs)} facts in table {runtime.store.table_name} "
            f"({added} embedded, {present} already there)."
        )
        print(f"\nQuestion: {DEMO_QUESTION}")

        reranker = stack.enter_context(_reranker(args, runtime))
        how = "vector search" + (f", reranked by {args.rerank}" if reranker else "")

        def show_retrieved(context: list[Document]) -> None:
            print(f"Retrieved {len(context)} passages ({how}):")
            for n, doc in enumerate(context, start=1):
                print(f"  [{n}] {doc.page_content}")
            print("\nAnswer:")

        chain = create_rag_chain(runtime.store, runtime.llm, rerank=reranker)
        _, context = _stream_answer(chain, DEMO_QUESTION, config, on_context=show_retrieved)
        _print_sources(context)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ingest": _cmd_ingest,
    "ask": _cmd_ask,
    "chat": _cmd_chat,
    "sources": _cmd_sources,
    "delete": _cmd_delete,
    "demo": _cmd_demo,
}

# Expected failures: reported in one line, no traceback (with service_errors(): the client
# libraries' own, imported only when an error gets that far).
_EXPECTED: tuple[type[BaseException], ...] = (
    RuntimeConfigError,
    BedrockConfigError,
    ConnectionConfigError,
    BedrockEmbeddingError,
    BatchInferenceError,
)


@contextlib.contextmanager
def _cleanup_on_termination() -> Iterator[None]:
    """Let SIGTERM and SIGHUP (a closed terminal) unwind like Ctrl-C.

    So the shared local server learns at once that this command has left.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _search_notes(command: str) -> Iterator[None]:
    """Keep the store's search notices ("no vector index") out of commands that don't search."""
    if command not in ("sources", "delete"):
        yield
        return
    store_logger = logging.getLogger("langchain_tidb_bedrock.vectorstores")
    level = store_logger.level
    store_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        store_logger.setLevel(level)


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
        _check(parser, args)
    except SystemExit as exc:  # argparse already printed its one-line error (or --help)
        return int(exc.code or 0)
    verbose = bool(_option(args, "verbose", False))
    # Library warnings (e.g. "no vector index: exact kNN") are details, not CLI output.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s: %(message)s"
    )
    try:
        with _cleanup_on_termination(), _search_notes(args.command):
            return _COMMANDS[args.command](args)
    except IngestInterrupted as exc:
        print(f"\ninterrupted: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except ConnectionConfigError as exc:  # settings, not input: like the other services
        if verbose:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (_UsageError, FileNotFoundError, NotADirectoryError, InvalidInputError) as exc:
        if verbose:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (*_EXPECTED, *service_errors()) as exc:
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
