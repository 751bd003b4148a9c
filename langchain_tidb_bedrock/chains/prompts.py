"""Prompts of the RAG chain: a grounded, citing answer prompt and a question-rewriting prompt.

The layout is a contract shared with real models and with ``LocalBedrock``'s stand-in: passages
are numbered lines (``[1] ...``) that run on until the next ``[n]`` line or a blank line, the
question follows the last ``Question:``, and a rewrite prompt has ``Chat history:`` (``Human:`` /
``AI:`` lines) and ``Follow-up question:`` sections.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
)
from langchain_core.prompts import ChatPromptTemplate

__all__ = [
    "CONDENSE_QUESTION_PROMPT",
    "NO_CONTEXT",
    "RAG_PROMPT",
    "format_chat_history",
    "format_docs",
    "format_sources",
    "to_messages",
]

NO_CONTEXT = "(no passages retrieved)"
"""What the context says when retrieval found nothing, so the model answers that it doesn't know."""

_RAG_SYSTEM = (
    "You are an assistant for question-answering tasks. Use only the numbered passages in the "
    "context below to answer the question; do not use prior knowledge. Cite the passages you use "
    "by their number in square brackets, like [1] or [2], right after the statement they support. "
    "If the passages do not contain the answer, or no passages were retrieved, say that you don't "
    "know based on the provided context; never invent an answer. Keep the answer concise: at most "
    "three sentences."
)

RAG_PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", _RAG_SYSTEM),
        ("human", "Context:\n{context}\n\nQuestion: {question}\n\nAnswer:"),
    ]
)
"""Answer prompt; variables ``context`` (from :func:`format_docs`) and ``question``."""

_CONDENSE = (
    "Rewrite the follow-up question below as a standalone question that can be understood "
    "without the conversation. Keep its meaning, resolve pronouns and references from the chat "
    "history, and do not answer it. Reply with the standalone question only.\n\n"
    "Chat history:\n{chat_history}\n\n"
    "Follow-up question: {question}\n\n"
    "Standalone question:"
)

CONDENSE_QUESTION_PROMPT = ChatPromptTemplate.from_messages([("human", _CONDENSE)])
"""Question-rewriting prompt; variables ``chat_history`` (from :func:`format_chat_history`)
and ``question``."""

# A line that would read as a new passage number (e.g. a Markdown footnote "[3] ...").
_PASSAGE_LIKE = re.compile(r"^\[(\d+)\](\s)")


def _passage_text(text: str) -> list[str]:
    # A blank line ends a passage in the numbered layout, and a line starting "[n] " starts a
    # new one: drop the first and disarm the second so one document stays one passage.
    lines = [line.strip() for line in text.splitlines()]
    return [_PASSAGE_LIKE.sub(r"(\1)\2", line) for line in lines if line]


def _origin(doc: Document, chunk_format: str) -> str | None:
    source = doc.metadata.get("source")
    if source is None or source == "":
        return None
    chunk = doc.metadata.get("chunk")
    return str(source) + (chunk_format.format(chunk) if chunk is not None else "")


def format_docs(docs: Sequence[Document]) -> str:
    """Number documents as passages ``[1] ...`` for the answer prompt.

    Each passage is followed by its source when the metadata has one. With no documents the
    context is :data:`NO_CONTEXT`, so the model is still asked and says it doesn't know.

    Args:
        docs: Retrieved documents, best first.

    Returns:
        The context text.
    """
    if not docs:
        return NO_CONTEXT
    passages = []
    for n, doc in enumerate(docs, start=1):
        lines = _passage_text(doc.page_content) or ["(empty passage)"]
        origin = _origin(doc, ", chunk {}")
        if origin is not None:
            lines.append(f"(source: {origin})")
        passages.append(f"[{n}] " + "\n".join(lines))
    return "\n".join(passages)


def format_sources(docs: Sequence[Document]) -> list[str]:
    """One line per document, numbered like :func:`format_docs`: ``[n] source (chunk m)``.

    Args:
        docs: The documents that were in the prompt.

    Returns:
        Lines such as ``[1] docs/tidb.md (chunk 0)``; documents without a source show their id,
        and a reranked document its score: ``[1] docs/tidb.md (chunk 0) relevance 0.82``.
    """
    lines = []
    for n, doc in enumerate(docs, start=1):
        origin = _origin(doc, " (chunk {})") or (f"id {doc.id}" if doc.id else "(unknown source)")
        score = doc.metadata.get("relevance_score")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            origin += f" relevance {score:.2f}"
        lines.append(f"[{n}] {origin}")
    return lines


_ROLES = {"human": "Human", "ai": "AI", "system": "System"}


def to_messages(history: Any) -> list[BaseMessage]:
    """Chat history as LangChain messages.

    Args:
        history: Messages, ``(role, text)`` tuples (roles ``human``/``user``, ``ai``/
            ``assistant``, ``system``), role/content dicts, or None.

    Returns:
        The messages (an empty list for None).
    """
    if not history:
        return []
    return list(convert_to_messages(history))


def format_chat_history(history: Any) -> str:
    """Render chat history as ``Human: ...`` / ``AI: ...`` lines for the rewriting prompt.

    Args:
        history: Anything :func:`to_messages` accepts.

    Returns:
        One line per turn (multi-line turns are joined with spaces).
    """
    lines = []
    for message in to_messages(history):
        if isinstance(message, HumanMessage):
            role = "Human"
        elif isinstance(message, AIMessage):
            role = "AI"
        elif isinstance(message, SystemMessage):
            role = "System"
        else:
            role = _ROLES.get(message.type, message.type.capitalize())
        text = " ".join(message.text.split())
        lines.append(f"{role}: {text}")
    return "\n".join(lines)
