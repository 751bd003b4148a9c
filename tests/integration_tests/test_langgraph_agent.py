"""Agents from ``create_agent`` on TiDB and (Local)Bedrock: retrieval with and without tool use.

LocalBedrock plays Bedrock's tool use for the Llama models AWS lists with it (3.1 8B/70B,
3.3 70B): it calls the first offered tool while no tool result is in the conversation, then
answers from the results; 3.2 1B/3B refuse ``toolConfig`` as Bedrock does, so the seed's model
gets its grounding from ``TiDBRetrievalMiddleware`` instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError
from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_tidb_bedrock import (
    BedrockTitanEmbeddings,
    TiDBEngine,
    TiDBVectorStore,
    create_llama3_chat,
)
from langchain_tidb_bedrock.langgraph import (
    TiDBRetrievalMiddleware,
    TiDBSaver,
    TiDBStore,
    create_tidb_retriever_tool,
)

TOOL_MODEL = "meta.llama3-1-8b-instruct-v1:0"
NO_TOOL_MODEL = "us.meta.llama3-2-3b-instruct-v1:0"
DOCS = [
    Document(
        "TiDB stores vectors in VECTOR columns next to the rows.", metadata={"source": "a.md"}
    ),
    Document("Green tea is brewed at 80 degrees for two minutes.", metadata={"source": "tea.md"}),
    Document(
        "Titan Text Embeddings V2 returns 256, 512 or 1024 dimensions.", metadata={"source": "t.md"}
    ),
]


@pytest.fixture
def prefix(tidb_engine: sa.Engine) -> Iterator[str]:
    name = f"la_{uuid.uuid4().hex[:10]}_"
    yield name
    tables = ["checkpoints", "checkpoint_blobs", "checkpoint_channels", "checkpoint_writes"]
    tables += ["store", "store_vectors", "docs"]
    with tidb_engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS " + ", ".join(f"`{name}{t}`" for t in tables))


@pytest.fixture
def engine(tidb_url: str) -> Iterator[TiDBEngine]:
    with TiDBEngine(tidb_url) as shared:
        yield shared


@pytest.fixture
def docs_store(engine: TiDBEngine, prefix: str, bedrock: Any) -> TiDBVectorStore:
    emb = BedrockTitanEmbeddings(
        endpoint_url=bedrock.endpoint_url, region_name="us-east-1", dimensions=256
    )
    store = TiDBVectorStore(emb, engine=engine, table_name=f"{prefix}docs")
    store.add_documents(DOCS)
    return store


def _converse(bedrock: Any) -> list[Any]:
    return [r for r in bedrock.requests if r.op in ("Converse", "ConverseStream")]


# ---------------------------------------------------------------------------------- LocalBedrock


@tool
def lookup(question: str) -> str:
    """Look the question up in the handbook."""
    return "[1] The on-call engineer answers pages within 5 minutes."


@pytest.mark.parametrize("streaming", [False, True])
def test_local_bedrock_tool_use_on_llama_3_1(bedrock: Any, streaming: bool) -> None:
    chat = create_llama3_chat(TOOL_MODEL, endpoint_url=bedrock.endpoint_url).bind_tools([lookup])
    question = HumanMessage("How fast are pages answered?")
    if streaming:
        chunks = list(chat.stream([question]))
        first: Any = chunks[0]
        for chunk in chunks[1:]:
            first = first + chunk
    else:
        first = chat.invoke([question])
    assert first.tool_calls == [
        {
            "name": "lookup",
            "args": {"question": "How fast are pages answered?"},
            "id": first.tool_calls[0]["id"],
            "type": "tool_call",
        }
    ]
    assert first.response_metadata.get("stopReason", "tool_use") == "tool_use"
    result = lookup.invoke(first.tool_calls[0])
    answer = chat.invoke([question, first, result])
    assert answer.tool_calls == []
    assert "5 minutes" in str(answer.content)
    bodies = [r.body for r in _converse(bedrock)]
    assert len(bodies) == 2
    assert all("toolConfig" in b for b in bodies)


def test_local_bedrock_refuses_tools_on_llama_3_2(bedrock: Any) -> None:
    chat = create_llama3_chat(NO_TOOL_MODEL, endpoint_url=bedrock.endpoint_url, max_retries=0)
    with pytest.raises(ClientError, match="doesn't support tool use"):
        chat.bind_tools([lookup]).invoke("How fast are pages answered?")
    assert "know" in str(chat.invoke("How fast are pages answered?").content)  # no tools: fine


# ---------------------------------------------------------------------------------- agents


def test_tool_agent_keeps_documents_as_the_artifact(
    bedrock: Any, docs_store: TiDBVectorStore, engine: TiDBEngine, prefix: str
) -> None:
    agent = create_agent(
        create_llama3_chat(TOOL_MODEL, endpoint_url=bedrock.endpoint_url),
        tools=[create_tidb_retriever_tool(docs_store, k=2)],
        checkpointer=TiDBSaver(engine=engine, table_prefix=prefix),
    )
    config = {"configurable": {"thread_id": "tools"}}
    out = agent.invoke({"messages": [("user", "Where does TiDB store vectors?")]}, config)
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    tool_message = out["messages"][2]
    assert isinstance(tool_message, ToolMessage)
    assert next(d.metadata["source"] for d in tool_message.artifact) == "a.md"
    assert all(isinstance(d, Document) for d in tool_message.artifact)
    assert "VECTOR columns" in str(out["messages"][-1].content)
    # The sources survive the checkpoint (read back from TiDB; LangGraph's serializer returns
    # artifact documents as their dicts, with any checkpointer).
    saved = agent.get_state(config).values["messages"][2]
    assert [(d["page_content"], d["metadata"]) for d in saved.artifact] == [
        (d.page_content, d.metadata) for d in tool_message.artifact
    ]


def test_middleware_grounds_a_model_without_tool_use(
    bedrock: Any, docs_store: TiDBVectorStore, engine: TiDBEngine, prefix: str
) -> None:
    agent = create_agent(
        create_llama3_chat(NO_TOOL_MODEL, endpoint_url=bedrock.endpoint_url),
        middleware=[TiDBRetrievalMiddleware(docs_store, k=2)],
        checkpointer=TiDBSaver(engine=engine, table_prefix=prefix),
        store=TiDBStore(engine=engine, table_prefix=prefix),
        system_prompt="You are the handbook assistant.",
    )
    config = {"configurable": {"thread_id": "grounded"}}
    first = agent.invoke(
        {"messages": [("user", "At what temperature is green tea brewed?")]}, config
    )
    assert "80 degrees" in str(first["messages"][-1].content)
    assert next(d.metadata["source"] for d in first["retrieved_documents"]) == "tea.md"
    second = agent.invoke({"messages": [("user", "Where does TiDB store vectors?")]}, config)
    assert "VECTOR columns" in str(second["messages"][-1].content)
    assert len(second["messages"]) == 4  # both turns, from the checkpoint
    calls = _converse(bedrock)
    assert len(calls) == 2
    assert all("toolConfig" not in c.body for c in calls)  # 3.2 3B would refuse it
    system = calls[-1].body["system"][0]["text"]
    assert system.startswith("You are the handbook assistant.")
    assert "[1] TiDB stores vectors in VECTOR columns" in system


async def test_middleware_async_retrieves_once_per_turn(
    bedrock: Any, docs_store: TiDBVectorStore, engine: TiDBEngine, prefix: str
) -> None:
    counted: list[str] = []
    base = docs_store.as_retriever(search_kwargs={"k": 1})

    class Counting(type(base)):  # type: ignore[misc]
        async def _aget_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            counted.append(query)
            return await super()._aget_relevant_documents(query, run_manager=run_manager)

    retriever = Counting(vectorstore=docs_store, search_kwargs={"k": 1})
    agent = create_agent(
        create_llama3_chat(NO_TOOL_MODEL, endpoint_url=bedrock.endpoint_url),
        middleware=[TiDBRetrievalMiddleware(retriever)],
        checkpointer=TiDBSaver(engine=engine, table_prefix=prefix),
    )
    config = {"configurable": {"thread_id": "async"}}
    out = await agent.ainvoke(
        {"messages": [("user", "How many dimensions does Titan return?")]}, config
    )
    assert "1024" in str(out["messages"][-1].content)
    assert counted == ["How many dimensions does Titan return?"]
    assert isinstance(out["messages"][-1], AIMessage)


# ---------------------------------------------------------------------------------- processes


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent.py"
EXAMPLE_TABLES = [
    "tidb_bedrock_agent_docs",
    *(
        f"tidb_bedrock_agent_{t}"
        for t in (
            "checkpoints",
            "checkpoint_blobs",
            "checkpoint_channels",
            "checkpoint_writes",
            "store",
            "store_vectors",
        )
    ),
]


def test_example_agent_is_resumed_in_a_second_process(
    tidb_url: str, tidb_engine: sa.Engine, tmp_path: Path
) -> None:
    """examples/agent.py: process 1 stops a turn before the model call and exits; process 2
    (started by it) loads the thread from TiDB and finishes the turn."""
    none = str(tmp_path / "none")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDB_", "AWS_", "BEDROCK_"))}
    env.update(TIDB_URL=tidb_url, AWS_CONFIG_FILE=none, AWS_SHARED_CREDENTIALS_FILE=none)
    try:
        proc = subprocess.run(  # noqa: S603 - our own example
            [sys.executable, str(EXAMPLE)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        with tidb_engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS " + ", ".join(EXAMPLE_TABLES))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "[start] stopped before ['model']: the passages are retrieved, no answer" in lines
    assert "[resume] thread loaded from TiDB: 3 messages, next step ['model']" in lines
    answer = next(line for line in lines if line.startswith("[resume] A:"))
    assert "5 minutes" in answer
    assert "[resume] 4 messages in the thread" in lines
    assert "[resume] remembered about Ana: Ana wants short answers with sources." in lines
    # Two processes, each with its own (announced) Bedrock stand-in.
    assert sum(line.startswith("note:") for line in proc.stderr.splitlines()) == 2
