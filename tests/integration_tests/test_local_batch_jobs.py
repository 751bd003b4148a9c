"""LocalBedrock's model-invocation-job control plane through a real boto3 ``bedrock`` client."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from langchain_tidb_bedrock.local import LocalBedrock, LocalS3

ROLE = "arn:aws:iam::123456789012:role/BedrockBatch"
MODEL = "amazon.titan-embed-text-v2:0"


@pytest.fixture
def servers(s3_server: LocalS3, batch_server: LocalBedrock) -> tuple[LocalS3, LocalBedrock]:
    return s3_server, batch_server


@pytest.fixture
def bedrock(batch_bedrock: LocalBedrock) -> LocalBedrock:
    return batch_bedrock  # this module's tests run batch jobs (see conftest)


@pytest.fixture
def client(bedrock: LocalBedrock) -> Any:
    return boto3.client("bedrock", **bedrock.client_kwargs())


@pytest.fixture
def bucket(servers: tuple[LocalS3, LocalBedrock]) -> str:
    name = f"jobs-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", **servers[0].client_kwargs())
    s3.create_bucket(Bucket=name)
    records = [
        json.dumps({"recordId": f"R{i:010d}", "modelInput": {"inputText": f"text {i}"}})
        for i in range(120)
    ]
    s3.put_object(Bucket=name, Key="in/a.jsonl", Body="\n".join(records).encode())
    s3.put_object(Bucket=name, Key="small/a.jsonl", Body="\n".join(records[:5]).encode())
    return name


def create(client: Any, bucket: str, **overrides: Any) -> str:
    kwargs: dict[str, Any] = {
        "jobName": f"job-{uuid.uuid4().hex[:8]}",
        "roleArn": ROLE,
        "modelId": MODEL,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{bucket}/in/"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{bucket}/out/"}},
        **overrides,
    }
    arn: str = client.create_model_invocation_job(**kwargs)["jobArn"]
    return arn


def wait(client: Any, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get_model_invocation_job(jobIdentifier=arn)
        if job["status"] in ("Completed", "PartiallyCompleted", "Failed", "Stopped"):
            return job
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def test_job_runs_and_writes_output_and_manifest(
    client: Any, bucket: str, bedrock: LocalBedrock, servers: tuple[LocalS3, LocalBedrock]
) -> None:
    arn = create(client, bucket)
    job = wait(client, arn)
    assert job["status"] == "Completed"
    assert (job["totalRecordCount"], job["successRecordCount"], job["errorRecordCount"]) == (
        120,
        120,
        0,
    )
    job_id = arn.rsplit("/", 1)[1]
    s3 = boto3.client("s3", **servers[0].client_kwargs())
    out = s3.get_object(Bucket=bucket, Key=f"out/{job_id}/a.jsonl.out")["Body"].read()
    first = json.loads(out.decode().splitlines()[0])
    assert first["recordId"] == "R0000000000"
    assert len(first["modelOutput"]["embedding"]) == 1024
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"out/{job_id}/manifest.json.out")["Body"].read()
    )
    assert manifest["totalRecordCount"] == manifest["successRecordCount"] == 120
    assert manifest["inputTokenCount"] > 0
    assert [r.op for r in bedrock.requests][:2] == [
        "CreateModelInvocationJob",
        "GetModelInvocationJob",
    ]


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ({"roleArn": "not-a-role"}, "at 'roleArn'"),
        ({"jobName": "bad name!"}, "at 'jobName'"),
        ({"inputDataConfig": {"s3InputDataConfig": {"s3Uri": "https://x/y"}}}, "s3Uri"),
        ({"outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://UP/x"}}}, "outputDataConfig"),
        ({"modelId": "amazon.nope-v9:0"}, "The provided model identifier is invalid."),
    ],
)
def test_create_validates_like_the_service_model(
    client: Any, bucket: str, bedrock: LocalBedrock, override: dict[str, Any], where: str
) -> None:
    with pytest.raises(ClientError) as info:
        create(client, bucket, **override)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert where in info.value.response["Error"]["Message"]
    assert not bedrock.batch_jobs.jobs or all(
        j.role_arn == ROLE for j in bedrock.batch_jobs.jobs.values()
    )


def test_below_the_record_minimum_the_job_fails(client: Any, bucket: str) -> None:
    arn = create(
        client, bucket, inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://{bucket}/small/"}}
    )
    job = wait(client, arn)
    assert job["status"] == "Failed"
    assert "required minimum of: 100" in job["message"]


def test_token_is_idempotent_and_names_are_unique(client: Any, bucket: str) -> None:
    first = create(client, bucket, jobName="same-name", clientRequestToken="tok1")
    assert create(client, bucket, jobName="same-name", clientRequestToken="tok1") == first
    with pytest.raises(ClientError, match="ConflictException"):
        create(client, bucket, jobName="same-name", clientRequestToken="tok2")
    wait(client, first)


def test_list_filters_and_stop(client: Any, bucket: str, bedrock: LocalBedrock) -> None:
    bedrock.batch_jobs.start_delay = 5.0
    arn = create(client, bucket, jobName="stop-me-please")
    listed = client.list_model_invocation_jobs(nameContains="stop-me", statusEquals="Submitted")
    assert [j["jobArn"] for j in listed["invocationJobSummaries"]] == [arn]
    client.stop_model_invocation_job(jobIdentifier=arn)
    assert wait(client, arn)["status"] == "Stopped"
    with pytest.raises(ClientError, match="ConflictException"):
        client.stop_model_invocation_job(jobIdentifier=arn)
    ops = [r.op for r in bedrock.requests]
    assert "ListModelInvocationJobs" in ops
    assert "StopModelInvocationJob" in ops


def test_unknown_job_is_not_found(client: Any) -> None:
    with pytest.raises(ClientError) as info:
        client.get_model_invocation_job(jobIdentifier="abcdefghijkl")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
