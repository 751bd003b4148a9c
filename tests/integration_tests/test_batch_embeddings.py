"""BedrockBatchEmbeddings through real boto3 clients against LocalS3 and LocalBedrock.

Batch jobs run in LocalBedrock's threads, reading and writing LocalS3 over HTTP; the tests only
shorten the poll interval.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import boto3
import pytest

from langchain_tidb_bedrock import BedrockBatchEmbeddings, BedrockTitanEmbeddings
from langchain_tidb_bedrock.embeddings.batch import BatchInferenceError
from langchain_tidb_bedrock.local.bedrock import LocalBedrock
from langchain_tidb_bedrock.local.s3 import LocalS3

ROLE = "arn:aws:iam::123456789012:role/BedrockBatch"


@pytest.fixture
def bedrock(batch_bedrock: LocalBedrock) -> LocalBedrock:
    return batch_bedrock  # this module's tests run batch jobs (see conftest)


@pytest.fixture
def s3(s3_server: LocalS3) -> Any:
    return boto3.client("s3", **s3_server.client_kwargs())


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"emb-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def make(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str, **kwargs: Any
) -> BedrockBatchEmbeddings:
    options: dict[str, Any] = {
        "endpoint_url": bedrock.endpoint_url,
        "s3_endpoint_url": s3_server.endpoint_url,
        "region_name": "us-east-1",
        "poll_interval": 0.02,
        "timeout": 30,
        "show_progress": False,
        **kwargs,
    }
    return BedrockBatchEmbeddings(f"s3://{bucket}/runs", ROLE, **options)


def texts_for(n: int, salt: str = "") -> list[str]:
    return [f"{salt}Chunk {i}: TiDB keeps vectors beside rows, topic {i % 13}." for i in range(n)]


def on_demand(bedrock: LocalBedrock, texts: list[str], **kwargs: Any) -> list[list[float]]:
    emb = BedrockTitanEmbeddings(
        endpoint_url=bedrock.endpoint_url, region_name="us-east-1", dimensions=512, **kwargs
    )
    try:
        return emb.embed_documents(texts)
    finally:
        emb.close()


def ops(bedrock: LocalBedrock, name: str) -> list[Any]:
    return [r for r in bedrock.requests if r.op == name]


def created_jobs(bedrock: LocalBedrock) -> list[Any]:
    """The stand-in's jobs this test created (the server outlives the test)."""
    names = [r.body["jobName"] for r in ops(bedrock, "CreateModelInvocationJob")]
    by_name = {job.name: job for job in bedrock.batch_jobs.jobs.values()}
    return [by_name[name] for name in names]


def keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_vectors_equal_on_demand_in_input_order(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str, s3: Any
) -> None:
    texts = texts_for(140)
    texts += [texts[5], texts[0]]  # repeats keep their positions
    emb = make(bedrock, s3_server, bucket)
    got = emb.embed_documents(texts)
    assert not ops(bedrock, "InvokeModel")  # nothing went on demand
    assert len(ops(bedrock, "CreateModelInvocationJob")) == 1
    assert got == on_demand(bedrock, texts)
    assert got[140] == got[5]
    assert emb.last_run["records"] == 140
    stored = keys(s3, bucket)
    assert sum(k.endswith(".jsonl") for k in stored) == 1
    assert sum(k.endswith(".jsonl.out") for k in stored) == 1
    assert sum(k.endswith("manifest.json.out") for k in stored) == 1
    # The job's records are the InvokeModel bodies on-demand sends.
    create = ops(bedrock, "CreateModelInvocationJob")[0].body
    assert create["modelId"] == "amazon.titan-embed-text-v2:0"
    assert create["roleArn"] == ROLE
    line = s3.get_object(Bucket=bucket, Key=next(k for k in stored if k.endswith(".jsonl")))
    first = line["Body"].read().decode().splitlines()[0]
    assert first == (
        '{"recordId": "R0000000000", "modelInput": {"inputText": "' + texts[0] + '", '
        '"dimensions": 512, "normalize": true}}'
    )


def test_other_settings_match_on_demand(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str
) -> None:
    texts = texts_for(100)
    emb = make(bedrock, s3_server, bucket, dimensions=256, normalize=False)
    got = emb.embed_documents(texts)
    want = BedrockTitanEmbeddings(
        endpoint_url=bedrock.endpoint_url, region_name="us-east-1", dimensions=256, normalize=False
    ).embed_documents(texts)
    assert got == want
    assert len(got[0]) == 256


def test_large_input_split_across_files_and_jobs(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str, s3: Any
) -> None:
    texts = texts_for(450)
    emb = make(bedrock, s3_server, bucket, max_records_per_job=200, max_records_per_file=50)
    got = emb.embed_documents(texts)
    assert got == on_demand(bedrock, texts)
    sizes = sorted(job.total for job in created_jobs(bedrock))
    # 450 records at 200 per job: 200, then the short tail shares with the job before it.
    assert sizes == [125, 125, 200]
    stored = keys(s3, bucket)
    assert sum(k.endswith(".jsonl") for k in stored) == 4 + 3 + 3  # 50 records per file
    assert sum(k.endswith(".jsonl.out") for k in stored) == 10
    assert emb.last_run["jobs_created"] == 3


def test_file_size_limit_splits_files(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str, s3: Any
) -> None:
    texts = texts_for(120)
    emb = make(bedrock, s3_server, bucket, max_file_bytes=4_000)
    assert emb.embed_documents(texts) == on_demand(bedrock, texts)
    inputs = [k for k in keys(s3, bucket) if k.endswith(".jsonl")]
    assert len(inputs) > 1
    for key in inputs:
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] <= 4_000


def test_below_minimum_falls_back_on_demand_and_says_so_once(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str, s3: Any, caplog: Any
) -> None:
    emb = make(bedrock, s3_server, bucket)
    caplog.set_level(logging.WARNING, logger="langchain_tidb_bedrock.embeddings.batch")
    texts = texts_for(5)
    assert emb.embed_documents(texts) == on_demand(bedrock, texts)
    assert emb.embed_documents(texts_for(3, "b")) == on_demand(bedrock, texts_for(3, "b"))
    notes = [r for r in caplog.records if "below the batch inference minimum" in r.message]
    assert len(notes) == 1
    assert not ops(bedrock, "CreateModelInvocationJob")
    assert keys(s3, bucket) == []
    # Queries are on demand too.
    before = len(ops(bedrock, "InvokeModel"))
    assert emb.embed_query("What is TiDB?") == on_demand(bedrock, ["What is TiDB?"])[0]
    assert len(ops(bedrock, "InvokeModel")) == before + 2  # ours, then the reference


def test_failed_records_are_retried_on_demand(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str, s3: Any
) -> None:
    texts = texts_for(130)
    bedrock.batch_jobs.fail_record_ids = {"R0000000003", "R0000000077"}
    emb = make(bedrock, s3_server, bucket)
    got = emb.embed_documents(texts)
    retried = [r.body["inputText"] for r in ops(bedrock, "InvokeModel")]
    assert sorted(retried) == sorted([texts[3], texts[77]])
    assert emb.last_run["retried_on_demand"] == 2
    assert got == on_demand(bedrock, texts)
    out = next(k for k in keys(s3, bucket) if k.endswith(".jsonl.out"))
    lines = s3.get_object(Bucket=bucket, Key=out)["Body"].read().decode().splitlines()
    assert sum('"error": {"errorCode": 500' in line for line in lines) == 2


def test_unprocessed_records_of_a_partial_job_are_embedded_on_demand(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str
) -> None:
    texts = texts_for(150)
    bedrock.batch_jobs.process_limit = 120
    emb = make(bedrock, s3_server, bucket)
    got = emb.embed_documents(texts)
    (job,) = created_jobs(bedrock)
    assert job.status == "PartiallyCompleted"
    assert emb.last_run["retried_on_demand"] == 30
    assert len(ops(bedrock, "InvokeModel")) == 30
    assert got == on_demand(bedrock, texts)


def test_interrupted_run_resumes_the_running_job(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str
) -> None:
    texts = texts_for(110)
    bedrock.batch_jobs.start_delay = 0.8
    first = make(bedrock, s3_server, bucket, timeout=0.2)
    with pytest.raises(BatchInferenceError, match="still running") as info:
        first.embed_documents(texts)
    assert "run again with the same texts" in str(info.value)
    assert texts[0] not in str(info.value)
    second = make(bedrock, s3_server, bucket)
    got = second.embed_documents(texts)
    assert len(ops(bedrock, "CreateModelInvocationJob")) == 1  # paid once
    assert second.last_run["jobs_reused"] == 1
    assert second.last_run["files_uploaded"] == 0
    assert got == on_demand(bedrock, texts)
    # A third run over the same texts reads the finished job's output: no new job, no upload.
    third = make(bedrock, s3_server, bucket)
    assert third.embed_documents(texts) == got
    assert len(ops(bedrock, "CreateModelInvocationJob")) == 1
    assert third.last_run["files_uploaded"] == 0


def test_failed_job_is_reported_and_resubmitted_on_rerun(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str
) -> None:
    texts = texts_for(100, "f")
    bedrock.batch_jobs.fail_next_job("The service role could not be assumed.")
    emb = make(bedrock, s3_server, bucket)
    with pytest.raises(BatchInferenceError, match="ended Failed: The service role"):
        emb.embed_documents(texts)
    got = emb.embed_documents(texts)
    names = [r.body["jobName"] for r in ops(bedrock, "CreateModelInvocationJob")]
    assert len(names) == 2
    assert names[1] == names[0] + "-r1"
    assert got == on_demand(bedrock, texts)


def test_missing_bucket_is_one_clear_error_before_any_upload(
    bedrock: LocalBedrock, s3_server: LocalS3, s3: Any
) -> None:
    emb = make(bedrock, s3_server, "no-such-bucket-here")
    with pytest.raises(BatchInferenceError) as info:
        emb.embed_documents(texts_for(120))
    message = str(info.value)
    assert "'no-such-bucket-here'" in message
    assert "does not exist" in message
    assert "Chunk" not in message
    assert "local-test-secret" not in message
    assert not [r for r in bedrock.requests if r.op.endswith("ModelInvocationJob")]
    assert "no-such-bucket-here" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize(
    ("s3_uri", "role", "match"),
    [
        ("s3://ok-bucket/runs", "my-role", "role_arn must be an IAM role ARN"),
        ("s3://ok-bucket/runs", "arn:aws:iam::123:role/x", "role_arn must be an IAM role ARN"),
        ("https://ok-bucket/runs", ROLE, "s3_uri must look like s3://bucket/prefix"),
        ("s3://Bad_Bucket/runs", ROLE, "not a valid S3 bucket name"),
    ],
)
def test_bad_role_or_uri_is_refused_before_anything_is_sent(
    bedrock: LocalBedrock, s3_server: LocalS3, s3_uri: str, role: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        BedrockBatchEmbeddings(
            s3_uri, role, endpoint_url=bedrock.endpoint_url, s3_endpoint_url=s3_server.endpoint_url
        )
    assert bedrock.requests == []


def test_bedrock_refusal_before_upload_names_the_fix(
    bedrock: LocalBedrock, s3_server: LocalS3, bucket: str, s3: Any
) -> None:
    bedrock.fail_next(403, "AccessDeniedException", "not authorized to list jobs")
    emb = make(bedrock, s3_server, bucket)
    with pytest.raises(BatchInferenceError, match="iam:PassRole"):
        emb.embed_documents(texts_for(100))
    assert keys(s3, bucket) == []
