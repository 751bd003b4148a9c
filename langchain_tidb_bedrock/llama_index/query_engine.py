"""A prebuilt LlamaIndex query engine: the counterpart of ``create_rag_chain``.

Retrieval from the TiDB store, the same grounded, citing answer prompt as the LangChain chain
(numbered passages ``[1] ...``, built by the same :func:`format_docs`), Llama 3 on Bedrock by
default, sources on every response, and streaming (sync and async).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.prompts import BasePromptTemplate as LangChainPrompt
from langchain_core.prompts import SystemMessagePromptTemplate
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.base.response.schema import (
    RESPONSE_TYPE,
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.indices.vector_store.base import VectorStoreIndex
from llama_index.core.llms import LLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.prompts import BasePromptTemplate, ChatPromptTemplate
from llama_index.core.prompts.mixin import PromptDictType, PromptMixinType
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters

from langchain_tidb_bedrock.chains.prompts import RAG_PROMPT, format_docs, format_sources
from langchain_tidb_bedrock.llama_index.vector_store import TiDBVectorStore

__all__ = ["TiDBQueryEngine", "create_query_engine", "default_qa_prompt"]

_PROMPT_KEY = "text_qa_template"
# LlamaIndex metadata that names where a node came from, when there is no "source".
_ORIGIN_KEYS = ("source", "file_path", "file_name", "url")


def default_qa_prompt() -> ChatPromptTemplate:
    """``RAG_PROMPT`` (the LangChain chain's answer prompt) as a LlamaIndex chat template.

    Variables ``context_str`` and ``query_str``, LlamaIndex's names for ``context`` and
    ``question``; the text is the same.
    """
    messages = []
    for template in RAG_PROMPT.messages:
        text: str = template.prompt.template  # type: ignore[union-attr]
        text = text.replace("{context}", "{context_str}").replace("{question}", "{query_str}")
        role = (
            MessageRole.SYSTEM
            if isinstance(template, SystemMessagePromptTemplate)
            else MessageRole.USER
        )
        messages.append(ChatMessage(role=role, content=text))
    return ChatPromptTemplate(message_templates=messages)


def _as_document(node: NodeWithScore) -> Document:
    meta = dict(node.node.metadata)
    if meta.get("source") in (None, ""):
        origin = next((meta[k] for k in _ORIGIN_KEYS if meta.get(k) not in (None, "")), None)
        if origin is not None:
            meta["source"] = origin
    return Document(
        id=node.node.node_id,
        page_content=node.node.get_content(metadata_mode=MetadataMode.NONE),
        metadata=meta,
    )


_ROLES = {"system": MessageRole.SYSTEM, "ai": MessageRole.ASSISTANT, "human": MessageRole.USER}


class TiDBQueryEngine(BaseQueryEngine):
    """Retrieve, then answer from numbered passages with citations; sources on the response.

    ``query`` returns a ``Response`` (``streaming=False``) or a ``StreamingResponse`` whose
    ``response_gen`` yields the answer's pieces; ``aquery`` the same, async
    (``AsyncStreamingResponse``). ``source_nodes`` are the passages in prompt order (``[1]`` is
    the first) and ``metadata["sources"]`` their one-line descriptions (``[1] file.md``).
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        llm: LLM,
        *,
        prompt: BasePromptTemplate | LangChainPrompt | None = None,
        streaming: bool = False,
        node_postprocessors: Sequence[BaseNodePostprocessor] | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        """Keep the parts; nothing is called here.

        Args:
            retriever: Any LlamaIndex retriever.
            llm: Any LlamaIndex LLM (chat is used).
            prompt: A LlamaIndex prompt with ``context_str`` and ``query_str``, or a LangChain
                prompt with ``context`` and ``question``; default :func:`default_qa_prompt`.
            streaming: Return streaming responses.
            node_postprocessors: Applied to the retrieved nodes, in order (rerank, cutoff...).
            callback_manager: LlamaIndex callback manager.
        """
        self._retriever = retriever
        self._llm = llm
        self._prompt: BasePromptTemplate | LangChainPrompt = prompt or default_qa_prompt()
        self._streaming = streaming
        self._postprocessors = list(node_postprocessors or [])
        super().__init__(callback_manager or CallbackManager([]))

    @property
    def retriever(self) -> BaseRetriever:
        """The retriever."""
        return self._retriever

    def _get_prompts(self) -> dict[str, Any]:
        return {_PROMPT_KEY: self._prompt}

    def _update_prompts(self, prompts: PromptDictType) -> None:
        if _PROMPT_KEY in prompts:
            self._prompt = prompts[_PROMPT_KEY]

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    def _postprocess(self, nodes: list[NodeWithScore], bundle: QueryBundle) -> list[NodeWithScore]:
        for post in self._postprocessors:
            nodes = post.postprocess_nodes(nodes, query_bundle=bundle)
        return nodes

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """The passages for a question (after the postprocessors)."""
        return self._postprocess(self._retriever.retrieve(query_bundle), query_bundle)

    async def aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Async :meth:`retrieve`."""
        nodes = await self._retriever.aretrieve(query_bundle)
        return self._postprocess(nodes, query_bundle)

    def _messages(self, question: str, docs: list[Document]) -> list[ChatMessage]:
        context = format_docs(docs)
        if isinstance(self._prompt, LangChainPrompt):
            return [
                ChatMessage(role=_ROLES.get(m.type, MessageRole.USER), content=m.text)
                for m in self._prompt.format_prompt(
                    context=context, question=question
                ).to_messages()
            ]
        return self._prompt.format_messages(context_str=context, query_str=question)

    @staticmethod
    def _metadata(docs: list[Document]) -> dict[str, Any]:
        return {"sources": format_sources(docs)}

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        nodes = self.retrieve(query_bundle)
        docs = [_as_document(n) for n in nodes]
        messages = self._messages(query_bundle.query_str, docs)
        if self._streaming:
            stream = self._llm.stream_chat(messages)

            def pieces() -> Generator[str, None, None]:
                for chunk in stream:
                    if chunk.delta:
                        yield chunk.delta

            return StreamingResponse(
                response_gen=pieces(), source_nodes=nodes, metadata=self._metadata(docs)
            )
        answer = self._llm.chat(messages).message.content or ""
        return Response(response=answer, source_nodes=nodes, metadata=self._metadata(docs))

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        nodes = await self.aretrieve(query_bundle)
        docs = [_as_document(n) for n in nodes]
        messages = self._messages(query_bundle.query_str, docs)
        if self._streaming:
            stream = await self._llm.astream_chat(messages)

            async def pieces() -> AsyncGenerator[str, None]:
                async for chunk in stream:
                    if chunk.delta:
                        yield chunk.delta

            return AsyncStreamingResponse(
                response_gen=pieces(), source_nodes=nodes, metadata=self._metadata(docs)
            )
        answer = (await self._llm.achat(messages)).message.content or ""
        return Response(response=answer, source_nodes=nodes, metadata=self._metadata(docs))


def create_query_engine(
    store: TiDBVectorStore | VectorStoreIndex | BaseRetriever,
    llm: LLM | None = None,
    *,
    embed_model: BaseEmbedding | None = None,
    similarity_top_k: int = 4,
    filters: MetadataFilters | None = None,
    vector_store_query_mode: str = "default",
    mmr_threshold: float | None = None,
    streaming: bool = False,
    prompt: BasePromptTemplate | LangChainPrompt | None = None,
    node_postprocessors: Sequence[BaseNodePostprocessor] | None = None,
) -> TiDBQueryEngine:
    """Build a grounded, citing query engine over a TiDB store (``create_rag_chain``'s twin).

    Args:
        store: The LlamaIndex :class:`TiDBVectorStore`, a ``VectorStoreIndex`` over it, or any
            retriever (used as given: the retrieval arguments below are then not used).
        llm: Any LlamaIndex LLM; default Llama 3 on Bedrock (:func:`create_llama3_llm`).
        embed_model: Embeds the questions (a store only); default
            :class:`BedrockTitanEmbedding` (1024 dimensions: pass one matching the table).
        similarity_top_k: Passages per question.
        filters: LlamaIndex metadata filters for every question.
        vector_store_query_mode: ``"default"`` or ``"mmr"``.
        mmr_threshold: MMR's relevance/diversity balance (1 = relevance only).
        streaming: Return streaming responses (``response_gen``, ``print_response_stream``).
        prompt: Answer prompt (see :class:`TiDBQueryEngine`); default the LangChain chain's.
        node_postprocessors: Applied to the retrieved nodes before the answer.

    Returns:
        The query engine: ``query``/``aquery`` return the answer with ``source_nodes``.

    Raises:
        TypeError: ``store`` is none of the accepted kinds.
        BedrockConfigError: A default model is needed and AWS is not configured.
    """
    if isinstance(store, BaseRetriever):
        retriever = store
    else:
        if isinstance(store, TiDBVectorStore):
            if embed_model is None:
                from langchain_tidb_bedrock.llama_index.embeddings import BedrockTitanEmbedding

                embed_model = BedrockTitanEmbedding()
            index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
        elif isinstance(store, VectorStoreIndex):
            index = store
        else:
            msg = (
                "expected a TiDBVectorStore, a VectorStoreIndex or a retriever, "
                f"got {type(store).__name__}"
            )
            raise TypeError(msg)
        store_kwargs = {"mmr_threshold": mmr_threshold} if mmr_threshold is not None else {}
        retriever = index.as_retriever(
            similarity_top_k=similarity_top_k,
            filters=filters,
            vector_store_query_mode=vector_store_query_mode,
            vector_store_kwargs=store_kwargs,
        )
    if llm is None:
        from langchain_tidb_bedrock.llama_index.llms import create_llama3_llm

        llm = create_llama3_llm()
    return TiDBQueryEngine(
        retriever,
        llm,
        prompt=prompt,
        streaming=streaming,
        node_postprocessors=node_postprocessors,
    )
