"""create_rag_chain against a real local TiDB and LocalBedrock (Titan + Llama 3 stand-ins)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever

from langchain_tidb_bedrock.chains.prompts import NO_CONTEXT
from langchain_tidb_bedrock.chains.rag import configure_retriever, create_rag_chain
from langchain_tidb_bedrock.chat_models import llama as chat_llama
from langchain_tidb_bedrock.chat_models.llama import DEFAULT_LLM_MODEL_ID, create_llama3_chat
from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings
from langchain_tidb_bedrock.local.bedrock import LocalBedrock, RecordedRequest
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

CORPUS = {
    "tidb.md": [
        "TiDB is an open-source distributed SQL database that supports HTAP workloads.",
        "TiDB is MySQL compatible and scales horizontally with strong consistency.",
    ],
    "vector.md": [
        "TiDB Vector Search stores embeddings in VECTOR columns and ranks them with "
        "VEC_COSINE_DISTANCE.",
    ],
    "bedrock.md": [
        "Amazon Bedrock offers foundation models such as Meta Llama 3 and Amazon Titan "
        "through a single API.",
    ],
    "paris.md": ["Paris is the capital of France and home of the Eiffel Tower."],
}
N_DOCS = sum(len(v) for v in CORPUS.values())
CITATION = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="module")
def store(tidb_url: str, local_bedrock: LocalBedrock) -> Iterator[TiDBVectorStore]:
    embeddings = BedrockTitanEmbeddings(dimensions=512, endpoint_url=local_bedrock.endpoint_url)
    vs = TiDBVectorStore(
        embeddings, connection_string=tidb_url, table_name=f"rag_{uuid.uuid4().hex[:12]}"
    )
    texts, metas = [], []
    for source, facts in CORPUS.items():
        for n, fact in enumerate(facts):
            texts.append(fact)
            metas.append({"source": source, "chunk": n})
    vs.add_texts(texts, metas)
    yield vs
    vs.drop_table()
    vs.close()
    embeddings.close()


@pytest.fixture
def llm(bedrock: LocalBedrock) -> Any:
    return create_llama3_chat(endpoint_url=bedrock.endpoint_url)


def _converse(bedrock: LocalBedrock) -> list[RecordedRequest]:
    return [r for r in bedrock.requests if r.op in ("Converse", "ConverseStream")]


def _titan_inputs(bedrock: LocalBedrock) -> list[str]:
    return [r.body["inputText"] for r in bedrock.requests if r.op == "InvokeModel"]


def _prompt_text(request: RecordedRequest) -> str:
    system = "\n".join(b["text"] for b in request.body.get("system") or [])
    users = [b["text"] for m in request.body["messages"] for b in m["content"] if "text" in b]
    return "\n\n".join([system, *users] if system else users)


def _assert_grounded(result: dict[str, Any]) -> None:
    cited = [int(n) for n in CITATION.findall(result["answer"])]
    assert cited, result["answer"]
    assert all(1 <= n <= len(result["context"]) for n in cited), result
    # Each cited sentence is really in the passage it cites (extractive stand-in).
    body = result["answer"].removeprefix("(LocalBedrock stand-in) ")
    for sentence, n in re.findall(r"(.+?) \[(\d+)\]\s*", body):
        assert sentence.strip() in result["context"][int(n) - 1].page_content


QUESTIONS = [
    "What is TiDB?",
    "Which function ranks embeddings in TiDB Vector Search?",
    "Which foundation models does Amazon Bedrock offer?",
    "What is the capital of France?",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_answer_cites_only_retrieved_passages(
    store: TiDBVectorStore, llm: Any, bedrock: LocalBedrock, question: str
) -> None:
    chain = create_rag_chain(store, llm, k=2)
    result = chain.invoke(question)
    assert set(result) == {"question", "standalone_question", "context", "answer"}
    assert result["question"] == result["standalone_question"] == question
    assert len(result["context"]) == 2
    assert all(isinstance(d, Document) and d.id for d in result["context"])
    _assert_grounded(result)
    # The model saw exactly the retrieved passages, numbered, with their sources.
    (request,) = _converse(bedrock)
    prompt = _prompt_text(request)
    for n, doc in enumerate(result["context"], start=1):
        assert f"[{n}] {doc.page_content}" in prompt
        assert f"(source: {doc.metadata['source']}, chunk {doc.metadata['chunk']})" in prompt
    assert prompt.rstrip().endswith(f"Question: {question}\n\nAnswer:")
    assert _titan_inputs(bedrock) == [question]


def test_configurable_k_changes_retrieval(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm)  # default k=4
    assert len(chain.invoke("What is TiDB?")["context"]) == 4
    one = chain.invoke("What is TiDB?", config={"configurable": {"k": 1}})
    three = chain.invoke("What is TiDB?", config={"configurable": {"k": 3}})
    assert len(one["context"]) == 1
    assert len(three["context"]) == 3
    assert one["context"][0] == three["context"][0]
    # The override is per call: the chain itself is unchanged.
    assert len(chain.invoke("What is TiDB?")["context"]) == 4
    assert len(chain.with_config(configurable={"k": 2}).invoke("What is TiDB?")["context"]) == 2


async def test_configurable_k_async(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm)
    one = await chain.ainvoke("What is TiDB?", config={"configurable": {"k": 1}})
    three = await chain.ainvoke("What is TiDB?", config={"configurable": {"k": 3}})
    assert (len(one["context"]), len(three["context"])) == (1, 3)


def test_configurable_filter_excludes_a_source(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm, k=3)
    plain = chain.invoke("What is TiDB?")
    assert "tidb.md" in {d.metadata["source"] for d in plain["context"]}
    flt = {"source": {"$ne": "tidb.md"}}
    filtered = chain.invoke("What is TiDB?", config={"configurable": {"filter": flt}})
    assert filtered["context"]
    assert "tidb.md" not in {d.metadata["source"] for d in filtered["context"]}
    only = chain.invoke(
        "What is TiDB?", config={"configurable": {"filter": {"source": "bedrock.md"}, "k": 5}}
    )
    assert [d.metadata["source"] for d in only["context"]] == ["bedrock.md"]


async def test_configurable_filter_async(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm, k=3)
    flt = {"source": {"$in": ["paris.md", "bedrock.md"]}}
    result = await chain.ainvoke("What is TiDB?", config={"configurable": {"filter": flt}})
    assert {d.metadata["source"] for d in result["context"]} == {"paris.md", "bedrock.md"}


def test_filter_given_at_build_time(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm, k=4, search_kwargs={"filter": {"source": "vector.md"}})
    result = chain.invoke("What is TiDB?")
    assert [d.metadata["source"] for d in result["context"]] == ["vector.md"]


def test_configurable_search_type_mmr(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm, k=2)
    config: Any = {"configurable": {"search_type": "mmr", "fetch_k": N_DOCS, "lambda_mult": 0.0}}
    result = chain.invoke("TiDB database", config=config)
    assert len(result["context"]) == 2
    # lambda_mult=0 maximises diversity: the two picks come from different sources.
    assert len({d.metadata["source"] for d in result["context"]}) == 2
    retriever = store.as_retriever(search_kwargs={"k": 2})
    tuned = configure_retriever(retriever, config)
    assert tuned.search_type == "mmr"  # type: ignore[attr-defined]
    assert tuned.search_kwargs == {"k": 2, "fetch_k": N_DOCS, "lambda_mult": 0.0}  # type: ignore[attr-defined]
    assert retriever.search_type == "similarity"  # the chain's own retriever is untouched
    with pytest.raises(ValueError, match="search_type"):
        chain.invoke("TiDB", config={"configurable": {"search_type": "nope"}})


def test_stream_context_first_then_answer_pieces(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm, k=2)
    chunks = list(chain.stream("Which foundation models does Amazon Bedrock offer?"))
    first, rest = chunks[0], chunks[1:]
    assert set(first) == {"question", "standalone_question", "context"}
    assert len(first["context"]) == 2
    assert all(set(c) == {"answer"} for c in rest)
    pieces = [c["answer"] for c in rest if c["answer"]]
    assert len(pieces) >= 5
    answer = "".join(pieces)
    assert answer == chain.invoke("Which foundation models does Amazon Bedrock offer?")["answer"]
    assert "Amazon Bedrock" in answer


async def test_astream_context_first_then_answer_pieces(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm, k=2)
    chunks = [c async for c in chain.astream("What is the capital of France?")]
    assert "context" in chunks[0]
    assert "answer" not in chunks[0]
    pieces = [c["answer"] for c in chunks[1:] if c.get("answer")]
    assert len(pieces) >= 5
    assert "Paris" in "".join(pieces)


def test_no_context_answer_says_dont_know(
    store: TiDBVectorStore, llm: Any, bedrock: LocalBedrock
) -> None:
    chain = create_rag_chain(store, llm)
    result = chain.invoke(
        "What is TiDB?", config={"configurable": {"filter": {"source": "missing.md"}}}
    )
    assert result["context"] == []
    assert result["answer"] == "(LocalBedrock stand-in) I don't know based on the provided context."
    # The model was still asked, with an explicit empty context.
    (request,) = _converse(bedrock)
    assert NO_CONTEXT in _prompt_text(request)


def test_unrelated_question_gets_dont_know(store: TiDBVectorStore, llm: Any) -> None:
    result = create_rag_chain(store, llm, k=2).invoke("Who painted the Mona Lisa?")
    assert "I don't know" in result["answer"]
    assert not CITATION.search(result["answer"])


@pytest.mark.parametrize(
    "history",
    [
        [("human", "Tell me about TiDB Vector Search"), ("ai", "It stores embeddings [1].")],
        [HumanMessage("Tell me about TiDB Vector Search"), AIMessage("It stores embeddings [1].")],
    ],
)
def test_history_rewrites_the_question_for_retrieval(
    store: TiDBVectorStore, llm: Any, bedrock: LocalBedrock, history: list[Any]
) -> None:
    follow_up = "Which function does it rank them with?"
    chain = create_rag_chain(store, llm, k=2)
    result = chain.invoke({"question": follow_up, "chat_history": history})
    assert result["question"] == follow_up
    standalone = result["standalone_question"]
    assert standalone != follow_up
    assert "Vector" in standalone
    assert "Search" in standalone
    # 1st model call rewrites, 2nd answers the standalone question.
    rewrite, answer = _converse(bedrock)
    rewrite_prompt = _prompt_text(rewrite)
    assert "Chat history:\nHuman: Tell me about TiDB Vector Search\nAI:" in rewrite_prompt
    assert f"Follow-up question: {follow_up}" in rewrite_prompt
    assert f"Question: {standalone}" in _prompt_text(answer)
    # Retrieval embedded the standalone question, not the bare follow-up.
    assert _titan_inputs(bedrock) == [standalone]
    assert result["context"][0].metadata["source"] == "vector.md"
    _assert_grounded(result)
    assert "VEC_COSINE_DISTANCE" in result["answer"]


def test_without_history_no_rewrite_call(
    store: TiDBVectorStore, llm: Any, bedrock: LocalBedrock
) -> None:
    create_rag_chain(store, llm).invoke({"question": "What is TiDB?", "chat_history": []})
    assert len(_converse(bedrock)) == 1


def test_batch(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm, k=2)
    results = chain.batch(QUESTIONS[:3])
    assert [r["question"] for r in results] == QUESTIONS[:3]
    for r in results:
        _assert_grounded(r)
    per_call = chain.batch(
        ["What is TiDB?", "What is TiDB?"],
        config=[{"configurable": {"k": 1}}, {"configurable": {"k": 3}}],
    )
    assert [len(r["context"]) for r in per_call] == [1, 3]


async def test_async_invoke_and_batch(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm, k=2)
    single = await chain.ainvoke("What is the capital of France?")
    _assert_grounded(single)
    assert "Paris" in single["answer"]
    results = await chain.abatch(QUESTIONS)
    assert [r["question"] for r in results] == QUESTIONS
    assert [r["answer"] for r in results] == [chain.invoke(q)["answer"] for q in QUESTIONS]
    history = {
        "question": "Which function does it rank them with?",
        "chat_history": [("human", "Tell me about TiDB Vector Search")],
    }
    rewritten = await chain.ainvoke(history)
    assert "Vector" in rewritten["standalone_question"]


def test_other_chat_models_work(store: TiDBVectorStore, bedrock: LocalBedrock) -> None:
    generic = GenericFakeChatModel(messages=iter(["TiDB is a distributed SQL database [1]."]))
    result = create_rag_chain(store, generic, k=2).invoke("What is TiDB?")
    assert result["answer"] == "TiDB is a distributed SQL database [1]."
    assert len(result["context"]) == 2
    streamed = create_rag_chain(
        store, GenericFakeChatModel(messages=iter(["It is a database [1]."])), k=1
    ).stream("What is TiDB?")
    assert len([c for c in streamed if c.get("answer")]) > 1
    fake_list = FakeListChatModel(responses=["What is TiDB Vector Search?", "It ranks [1]."])
    chained = create_rag_chain(store, fake_list, k=1).invoke(
        {"question": "and that?", "chat_history": [("human", "hi"), ("ai", "hello")]}
    )
    assert chained["standalone_question"] == "What is TiDB Vector Search?"
    assert chained["answer"] == "It ranks [1]."
    assert _converse(bedrock) == []  # no Bedrock model involved


def test_default_llm_is_llama3_on_bedrock(
    store: TiDBVectorStore, bedrock: LocalBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_factory(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return create_llama3_chat(*args, endpoint_url=bedrock.endpoint_url, **kwargs)

    monkeypatch.setattr(chat_llama, "create_llama3_chat", fake_factory)
    result = create_rag_chain(store, k=2).invoke("What is TiDB?")
    assert calls == [{}]
    (request,) = _converse(bedrock)
    assert request.model_id == DEFAULT_LLM_MODEL_ID
    _assert_grounded(result)


def test_custom_prompts(store: TiDBVectorStore, llm: Any, bedrock: LocalBedrock) -> None:
    prompt = ChatPromptTemplate.from_template(
        "Custom rules.\nPassages:\n{context}\n\nQuestion: {question}\n\nAnswer:"
    )
    condense = ChatPromptTemplate.from_template(
        "My rewrite.\nChat history:\n{chat_history}\n\nFollow-up question: {question}\n\n"
        "Standalone question:"
    )
    chain = create_rag_chain(store, llm, prompt=prompt, condense_prompt=condense, k=1)
    chain.invoke({"question": "what about it?", "chat_history": [("human", "TiDB Vector Search")]})
    rewrite, answer = _converse(bedrock)
    assert _prompt_text(rewrite).startswith("My rewrite.")
    assert _prompt_text(answer).startswith("Custom rules.")


class _FixedRetriever(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self.docs


def test_any_retriever_and_override_rules(llm: Any, caplog: pytest.LogCaptureFixture) -> None:
    docs = [Document(page_content="Titan embeds text into vectors.", metadata={"source": "t"})]
    chain = create_rag_chain(_FixedRetriever(docs=docs), llm)
    result = chain.invoke("What does Titan embed?")
    assert result["context"] == docs
    _assert_grounded(result)
    # k cannot apply to a plain retriever: ignored with a warning.
    ignored = chain.invoke("What does Titan embed?", config={"configurable": {"k": 1}})
    assert ignored["context"] == docs
    assert "ignoring retrieval overrides" in caplog.text
    # A filter that cannot be applied is an error, never silently dropped.
    with pytest.raises(ValueError, match="filter"):
        chain.invoke("What does Titan embed?", config={"configurable": {"filter": {"a": 1}}})


def test_bad_inputs(store: TiDBVectorStore, llm: Any) -> None:
    chain = create_rag_chain(store, llm)
    with pytest.raises(ValueError, match="non-empty"):
        chain.invoke("   ")
    with pytest.raises(TypeError, match="question string"):
        chain.invoke(42)
    with pytest.raises(TypeError, match="VectorStore or a BaseRetriever"):
        create_rag_chain("not a store", llm)  # type: ignore[arg-type]
