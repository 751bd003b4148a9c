"""``tidb-bedrock ingest --batch-inference`` end to end: LocalS3, LocalBedrock's batch jobs and a
real TiDB, through the command line in-process."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from langchain_tidb_bedrock.cli.main import main as cli_main
from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings
from langchain_tidb_bedrock.local.bedrock import LocalBedrock
from langchain_tidb_bedrock.local.s3 import LocalS3
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

ROLE = "arn:aws:iam::123456789012:role/BedrockBatch"


@pytest.fixture
def bedrock(batch_bedrock: LocalBedrock) -> LocalBedrock:
    return batch_bedrock  # this module's tests run batch jobs (see conftest)


@pytest.fixture
def bucket(s3_server: LocalS3) -> str:
    name = f"ingest-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", **s3_server.client_kwargs()).create_bucket(Bucket=name)
    return name


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for n in range(30):
        paragraphs = [
            f"Note {n}.{p}: TiDB shard {n} keeps vectors of topic {p} beside its rows."
            for p in range(5)
        ]
        (folder / f"note{n:02d}.txt").write_text("\n\n".join(paragraphs) + "\n")
    return folder


def ops(bedrock: LocalBedrock, name: str) -> list[Any]:
    return [r for r in bedrock.requests if r.op == name]


def ingest(docs: Path, tidb_url: str, table: str, bedrock: LocalBedrock, *extra: str) -> int:
    return cli_main(
        [
            "ingest",
            str(docs),
            "--tidb-url",
            tidb_url,
            "--table",
            table,
            "--bedrock-endpoint-url",
            bedrock.endpoint_url,
            "--no-progress",
            "--chunk-size",
            "90",
            "--chunk-overlap",
            "0",
            *extra,
        ]
    )


def test_cli_ingest_with_batch_inference_end_to_end(
    docs: Path,
    tidb_url: str,
    tidb_engine: sa.Engine,
    table_name: str,
    bedrock: LocalBedrock,
    s3_server: LocalS3,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch = ["--batch-inference", f"s3://{bucket}/ingest", "--role-arn", ROLE]
    batch += ["--s3-endpoint-url", s3_server.endpoint_url]
    assert ingest(docs, tidb_url, table_name, bedrock, *batch) == 0
    assert "150 embedded" in capsys.readouterr().out
    (create,) = ops(bedrock, "CreateModelInvocationJob")
    assert create.body["roleArn"] == ROLE
    assert not [r for r in ops(bedrock, "InvokeModel") if "TiDB shard" in r.body["inputText"]]
    with tidb_engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT COUNT(*) FROM `{table_name}`")).scalar() == 150

    # The stored vectors are the on-demand ones: a chunk is its own nearest neighbour.
    titan = BedrockTitanEmbeddings(
        endpoint_url=bedrock.endpoint_url, region_name="us-east-1", dimensions=512
    )
    store = TiDBVectorStore(titan, connection_string=tidb_url, table_name=table_name)
    try:
        text = "Note 7.3: TiDB shard 7 keeps vectors of topic 3 beside its rows."
        ((doc, score),) = store.similarity_search_with_score(text, k=1)
        assert doc.page_content == text
        assert score == pytest.approx(0.0, abs=1e-6)  # cosine distance: the very same vector
    finally:
        store.close()
        titan.close()

    # Unchanged chunks cost nothing: no job, no embedding request.
    bedrock.reset()
    assert ingest(docs, tidb_url, table_name, bedrock, *batch) == 0
    assert "0 embedded" in capsys.readouterr().out
    assert not ops(bedrock, "CreateModelInvocationJob")
    assert not ops(bedrock, "InvokeModel")

    # A few new chunks are below the job minimum: embedded on demand.
    (docs / "note00.txt").write_text("A brand new paragraph about HTAP and TiFlash replicas.\n")
    bedrock.reset()
    assert ingest(docs, tidb_url, table_name, bedrock, *batch) == 0
    assert "1 embedded" in capsys.readouterr().out
    assert not ops(bedrock, "CreateModelInvocationJob")
    assert len(ops(bedrock, "InvokeModel")) == 1


def test_batch_inference_needs_a_role(
    docs: Path,
    tidb_url: str,
    table_name: str,
    bedrock: LocalBedrock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = ingest(docs, tidb_url, table_name, bedrock, "--batch-inference", "s3://some-bucket/x")
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--batch-inference: needs --role-arn" in err


def test_missing_bucket_is_one_error_line_and_nothing_is_stored(
    docs: Path,
    tidb_url: str,
    tidb_engine: sa.Engine,
    table_name: str,
    bedrock: LocalBedrock,
    s3_server: LocalS3,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = ingest(
        docs,
        tidb_url,
        table_name,
        bedrock,
        "--batch-inference",
        "s3://missing-bucket-zz/ingest",
        "--role-arn",
        ROLE,
        "--s3-endpoint-url",
        s3_server.endpoint_url,
    )
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert err.count("\n") == 0
    assert "'missing-bucket-zz'" in err
    assert "TiDB shard" not in err
    assert not [r for r in bedrock.requests if r.op.endswith("ModelInvocationJob")]
    assert not ops(bedrock, "InvokeModel") or all(
        "TiDB shard" not in r.body["inputText"] for r in ops(bedrock, "InvokeModel")
    )
    with tidb_engine.connect() as conn:
        tables = conn.execute(sa.text("SHOW TABLES LIKE :t"), {"t": table_name}).all()
        if tables:
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM `{table_name}`")).scalar() == 0


def test_bad_role_arn_is_a_usage_error(
    docs: Path,
    tidb_url: str,
    table_name: str,
    bedrock: LocalBedrock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = ingest(
        docs,
        tidb_url,
        table_name,
        bedrock,
        "--batch-inference",
        "s3://some-bucket/x",
        "--role-arn",
        "BedrockBatch",
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "role_arn must be an IAM role ARN" in err
    assert not bedrock.requests or not [
        r for r in bedrock.requests if r.op.endswith("ModelInvocationJob")
    ]
