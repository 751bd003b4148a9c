"""LlamaIndex quickstart: the same TiDB + Amazon Bedrock RAG, built from LlamaIndex parts.

Five facts become LlamaIndex documents, ``VectorStoreIndex`` embeds them with Titan Text
Embeddings V2 (512 dimensions) into a TiDB table, a retriever finds the nearest with metadata
filters, and the prebuilt query engine answers with Llama 3, citing its sources, then streams an
answer. Node ids come from the documents, so re-running it replaces the same rows.

Needs the extra: ``pip install 'langchain-tidb-bedrock[llama-index]'``. With nothing configured
it works offline (a local tidb-server and LocalBedrock, a stand-in that extracts sentences, not
a model); set TIDB_URL (or TIDB_HOST...) and AWS credentials + AWS_REGION for the real services.

    python examples/llama_index_quickstart.py
"""

from __future__ import annotations

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

from langchain_tidb_bedrock.cli.services import open_runtime
from langchain_tidb_bedrock.llama_index import (
    BedrockTitanEmbedding,
    TiDBVectorStore,
    create_llama3_llm,
    create_query_engine,
)

TABLE = "tidb_bedrock_llama_index"
FACTS = {
    "tidb": "TiDB is an open-source distributed SQL database that supports Hybrid "
    "Transactional and Analytical Processing (HTAP) workloads.",
    "mysql": "TiDB is MySQL compatible and features horizontal scalability, strong "
    "consistency, and high availability.",
    "serverless": "TiDB Serverless is a fully managed, autoscaling deployment of TiDB that lets "
    "you start using TiDB instantly for free.",
    "vector": "TiDB Vector Search lets you store embeddings in a VECTOR column and search them "
    "with functions such as VEC_COSINE_DISTANCE.",
    "bedrock": "Amazon Bedrock is a fully managed service that offers a choice of foundation "
    "models, such as Meta Llama 3 and Amazon Titan, through a single API.",
}
QUESTION = "What is TiDB?"


def main() -> None:
    # open_runtime picks TiDB and Bedrock (real or local) and stops whatever it started; its
    # engine and Titan client serve the LlamaIndex parts too.
    with open_runtime(table=TABLE, dimensions=512) as (langchain_store, _, titan):
        store = TiDBVectorStore(TABLE, engine=langchain_store.tidb_engine)
        embed_model = BedrockTitanEmbedding(client=titan)
        llm = create_llama3_llm(endpoint_url=titan.endpoint_url, region_name=titan.region_name)

        documents = [
            Document(text=text, doc_id=f"fact-{key}", metadata={"source": f"{key}.md"})
            for key, text in FACTS.items()
        ]
        # Stable node ids (document id + chunk number): a re-run upserts the same rows.
        splitter = SentenceSplitter(id_func=lambda n, doc: f"{doc.doc_id}-{n}")
        index = VectorStoreIndex.from_documents(
            documents,
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=embed_model,
            transformations=[splitter],
        )
        print(
            f"{store.count()} nodes in {TABLE} ({titan.model_id}, {titan.dimensions} dimensions)."
        )

        print(f"\nNearest to {QUESTION!r} (cosine similarity, higher is closer):")
        for hit in index.as_retriever(similarity_top_k=3).retrieve(QUESTION):
            print(f"  {hit.score:.3f}  {hit.node.metadata['source']}")

        not_tidb = MetadataFilters(
            filters=[MetadataFilter(key="source", value="tidb", operator="text_match")],
            condition="not",
        )
        filtered = index.as_retriever(similarity_top_k=2, filters=not_tidb).retrieve(QUESTION)
        print(f"Without tidb*.md: {', '.join(h.node.metadata['source'] for h in filtered)}")

        engine = create_query_engine(index, llm=llm, similarity_top_k=3)
        response = engine.query(QUESTION)
        print(f"\nAnswer ({llm.model}):\n{response}")
        print("Sources:")
        for line in (response.metadata or {}).get("sources", []):
            print(f"  {line}")

        streaming = create_query_engine(index, llm=llm, similarity_top_k=2, streaming=True)
        print("\nStreamed: ", end="")
        for piece in streaming.query("Which service offers Meta Llama 3?").response_gen:
            print(piece, end="", flush=True)
        print()
        store.close()


if __name__ == "__main__":
    main()
