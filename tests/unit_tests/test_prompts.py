"""Prompts of the RAG chain: layout, rules, and the contract with LocalBedrock's stand-in."""

from __future__ import annotations

import re

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_tidb_bedrock.chains.prompts import (
    CONDENSE_QUESTION_PROMPT,
    NO_CONTEXT,
    RAG_PROMPT,
    format_chat_history,
    format_docs,
    format_sources,
)
from langchain_tidb_bedrock.chains.rag import _standalone
from langchain_tidb_bedrock.local import _standin_models as standin

DOCS = [
    Document(
        id="a",
        page_content="TiDB is a distributed SQL database.\n\nIt is MySQL compatible.",
        metadata={"source": "docs/tidb.md", "chunk": 0},
    ),
    Document(id="b", page_content="Paris is the capital of France.", metadata={}),
    Document(
        id="c",
        page_content="[3] a footnote line\nTitan embeds text.",
        metadata={"source": "notes.txt"},
    ),
]


def _render(prompt_value: object) -> str:
    # What Converse receives: the system text, then the user text (LocalBedrock joins them).
    messages = prompt_value.to_messages()  # type: ignore[attr-defined]
    return "\n\n".join(m.text for m in messages)


def test_format_docs_numbers_passages_with_sources() -> None:
    text = format_docs(DOCS)
    assert text.splitlines() == [
        "[1] TiDB is a distributed SQL database.",
        "It is MySQL compatible.",
        "(source: docs/tidb.md, chunk 0)",
        "[2] Paris is the capital of France.",
        "[3] (3) a footnote line",
        "Titan embeds text.",
        "(source: notes.txt)",
    ]
    # A blank line inside a document would end its passage early: none may remain.
    assert "\n\n" not in text


def test_format_docs_passages_parse_as_the_standin_reads_them() -> None:
    passages = standin._passages(format_docs(DOCS))
    assert [label for label, _ in passages] == ["1", "2", "3"]
    assert "MySQL compatible" in passages[0][1]
    assert passages[2][1].startswith("(3) a footnote line")


def test_no_docs_gives_explicit_no_context() -> None:
    assert format_docs([]) == NO_CONTEXT == "(no passages retrieved)"


def test_format_sources() -> None:
    assert format_sources(DOCS) == [
        "[1] docs/tidb.md (chunk 0)",
        "[2] id b",
        "[3] notes.txt",
    ]
    assert format_sources([Document(page_content="x")]) == ["[1] (unknown source)"]


def test_rag_prompt_rules_and_layout() -> None:
    rendered = _render(
        RAG_PROMPT.invoke({"context": format_docs(DOCS), "question": "What is TiDB?"})
    )
    lowered = rendered.lower()
    assert "use only the numbered passages" in lowered
    assert "cite" in lowered
    assert "[1]" in rendered
    assert "don't know" in lowered
    assert "never invent" in lowered
    # The question comes last, after the last "Question:".
    assert rendered.rstrip().endswith("Question: What is TiDB?\n\nAnswer:")
    # The instructions never start a line with "[n] " (they would read as a passage).
    system = RAG_PROMPT.invoke({"context": "", "question": "q"}).to_messages()[0].text
    assert not re.search(r"^\s*\[\d+\]\s", system, re.MULTILINE)
    assert "Follow-up question:" not in rendered


def test_rag_prompt_drives_the_standin_to_a_cited_answer() -> None:
    rendered = _render(RAG_PROMPT.invoke({"context": format_docs(DOCS), "question": "capital?"}))
    assert standin.generate(rendered) == (
        "(LocalBedrock stand-in) Paris is the capital of France. [2]"
    )
    empty = _render(RAG_PROMPT.invoke({"context": format_docs([]), "question": "What is TiDB?"}))
    assert standin.generate(empty) == standin.I_DONT_KNOW


def test_chat_history_formats_messages_and_tuples() -> None:
    history = [
        SystemMessage("be brief"),
        HumanMessage("Tell me about\nTiDB"),
        AIMessage("It is a database [1]."),
    ]
    expected = "System: be brief\nHuman: Tell me about TiDB\nAI: It is a database [1]."
    assert format_chat_history(history) == expected
    tuples = [
        ("system", "be brief"),
        ("human", "Tell me about\nTiDB"),
        ("ai", "It is a database [1]."),
    ]
    assert format_chat_history(tuples) == expected
    assert format_chat_history([("user", "hi"), ("assistant", "hello")]) == "Human: hi\nAI: hello"
    assert format_chat_history(None) == ""


def test_condense_prompt_layout_and_standin_rewrite() -> None:
    value = CONDENSE_QUESTION_PROMPT.invoke(
        {
            "chat_history": format_chat_history(
                [("human", "Tell me about TiDB Vector Search"), ("ai", "It stores vectors [1].")]
            ),
            "question": "Which functions does it use?",
        }
    )
    rendered = _render(value)
    assert "Chat history:\nHuman: Tell me about TiDB Vector Search\nAI:" in rendered
    assert "Follow-up question: Which functions does it use?" in rendered
    assert rendered.rstrip().endswith("Standalone question:")
    rewritten = standin.generate(rendered)
    assert rewritten.startswith("Which functions does it use?")
    assert "Vector" in rewritten
    assert "Search" in rewritten


def test_standalone_question_cleanup() -> None:
    assert _standalone('  Standalone question: "What is TiDB?"\nextra', "q") == "What is TiDB?"
    assert _standalone("\n\nWhat is TiDB?\n", "q") == "What is TiDB?"
    assert _standalone("   ", "fallback?") == "fallback?"
