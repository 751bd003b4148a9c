"""The public API is what the README documents, and importing the store stays cheap."""

import subprocess
import sys

import pytest

import langchain_tidb_bedrock

EXPECTED_ALL = {
    "AnswerStreamError",
    "PartialEmbeddingError",
    "WriteError",
    "BedrockBatchEmbeddings",
    "BedrockConfigError",
    "BedrockEmbeddingError",
    "BedrockModelUnavailableError",
    "BedrockReranker",
    "BedrockTitanEmbeddings",
    "CONDENSE_QUESTION_PROMPT",
    "ConnectionConfigError",
    "DEFAULT_EMBEDDING_MODEL_ID",
    "DEFAULT_LLM_MODEL_ID",
    "DistanceStrategy",
    "ExplainResult",
    "FilterError",
    "IngestSummary",
    "InvalidInputError",
    "KeywordIndexMissingError",
    "TiDBChatMessageHistory",
    "TiDBEngine",
    "TiDBLoader",
    "TiDBByteStore",
    "TiDBCache",
    "TiDBDocStore",
    "TiDBRecordManager",
    "TiDBRetrievalMiddleware",
    "TiDBSaver",
    "TiDBSemanticCache",
    "TiDBStore",
    "RAG_PROMPT",
    "TiDBBedrockError",
    "TiDBTranslator",
    "TiDBVectorStore",
    "TiFlashUnavailableError",
    "__version__",
    "aws_is_configured",
    "create_llama3_chat",
    "create_rag_chain",
    "create_tidb_retriever_tool",
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


# langsmith.run_trees is not listed: langchain-core's VectorStore base class imports it itself.
# sqlalchemy.ext.asyncio loads the ORM: only a store's first async call needs it.
_HEAVY = (
    "boto3",
    "botocore",
    "langchain_aws",
    "langchain_text_splitters",
    "langgraph",
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.orm",
)


def test_store_import_pulls_in_no_aws_or_splitters() -> None:
    # A fresh interpreter: this process has imported everything already.
    code = (
        "import sys\n"
        "from langchain_tidb_bedrock import TiDBVectorStore, FilterError\n"
        f"print(','.join(m for m in {_HEAVY!r} if m in sys.modules))\n"
        "import pymysql.connections as c\n"
        "print(getattr(c._send_local_file, '_ltb_guard', False))\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "", f"importing the store pulled in: {out[0]}"
    assert out[1] == "False", "the PyMySQL file-request guard was installed at import"


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("FilterError", ValueError),
        ("ConnectionConfigError", ValueError),
        ("BedrockConfigError", RuntimeError),
        ("BedrockEmbeddingError", RuntimeError),
        ("BedrockModelUnavailableError", RuntimeError),
        ("TiFlashUnavailableError", RuntimeError),
        ("PartialEmbeddingError", RuntimeError),
        ("AnswerStreamError", RuntimeError),
        ("WriteError", RuntimeError),
    ],
)
def test_public_errors_share_one_base_and_keep_their_builtin(name: str, builtin: type) -> None:
    cls = getattr(langchain_tidb_bedrock, name)
    assert issubclass(cls, langchain_tidb_bedrock.TiDBBedrockError)
    assert issubclass(cls, builtin)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = langchain_tidb_bedrock.no_such_name  # type: ignore[attr-defined]
