"""Retrieval inside ``create_agent``: a retriever tool, and a middleware for models without tools.

- :func:`create_tidb_retriever_tool` lets a tool-calling model (Llama 3.1 8B/70B, 3.3 70B on
  Bedrock) search when it decides to; the documents ride along as the ``ToolMessage`` artifact,
  so their sources survive.
- :class:`TiDBRetrievalMiddleware` retrieves for the latest user turn before the model is called
  and puts the passages into the system message ("2-step RAG"): it works for every model,
  including Llama 3.2 1B/3B, which Bedrock serves without tool use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.documents import Document
from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, create_retriever_tool
from langchain_core.vectorstores import VectorStore
from langgraph.runtime import Runtime
from typing_extensions import NotRequired

from langchain_tidb_bedrock.chains.prompts import format_docs
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = [
    "RETRIEVAL_INSTRUCTIONS",
    "RetrievalState",
    "TiDBRetrievalMiddleware",
    "create_tidb_retriever_tool",
]

RETRIEVAL_INSTRUCTIONS = (
    "Answer the user's latest question using only the numbered passages in the context below, "
    "and cite the passages you use by their number in square brackets. If the passages do not "
    "contain the answer, say that you don't know based on the provided context."
)
"""The instructions placed before the retrieved passages in the system message."""


def _as_retriever(source: BaseRetriever | VectorStore, k: int) -> BaseRetriever:
    if isinstance(source, BaseRetriever):
        return source
    if isinstance(source, VectorStore):
        return source.as_retriever(search_kwargs={"k": k})
    msg = f"expected a retriever or a vector store, got {type(source).__name__}"
    raise InvalidInputError(msg)


def create_tidb_retriever_tool(
    retriever: BaseRetriever | VectorStore,
    name: str = "search_documents",
    description: str = (
        "Search the knowledge base for passages relevant to a question. Input: the question."
    ),
    *,
    k: int = 4,
    document_separator: str = "\n\n",
) -> BaseTool:
    """A retriever tool whose ``ToolMessage`` keeps the documents as its artifact.

    Args:
        retriever: a retriever, or a vector store (searched for ``k`` documents).
        name: the tool's name, as the model sees it.
        description: what the tool does, as the model sees it.
        k: documents per search when ``retriever`` is a vector store.
        document_separator: text between documents in the tool's content.

    Returns:
        A tool for ``create_agent(model, tools=[...])`` (``response_format=
        "content_and_artifact"``: the message content is the text, ``.artifact`` the documents;
        read back from a checkpoint, LangGraph's serializer gives them as dicts with
        ``page_content`` and ``metadata``).
    """
    return create_retriever_tool(
        _as_retriever(retriever, k),
        name,
        description,
        document_separator=document_separator,
        response_format="content_and_artifact",
    )


class RetrievalState(AgentState[Any]):
    """Agent state with the documents retrieved for the latest user turn (checkpointed)."""

    retrieved_documents: NotRequired[list[Document]]
    retrieved_for: NotRequired[str | None]


def _latest_question(messages: list[AnyMessage]) -> HumanMessage | None:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message
    return None


class TiDBRetrievalMiddleware(AgentMiddleware[RetrievalState, Any]):
    """Retrieve before the model call and ground the model in the passages (2-step RAG).

    Setup:
        Works with any chat model; built for those without tool use (Llama 3.2 1B/3B):

        ```python
        from langchain.agents import create_agent

        from langchain_tidb_bedrock import create_llama3_chat
        from langchain_tidb_bedrock.langgraph import TiDBRetrievalMiddleware, TiDBSaver

        agent = create_agent(
            create_llama3_chat(),  # Llama 3.2 3B: no tools
            middleware=[TiDBRetrievalMiddleware(vector_store, k=4)],
            checkpointer=TiDBSaver(engine=vector_store.tidb_engine),
        )
        result = agent.invoke(
            {"messages": [("user", "What is TiDB?")]},
            {"configurable": {"thread_id": "t1"}},
        )
        result["messages"][-1].content       # the grounded answer
        result["retrieved_documents"]          # its sources
        ```

    Key init args:
        retriever: BaseRetriever | VectorStore
            What to search (a vector store is searched for ``k`` documents).
        k: int
            Documents per search for a vector store.
        instructions: str
            Text placed before the numbered passages in the system message.

    Once per user turn (a new ``HumanMessage``), before the model runs, the middleware searches
    with that message's text and stores the documents in the state (``retrieved_documents``,
    checkpointed with the thread). Every model call of the turn then gets them as numbered
    passages (``[1] ...``, with sources) appended to the system message.
    """

    state_schema = RetrievalState

    def __init__(
        self,
        retriever: BaseRetriever | VectorStore,
        *,
        k: int = 4,
        instructions: str = RETRIEVAL_INSTRUCTIONS,
    ) -> None:
        """Configure the middleware (nothing is searched until the agent runs)."""
        super().__init__()
        self.retriever = _as_retriever(retriever, k)
        self.instructions = instructions

    def _pending(self, state: RetrievalState) -> HumanMessage | None:
        question = _latest_question(state["messages"])
        if question is None or (
            question.id is not None and state.get("retrieved_for") == question.id
        ):
            return None
        return question

    def before_model(self, state: RetrievalState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Search for the latest user turn, once per turn."""
        question = self._pending(state)
        if question is None:
            return None
        docs = self.retriever.invoke(question.text)
        return {"retrieved_documents": docs, "retrieved_for": question.id}

    async def abefore_model(
        self, state: RetrievalState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async :meth:`before_model`."""
        question = self._pending(state)
        if question is None:
            return None
        docs = await self.retriever.ainvoke(question.text)
        return {"retrieved_documents": docs, "retrieved_for": question.id}

    def _grounded(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        docs = cast("list[Document]", request.state.get("retrieved_documents") or [])
        context = f"{self.instructions}\n\nContext:\n{format_docs(docs)}"
        base = request.system_message.text if request.system_message is not None else ""
        text = f"{base}\n\n{context}" if base else context
        return request.override(system_message=SystemMessage(content=text))

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Call the model with the passages in its system message."""
        return handler(self._grounded(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async :meth:`wrap_model_call`."""
        return await handler(self._grounded(request))
