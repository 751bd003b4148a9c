"""Quickstart: the TiDB + Amazon Bedrock RAG tutorial, rebuilt on standard LangChain parts.

Five facts are embedded with Amazon Titan Text Embeddings V2 (512 dimensions, normalised) into a
TiDB vector table, the question is answered from the nearest facts by Llama 3 on Bedrock, and
the answer cites its sources. Re-running it does not duplicate anything (ids come from content).

Run it with nothing configured and it works offline: the library uses a local tidb-server and
LocalBedrock (a stand-in that extracts sentences, not a model), each announced on stderr. Set
TIDB_URL (or TIDB_HOST...) and AWS credentials + AWS_REGION to use the real services.

    python examples/quickstart.py
"""

from __future__ import annotations

from langchain_core.documents import Document

from langchain_tidb_bedrock import (
    BedrockTitanEmbeddings,
    TiDBVectorStore,
    create_llama3_chat,
    create_rag_chain,
)
from langchain_tidb_bedrock.chains.prompts import format_sources
from langchain_tidb_bedrock.ingest import chunk_id

SOURCE = "quickstart-facts"
FACTS = [
    "TiDB is an open-source distributed SQL database that supports Hybrid Transactional and "
    "Analytical Processing (HTAP) workloads.",
    "TiDB is MySQL compatible and features horizontal scalability, strong consistency, and "
    "high availability.",
    "TiDB Serverless is a fully managed, autoscaling deployment of TiDB that lets you start "
    "using TiDB instantly for free.",
    "TiDB Vector Search lets you store embeddings in a VECTOR column and search them with "
    "functions such as VEC_COSINE_DISTANCE.",
    "Amazon Bedrock is a fully managed service that offers a choice of foundation models, such "
    "as Meta Llama 3 and Amazon Titan, through a single API.",
]
QUESTION = "What is TiDB?"


def main() -> None:
    # TiDB and Bedrock come from the environment (TIDB_*, AWS_*), else local stand-ins.
    embeddings = BedrockTitanEmbeddings(dimensions=512)  # normalised unit vectors by default
    store = TiDBVectorStore(embeddings, table_name="tidb_bedrock_quickstart")
    llm = create_llama3_chat()
    try:
        docs = [
            Document(
                id=chunk_id(SOURCE, fact),  # ids from the content: re-running adds nothing
                page_content=fact,
                metadata={"source": SOURCE, "chunk": n},
            )
            for n, fact in enumerate(FACTS)
        ]
        # Which ids are stored already (ids and metadata only), so only new facts are embedded.
        present = store.get_metadata([doc.id for doc in docs if doc.id])
        new = [doc for doc in docs if doc.id not in present]
        if new:
            store.add_documents(new)
        print(
            f"Stored {len(docs)} facts in {store.table_name} with {embeddings.model_id} "
            f"({embeddings.dimensions} dimensions, normalised): {len(new)} embedded, "
            f"{len(present)} already there."
        )

        print(f"\nVector search for {QUESTION!r} (cosine distance, lower is closer):")
        for doc, distance in store.similarity_search_with_score(QUESTION, k=3):
            print(f"  {distance:.3f}  {doc.page_content}")

        chain = create_rag_chain(store, llm, k=3)
        result = chain.invoke(QUESTION)
        print(f"\nAnswer ({getattr(llm, 'model_id', type(llm).__name__)}):\n{result['answer']}")
        print("Sources:")
        for line in format_sources(result["context"]):
            print(f"  {line}")
    finally:
        store.close()
        embeddings.close()


if __name__ == "__main__":
    main()
