"""Use the TiDB retriever and the Llama 3 chat model inside your own LCEL chain.

The package's ``create_rag_chain`` is optional: the store is a standard LangChain VectorStore and
the chat model a standard ``ChatBedrockConverse``, so they compose with any prompt, parallel
step and output parser. Here: a custom prompt, ``RunnableParallel`` fetching passages while the
question passes through, ``StrOutputParser`` and a small parser that maps citations to sources.

    python examples/lcel_composition.py
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough

from langchain_tidb_bedrock import BedrockTitanEmbeddings, TiDBVectorStore, create_llama3_chat
from langchain_tidb_bedrock.ingest import chunk_id

NOTES = {
    "architecture.md": "TiDB separates compute from storage: TiDB servers are stateless SQL "
    "nodes, TiKV stores rows and TiFlash stores columns for analytics.",
    "vector.md": "TiDB Vector Search stores embeddings in VECTOR columns. An HNSW vector "
    "index speeds up nearest-neighbour queries that order by VEC_COSINE_DISTANCE.",
    "bedrock.md": "Amazon Bedrock serves Meta Llama 3 chat models through the Converse API and "
    "Amazon Titan embedding models through InvokeModel.",
    "pricing.md": "TiDB Serverless has a free tier and then charges for request units and storage.",
}

# Your prompt, your rules: the passages are numbered so the model can cite them.
PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You answer questions for an internal TiDB wiki. Use only the passages; cite each "
            "statement with its passage number like [1]. If the passages are not enough, say "
            "you don't know.",
        ),
        ("human", "Passages:\n{passages}\n\nQuestion: {question}\n\nAnswer:"),
    ]
)


def number_passages(docs: list[Document]) -> str:
    return "\n".join(f"[{n}] {doc.page_content}" for n, doc in enumerate(docs, start=1)) or "(none)"


def cited_sources(result: dict[str, Any]) -> dict[str, Any]:
    """Output parser step: the sources of the passages the answer actually cites."""
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", result["answer"])})
    docs = result["docs"]
    sources = [docs[n - 1].metadata["source"] for n in cited if 0 < n <= len(docs)]
    return {"question": result["question"], "answer": result["answer"], "sources": sources}


def main() -> None:
    # TiDB and Bedrock come from the environment (TIDB_*, AWS_*), else local stand-ins.
    embeddings = BedrockTitanEmbeddings()
    store = TiDBVectorStore(embeddings, table_name="tidb_bedrock_lcel")
    llm = create_llama3_chat()
    try:
        docs = [
            Document(
                id=chunk_id(src, text), page_content=text, metadata={"source": src, "chunk": 0}
            )
            for src, text in NOTES.items()
        ]
        present = store.get_metadata([doc.id for doc in docs if doc.id])  # no texts read
        new = [doc for doc in docs if doc.id not in present]
        if new:
            store.add_documents(new)
        retriever = store.as_retriever(search_kwargs={"k": 2})

        answer = (
            RunnablePassthrough.assign(passages=lambda x: number_passages(x["docs"]))
            | PROMPT
            | llm
            | StrOutputParser()
        )
        chain = (
            RunnableParallel(docs=retriever, question=RunnablePassthrough())
            | RunnablePassthrough.assign(answer=answer)
            | RunnableLambda(cited_sources)
        )

        questions = [
            "Which index speeds up vector queries in TiDB?",
            "Which models does Amazon Bedrock serve?",
        ]
        for result in chain.batch(questions):
            cited = ", ".join(result["sources"]) or "nothing"
            print(f"Q: {result['question']}\nA: {result['answer']}\n   cited: {cited}\n")

        print("Streaming the plain answer chain:")
        streamed = RunnableParallel(docs=retriever, question=RunnablePassthrough()) | answer
        for piece in streamed.stream("Where does TiDB store columns for analytics?"):
            print(piece, end="", flush=True)
        print()
    finally:
        store.close()
        embeddings.close()


if __name__ == "__main__":
    main()
