"""The public API is what the README documents."""

import langchain_tidb_bedrock

EXPECTED_ALL = {
    "BedrockConfigError",
    "BedrockEmbeddingError",
    "BedrockTitanEmbeddings",
    "CONDENSE_QUESTION_PROMPT",
    "ConnectionConfigError",
    "DEFAULT_EMBEDDING_MODEL_ID",
    "DEFAULT_LLM_MODEL_ID",
    "DistanceStrategy",
    "ExplainResult",
    "FilterError",
    "IngestSummary",
    "RAG_PROMPT",
    "TiDBTranslator",
    "TiDBVectorStore",
    "TiFlashUnavailableError",
    "__version__",
    "aws_is_configured",
    "create_llama3_chat",
    "create_rag_chain",
    "format_docs",
    "ingest_paths",
    "tidb_url_from_env",
}


def test_all_exports() -> None:
    assert set(langchain_tidb_bedrock.__all__) == EXPECTED_ALL
    for name in EXPECTED_ALL:
        assert getattr(langchain_tidb_bedrock, name) is not None
    assert langchain_tidb_bedrock.__version__ == "0.1.0"


def test_local_exports() -> None:
    from langchain_tidb_bedrock import local

    assert {"LocalTiDB", "LocalBedrock"} <= set(local.__all__)
    assert local.LocalBedrock.__name__ == "LocalBedrock"
