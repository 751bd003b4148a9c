"""Add TiDB to an existing LangChain app, with incremental re-ingestion via ``index()``.

The "existing app" below already has a document loader and an LCEL answer chain built around a
retriever. Moving it to TiDB means constructing ``TiDBVectorStore`` and keeping everything else.
Re-ingestion goes through LangChain's ``index()`` with a record manager, so unchanged documents
are skipped (no embedding calls), edited ones replaced and their old versions deleted.

The records live in TiDB too (``TiDBRecordManager``, on the store's engine), so another process
or a later run skips what is already indexed. (langchain-classic's ``SQLRecordManager`` refuses
MySQL/TiDB.) To print the same lines on every run, this demo first empties both tables.

    python examples/existing_app.py
"""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.indexing import index
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnablePassthrough

from langchain_tidb_bedrock import (
    BedrockTitanEmbeddings,
    TiDBRecordManager,
    TiDBVectorStore,
    create_llama3_chat,
)

TABLE = "tidb_bedrock_existing_app"


# ---- the existing app: its loader, prompt and chain (unchanged by the move to TiDB) ----------


def load_handbook(edition: int) -> list[Document]:
    """The app's loader: a few handbook pages (edition 2 edits the on-call page)."""
    pages = {
        "handbook/deploys.md": "Deploys go out on Tuesdays and Thursdays after release review.",
        "handbook/oncall.md": "The on-call engineer answers pages within 15 minutes.",
        "handbook/database.md": "Our product database is TiDB, a MySQL compatible SQL database.",
        "handbook/search.md": "Semantic search uses TiDB Vector Search with Titan embeddings.",
    }
    if edition >= 2:
        pages["handbook/oncall.md"] = (
            "The on-call engineer answers pages within 5 minutes, day and night."
        )
    return [Document(page_content=text, metadata={"source": src}) for src, text in pages.items()]


PROMPT = ChatPromptTemplate.from_template(
    "Answer from the handbook excerpts only and cite them like [1]; if they don't say, "
    "say you don't know.\n\nExcerpts:\n{context}\n\nQuestion: {question}\n\nAnswer:"
)


def build_app_chain(retriever: BaseRetriever, llm: BaseChatModel) -> Runnable[str, str]:
    def numbered(docs: list[Document]) -> str:
        return "\n".join(f"[{n}] {d.page_content}" for n, d in enumerate(docs, start=1))

    return (
        {"context": retriever | numbered, "question": RunnablePassthrough()}
        | PROMPT
        | llm
        | StrOutputParser()
    )


# ---- the move to TiDB -------------------------------------------------------------------------


def main() -> None:
    # TiDB and Bedrock come from the environment (TIDB_*, AWS_*), else local stand-ins.
    embeddings = BedrockTitanEmbeddings()
    store = TiDBVectorStore(embeddings, table_name=TABLE)
    llm = create_llama3_chat()
    try:
        record_manager = TiDBRecordManager(
            f"tidb/{TABLE}", engine=store.tidb_engine, table_name=f"{TABLE}_records"
        )
        record_manager.create_schema()
        # A fresh start for the demo (see the module docstring); a real app keeps both.
        store.clear()
        record_manager.delete_keys(record_manager.list_keys())

        def reindex(edition: int) -> None:
            before = embeddings.usage["requests"]
            result = index(
                load_handbook(edition),
                record_manager,
                store,
                cleanup="incremental",
                source_id_key="source",
                key_encoder="sha256",
            )
            calls = embeddings.usage["requests"] - before
            print(
                f"edition {edition}: added {result['num_added']}, updated {result['num_updated']}, "
                f"skipped {result['num_skipped']}, deleted {result['num_deleted']} "
                f"({calls} embedding calls); {store.count()} documents in {store.table_name}"
            )

        reindex(1)  # first run: everything is embedded
        reindex(1)  # second run, nothing changed: everything is skipped, no embedding calls
        reindex(2)  # one page edited: only it is embedded; its old version is deleted

        chain = build_app_chain(store.as_retriever(search_kwargs={"k": 2}), llm)
        question = "How fast does the on-call engineer answer pages?"
        print(f"\nQ: {question}\nA: {chain.invoke(question)}")
    finally:
        store.close()
        embeddings.close()


if __name__ == "__main__":
    main()
