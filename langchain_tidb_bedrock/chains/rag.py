"""A retrieval-augmented generation chain over a TiDB vector store (or any retriever).

``create_rag_chain`` returns one LCEL runnable: optional question rewriting (when there is chat
history), retrieval, an optional rerank (fetch more, rerank, keep ``k``), then a grounded,
citing answer. Retrieval and rerank settings can be overridden per call through
``config["configurable"]`` without rebuilding the chain.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import BasePromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableGenerator,
    RunnableLambda,
    RunnablePassthrough,
    RunnablePick,
)
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever

from langchain_tidb_bedrock.chains._stream import retrying_stream
from langchain_tidb_bedrock.chains.prompts import (
    CONDENSE_QUESTION_PROMPT,
    RAG_PROMPT,
    format_chat_history,
    format_docs,
    to_messages,
)

__all__ = [
    "DEFAULT_RERANK_FETCH_K",
    "OUTPUT_KEYS",
    "RERANK_OVERRIDES",
    "SEARCH_OVERRIDES",
    "configure_retriever",
    "create_rag_chain",
]

logger = logging.getLogger(__name__)

OUTPUT_KEYS = ("question", "standalone_question", "context", "answer")
"""Keys of the chain's output dict (streamed in this order: the first three, then answer)."""

SEARCH_OVERRIDES = ("k", "filter", "fetch_k", "lambda_mult", "score_threshold")
"""``configurable`` keys that override the retriever's ``search_kwargs`` for one call (together
with ``search_type`` and a ``search_kwargs`` dict)."""

RERANK_OVERRIDES = ("rerank", "rerank_fetch_k")
"""``configurable`` keys of the rerank stage: ``rerank`` (False or None skips it for the call,
True uses the chain's reranker, a model id string uses that Bedrock rerank model) and
``rerank_fetch_k`` (documents fetched for the reranker to choose ``k`` from)."""

DEFAULT_RERANK_FETCH_K = 20
"""Documents fetched per question for the reranker when ``rerank_fetch_k`` is not given."""


def _to_retriever(
    source: VectorStore | BaseRetriever,
    k: int,
    search_type: str,
    search_kwargs: Mapping[str, Any] | None,
) -> BaseRetriever:
    if isinstance(source, BaseRetriever):
        return source
    if isinstance(source, VectorStore):
        return source.as_retriever(
            search_type=search_type, search_kwargs={"k": k, **(search_kwargs or {})}
        )
    msg = f"expected a VectorStore or a BaseRetriever, got {type(source).__name__}"
    raise TypeError(msg)


def configure_retriever(retriever: BaseRetriever, config: RunnableConfig | None) -> BaseRetriever:
    """Apply per-call retrieval overrides from ``config["configurable"]``.

    Args:
        retriever: The chain's retriever.
        config: The call's config; keys ``k``, ``filter``, ``fetch_k``, ``lambda_mult``,
            ``score_threshold``, ``search_type`` and ``search_kwargs`` (a dict) are read.

    Returns:
        A copy of a ``VectorStoreRetriever`` with the overrides, or ``retriever`` unchanged.

    Raises:
        ValueError: An unknown ``search_type``, ``similarity_score_threshold`` without a
            threshold, or a ``filter`` for a retriever that is not a ``VectorStoreRetriever``
            (ignoring it would widen what is retrieved).
    """
    conf = (config or {}).get("configurable") or {}
    overrides: dict[str, Any] = dict(conf.get("search_kwargs") or {})
    overrides.update({key: conf[key] for key in SEARCH_OVERRIDES if key in conf})
    # None means "not set" for the numeric knobs; for filter it means "no filter".
    overrides = {k: v for k, v in overrides.items() if v is not None or k == "filter"}
    search_type = conf.get("search_type")
    if not overrides and not search_type:
        return retriever
    if not isinstance(retriever, VectorStoreRetriever):
        if overrides.get("filter") is not None:
            msg = (
                f"a 'filter' override needs a VectorStoreRetriever; {type(retriever).__name__} "
                "cannot apply it"
            )
            raise ValueError(msg)
        logger.warning(
            "ignoring retrieval overrides %s: %s is not a VectorStoreRetriever",
            sorted([*overrides, *(["search_type"] if search_type else [])]),
            type(retriever).__name__,
        )
        return retriever
    search_type = search_type or retriever.search_type
    if search_type not in retriever.allowed_search_types:
        msg = (
            f"search_type {search_type!r} is not allowed; use one of "
            f"{tuple(retriever.allowed_search_types)}"
        )
        raise ValueError(msg)
    kwargs = {**retriever.search_kwargs, **overrides}
    if search_type == "similarity_score_threshold" and kwargs.get("score_threshold") is None:
        msg = "search_type 'similarity_score_threshold' needs a score_threshold"
        raise ValueError(msg)
    if search_type != "similarity_score_threshold":
        kwargs.pop("score_threshold", None)
    if search_type != "mmr":
        kwargs.pop("fetch_k", None)
        kwargs.pop("lambda_mult", None)
    return retriever.model_copy(update={"search_type": search_type, "search_kwargs": kwargs})


def _read_input(value: Any) -> dict[str, Any]:
    question: Any
    history: Any
    if isinstance(value, str):
        question, history = value, None
    elif isinstance(value, Mapping):
        question, history = value.get("question"), value.get("chat_history")
    else:
        msg = (
            "the RAG chain takes a question string or {'question': str, 'chat_history': [...]}, "
            f"got {type(value).__name__}"
        )
        raise TypeError(msg)
    if not isinstance(question, str) or not question.strip():
        msg = "the question must be a non-empty string"
        raise ValueError(msg)
    return {"question": question, "chat_history": to_messages(history)}


async def _aread_input(value: Any) -> dict[str, Any]:
    return _read_input(value)


def _standalone(rewritten: str, fallback: str) -> str:
    # Models sometimes echo the label or wrap the question in quotes; keep the first line.
    for line in rewritten.strip().splitlines():
        text = line.strip()
        if text.lower().startswith("standalone question:"):
            text = text[len("standalone question:") :].strip()
        text = text.strip("\"'` ")
        if text:
            return text
    return fallback


def _is_empty_answer(chunk: Mapping[str, Any]) -> bool:
    return set(chunk) == {"answer"} and not chunk["answer"]


def _drop_empty_answers(chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Leave out the stream's ``{"answer": ""}`` chunks (a model's message start, say).

    One is kept only when the answer is empty altogether, so ``answer`` is always there.
    """
    held, answered = None, False
    for chunk in chunks:
        if _is_empty_answer(chunk):
            held = chunk
            continue
        answered = answered or "answer" in chunk
        yield chunk
    if held is not None and not answered:
        yield held


async def _adrop_empty_answers(
    chunks: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    """Async :func:`_drop_empty_answers`."""
    held, answered = None, False
    async for chunk in chunks:
        if _is_empty_answer(chunk):
            held = chunk
            continue
        answered = answered or "answer" in chunk
        yield chunk
    if held is not None and not answered:
        yield held


def _answer_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"context": format_docs(inputs["context"]), "question": inputs["standalone_question"]}


class _Rerank:
    """The rerank stage: which compressor a call uses, how many to fetch, how many to keep."""

    def __init__(self, reranker: BaseDocumentCompressor | str | None, fetch_k: int, k: int) -> None:
        if fetch_k < 1:
            msg = f"rerank_fetch_k must be at least 1, got {fetch_k}"
            raise ValueError(msg)
        self.default: BaseDocumentCompressor | None = (
            self._by_id(reranker) if isinstance(reranker, str) else reranker
        )
        if self.default is not None and not isinstance(self.default, BaseDocumentCompressor):
            msg = f"rerank must be a model id or a BaseDocumentCompressor, got {type(reranker)}"
            raise TypeError(msg)
        self.fetch_k, self.k = fetch_k, k
        self._by_model: dict[str, BaseDocumentCompressor] = {}

    def _by_id(self, model_id: str) -> BaseDocumentCompressor:
        from langchain_tidb_bedrock.document_compressors.rerank import BedrockReranker

        base = getattr(self, "default", None)
        if isinstance(base, BedrockReranker):  # same client settings, another model
            settings = base.model_dump(exclude={"client", "runtime_client"}, by_alias=False)
            return BedrockReranker(**{**settings, "model_id": model_id})
        return BedrockReranker(model_id=model_id)

    def active(self, config: RunnableConfig | None) -> BaseDocumentCompressor | None:
        """The compressor this call uses (None: no rerank)."""
        choice = ((config or {}).get("configurable") or {}).get("rerank", True)
        if choice is None or choice is False:
            return None
        if choice is True:
            return self.default
        if not isinstance(choice, str) or not choice.strip():
            msg = f"configurable 'rerank' must be a bool, None or a model id, got {choice!r}"
            raise ValueError(msg)
        if choice not in self._by_model:
            self._by_model[choice] = self._by_id(choice)
        return self._by_model[choice]

    def keep(self, retriever: BaseRetriever, config: RunnableConfig | None) -> int:
        """The ``k`` of this call: what the answer gets after the rerank."""
        if isinstance(retriever, VectorStoreRetriever):
            active = configure_retriever(retriever, config)
            if isinstance(active, VectorStoreRetriever):
                return int(active.search_kwargs.get("k", self.k))
        conf = (config or {}).get("configurable") or {}
        return int(conf.get("k") or self.k)

    def fetch_config(
        self, config: RunnableConfig, keep: int, retriever: VectorStoreRetriever
    ) -> RunnableConfig:
        """``config`` with ``k`` raised to the number of documents fetched for the reranker."""
        conf = dict(config.get("configurable") or {})
        fetch = conf.get("rerank_fetch_k")
        fetch = self.fetch_k if fetch is None else fetch
        if isinstance(fetch, bool) or not isinstance(fetch, int) or fetch < 1:
            msg = f"configurable 'rerank_fetch_k' must be a positive integer, got {fetch!r}"
            raise ValueError(msg)
        fetch = max(fetch, keep)
        conf["k"] = fetch
        # MMR picks k out of fetch_k: it must fetch at least as many (dropped for other types).
        fetch_k = conf.get("fetch_k") or retriever.search_kwargs.get("fetch_k") or 0
        conf["fetch_k"] = max(int(fetch_k), fetch)
        return {**config, "configurable": conf}


def _rerank_args(reranker: BaseDocumentCompressor, keep: int) -> tuple[dict[str, Any], int | None]:
    # A BedrockReranker asks the service for exactly `keep` results; others are cut after.
    from langchain_tidb_bedrock.document_compressors.rerank import BedrockReranker

    if isinstance(reranker, BedrockReranker):
        return {"top_n": keep}, None
    return {}, keep


def create_rag_chain(
    retriever_or_store: VectorStore | BaseRetriever,
    llm: Runnable[Any, Any] | None = None,
    *,
    prompt: BasePromptTemplate | None = None,
    k: int = 4,
    search_type: str = "similarity",
    search_kwargs: Mapping[str, Any] | None = None,
    condense_prompt: BasePromptTemplate | None = None,
    rerank: BaseDocumentCompressor | str | None = None,
    rerank_fetch_k: int = DEFAULT_RERANK_FETCH_K,
) -> Runnable[Any, dict[str, Any]]:
    """Build a grounded question-answering chain with citations.

    Input: a question string, or ``{"question": str, "chat_history": [...]}`` with history as
    LangChain messages or ``(role, text)`` tuples. With history, the model first rewrites the
    follow-up into a standalone question, which is what retrieval and the answer use.

    Output: ``{"question", "standalone_question", "context", "answer"}`` where ``question`` is
    the user's original question and ``context`` the retrieved documents, numbered ``[1]``... in
    the prompt. ``stream`` yields the first three keys in one chunk before any ``answer`` chunk.

    Per-call overrides (vector-store retrievers only; no rebuild):
    ``config={"configurable": {"k": 2, "filter": {...}, "search_type": "mmr"}}``
    (also ``fetch_k``, ``lambda_mult``, ``score_threshold``, ``search_kwargs``).

    Rerank: with ``rerank``, each question fetches ``rerank_fetch_k`` documents (at least ``k``),
    the reranker scores them against the (standalone) question in one request, and the ``k``
    best go to the answer, each with ``metadata["relevance_score"]``. Per call:
    ``{"configurable": {"rerank": False}}`` skips it, ``{"rerank": "cohere.rerank-v3-5:0"}``
    uses another Bedrock rerank model, ``{"rerank_fetch_k": 50}`` fetches more.

    Args:
        retriever_or_store: A vector store (its retriever is built from ``k``, ``search_type``
            and ``search_kwargs``) or any retriever, used as given.
        llm: Any chat model or LLM; defaults to Llama 3 on Bedrock (``create_llama3_chat()``).
        prompt: Answer prompt with ``context`` and ``question`` variables (default
            :data:`~langchain_tidb_bedrock.chains.prompts.RAG_PROMPT`).
        k: Documents to retrieve (vector stores only).
        search_type: ``"similarity"``, ``"mmr"`` or ``"similarity_score_threshold"``.
        search_kwargs: More retriever search arguments, e.g. ``{"filter": {...}}``.
        condense_prompt: Rewriting prompt with ``chat_history`` and ``question`` variables
            (default :data:`~langchain_tidb_bedrock.chains.prompts.CONDENSE_QUESTION_PROMPT`).
        rerank: A document compressor that ranks documents (e.g.
            :class:`~langchain_tidb_bedrock.document_compressors.BedrockReranker`), or a
            Bedrock rerank model id (``amazon.rerank-v1:0``, ``cohere.rerank-v3-5:0``) for a
            ``BedrockReranker`` with the default AWS settings; None: no rerank.
        rerank_fetch_k: Documents fetched per question for the reranker (default 20).

    Returns:
        The runnable (``invoke``, ``batch``, ``stream`` and their async twins).

    Raises:
        TypeError: ``retriever_or_store`` is neither a vector store nor a retriever, or
            ``rerank`` is neither a model id nor a document compressor.
        ValueError: ``rerank_fetch_k`` is below 1.
        BedrockConfigError: No ``llm`` was given (or ``rerank`` is a model id) and AWS is not
            configured.
    """
    retriever = _to_retriever(retriever_or_store, k, search_type, search_kwargs)
    reranking = _Rerank(rerank, rerank_fetch_k, k)
    if llm is None:
        from langchain_tidb_bedrock.chat_models.llama import create_llama3_chat

        llm = create_llama3_chat()
    condense_chain = (condense_prompt or CONDENSE_QUESTION_PROMPT) | llm | StrOutputParser()
    # A throttle before the first token is retried; after it, the error says what was streamed.
    answer_chain = retrying_stream(
        RunnableLambda(_answer_inputs).with_config(run_name="format_context")
        | (prompt or RAG_PROMPT)
        | llm
        | StrOutputParser(),
        llm,
    )

    def _condense_args(inputs: dict[str, Any]) -> dict[str, str]:
        return {
            "chat_history": format_chat_history(inputs["chat_history"]),
            "question": inputs["question"],
        }

    def condense(inputs: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        question = inputs["question"]
        if inputs["chat_history"]:
            question = _standalone(condense_chain.invoke(_condense_args(inputs), config), question)
        return {**inputs, "standalone_question": question}

    async def acondense(inputs: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        question = inputs["question"]
        if inputs["chat_history"]:
            rewritten = await condense_chain.ainvoke(_condense_args(inputs), config)
            question = _standalone(rewritten, question)
        return {**inputs, "standalone_question": question}

    def _search_config(config: RunnableConfig) -> RunnableConfig:
        # With a reranker, fetch more than k: the rerank step keeps k of them. (Only a vector
        # store's retriever can be asked for more; any other returns what it returns.)
        if not isinstance(retriever, VectorStoreRetriever) or reranking.active(config) is None:
            return config
        return reranking.fetch_config(config, reranking.keep(retriever, config), retriever)

    def retrieve(inputs: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        active = configure_retriever(retriever, _search_config(config))
        docs = active.invoke(inputs["standalone_question"], config)
        return {**inputs, "context": docs}

    async def aretrieve(inputs: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        active = configure_retriever(retriever, _search_config(config))
        docs = await active.ainvoke(inputs["standalone_question"], config)
        return {**inputs, "context": docs}

    def rerank_docs(inputs: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        reranker = reranking.active(config)
        if reranker is None or not inputs["context"]:
            return inputs
        kwargs, cut = _rerank_args(reranker, reranking.keep(retriever, config))
        docs: list[Document] = list(
            reranker.compress_documents(
                inputs["context"], inputs["standalone_question"], config.get("callbacks"), **kwargs
            )
        )
        return {**inputs, "context": docs[:cut]}

    async def arerank_docs(inputs: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        reranker = reranking.active(config)
        if reranker is None or not inputs["context"]:
            return inputs
        kwargs, cut = _rerank_args(reranker, reranking.keep(retriever, config))
        docs: list[Document] = list(
            await reranker.acompress_documents(
                inputs["context"], inputs["standalone_question"], config.get("callbacks"), **kwargs
            )
        )
        return {**inputs, "context": docs[:cut]}

    # The first four steps each emit one value, so a stream starts with one chunk holding the
    # question and the context; RunnablePassthrough.assign then streams the answer's pieces.
    chain = (
        RunnableLambda(_read_input, afunc=_aread_input).with_config(run_name="read_input")
        | RunnableLambda(condense, afunc=acondense).with_config(run_name="condense_question")
        | RunnableLambda(retrieve, afunc=aretrieve).with_config(run_name="retrieve")
        | RunnableLambda(rerank_docs, afunc=arerank_docs).with_config(run_name="rerank")
        | RunnablePassthrough.assign(answer=answer_chain)
        | RunnablePick(list(OUTPUT_KEYS))
        | RunnableGenerator(_drop_empty_answers, _adrop_empty_answers, name="drop_empty")
    )
    return chain.with_config(run_name="tidb_bedrock_rag")
