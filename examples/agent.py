"""An agent with TiDB memory: stopped mid-run, resumed in a new process.

``create_agent`` runs on LangGraph, which needs a checkpointer (the conversation, step by step)
and a store (long-term memory). Both live in TiDB here: ``TiDBSaver`` and ``TiDBStore``.
The model is the seed's Llama 3.2 3B, which Bedrock serves without tool use, so retrieval comes
from ``TiDBRetrievalMiddleware``: it searches the vector store before each turn's model call.

1. ``start``: ingest a handbook, remember a fact about the user in the store, answer a first
   question, then ask a second one and stop the run right before the model call. The process
   exits with the turn half done.
2. ``resume`` (a new process): load the thread from TiDB, finish the pending turn, and read
   the remembered fact back.

    python examples/agent.py           # both phases, the second in a fresh process
    python examples/agent.py start     # or one at a time
    python examples/agent.py resume

TiDB comes from ``TIDB_URL`` / ``TIDB_*`` (else a local tidb-server), Bedrock from the usual AWS
settings (else an in-process LocalBedrock).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from langchain.agents import create_agent
from langchain_core.documents import Document

from langchain_tidb_bedrock.cli.services import open_runtime
from langchain_tidb_bedrock.langgraph import TiDBRetrievalMiddleware, TiDBSaver, TiDBStore

TABLE = "tidb_bedrock_agent_docs"
PREFIX = "tidb_bedrock_agent_"  # tables: <prefix>checkpoints, ..., <prefix>store
CONFIG: Any = {"configurable": {"thread_id": "handbook-demo"}}
USER = ("users", "ana")

HANDBOOK = [
    Document(
        "Deploys go out on Tuesdays and Thursdays after release review.",
        metadata={"source": "handbook/deploys.md"},
    ),
    Document(
        "The on-call engineer answers pages within 5 minutes, day and night.",
        metadata={"source": "handbook/oncall.md"},
    ),
    Document(
        "Our product database is TiDB, a MySQL compatible distributed SQL database.",
        metadata={"source": "handbook/database.md"},
    ),
]


def build_agent(runtime: Any) -> tuple[Any, TiDBStore]:
    """The same agent in every process: all of its state is in TiDB."""
    vectors, llm, embeddings = runtime
    engine = vectors.tidb_engine
    memory = TiDBStore(
        engine=engine,
        table_prefix=PREFIX,
        index={
            "dims": len(embeddings.embed_query("dims")),
            "embed": embeddings,
            "fields": ["text"],
        },
    )
    agent = create_agent(
        llm,
        middleware=[TiDBRetrievalMiddleware(vectors, k=2)],
        checkpointer=TiDBSaver(engine=engine, table_prefix=PREFIX),
        store=memory,
        system_prompt="You are the team handbook assistant.",
    )
    return agent, memory


def start() -> None:
    with open_runtime(table=TABLE) as runtime:
        agent, memory = build_agent(runtime)
        runtime.store.add_documents(HANDBOOK, ids=[d.metadata["source"] for d in HANDBOOK])
        TiDBSaver(engine=runtime.store.tidb_engine, table_prefix=PREFIX).delete_thread(
            CONFIG["configurable"]["thread_id"]
        )  # a fresh conversation on every demo run
        memory.put(USER, "preferences", {"text": "Ana wants short answers with sources."})

        question = "When do deploys go out?"
        answer = agent.invoke({"messages": [("user", question)]}, CONFIG)["messages"][-1]
        print(f"[start] Q: {question}\n[start] A: {answer.content}")

        question = "How fast does the on-call engineer answer pages?"
        agent.invoke({"messages": [("user", question)]}, CONFIG, interrupt_before=["model"])
        state = agent.get_state(CONFIG)
        print(f"[start] Q: {question}")
        print(f"[start] stopped before {list(state.next)}: the passages are retrieved, no answer")


def resume() -> None:
    with open_runtime(table=TABLE) as runtime:
        agent, memory = build_agent(runtime)
        state = agent.get_state(CONFIG)
        print(
            f"[resume] thread loaded from TiDB: {len(state.values['messages'])} messages, "
            f"next step {list(state.next)}"
        )
        result = agent.invoke(None, CONFIG)  # continue from the checkpoint
        sources = [d.metadata["source"] for d in result["retrieved_documents"]]
        print(f"[resume] A: {result['messages'][-1].content}")
        print(f"[resume] sources: {', '.join(sources)}")
        print(f"[resume] {len(result['messages'])} messages in the thread")
        hit = memory.search(USER, query="how does Ana like answers?", limit=1)[0]
        print(f"[resume] remembered about Ana: {hit.value['text']}")


def main() -> None:
    phase = sys.argv[1] if len(sys.argv) > 1 else "both"
    if phase == "start":
        start()
    elif phase == "resume":
        resume()
    else:
        start()
        # A new process: nothing but TiDB carries the conversation over.
        subprocess.run([sys.executable, __file__, "resume"], check=True)  # noqa: S603


if __name__ == "__main__":
    main()
