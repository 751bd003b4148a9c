"""What importing the CLI (and the package) loads, counted in a fresh interpreter.

Start-up time is measured in ``benchmarks/startup.py``; here the modules are counted, so a
heavy import creeping back to module level fails whatever the machine's speed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Each of these is needed by some command, never by parsing the arguments.
_HEAVY = (
    "langsmith",
    "langsmith.run_trees",
    "langchain_core.runnables.base",
    "langchain_aws",
    "boto3",
    "numpy",
    "sqlalchemy",
    "pymysql",
    "llama_index.core",
    "langgraph",
    "langchain_text_splitters",
    "importlib.metadata",
    "langchain_tidb_bedrock.vectorstores.base",
    "langchain_tidb_bedrock.embeddings.titan",
    "langchain_tidb_bedrock.ingest.pipeline",
    "langchain_tidb_bedrock.local.bedrock",
)


def _loaded(code: str) -> set[str]:
    done = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import langchain_tidb_bedrock.cli.main",
        "import langchain_tidb_bedrock",
        "from langchain_tidb_bedrock.cli.main import build_parser; build_parser().parse_args("
        "['ask', 'q', '--k', '2', '--embedding-model-id', 'amazon.titan-embed-text-v2:0'])",
    ],
)
def test_the_cli_imports_no_heavy_module_until_a_command_runs(code: str) -> None:
    loaded = _loaded(code)
    assert sorted(m for m in _HEAVY if m in loaded) == []


def test_the_lazy_names_still_resolve() -> None:
    loaded = _loaded(
        "import langchain_tidb_bedrock as p\n"
        "from langchain_tidb_bedrock.embeddings import BedrockTitanEmbeddings\n"
        "from langchain_tidb_bedrock.embeddings._s3 import BatchInferenceError\n"
        "from langchain_tidb_bedrock.errors import BatchInferenceError as B2\n"
        "assert BatchInferenceError is B2 and p.__version__ and p.TiDBVectorStore\n"
    )
    assert "langchain_aws" in loaded  # the titan module did load, on use
