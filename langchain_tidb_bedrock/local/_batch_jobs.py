"""Bedrock batch inference (model invocation jobs) for LocalBedrock.

Serves the four ``bedrock`` control-plane operations of botocore's service model
(``2023-04-20``, rest-json) on LocalBedrock's port:

====================================  ======  ==========================================
operation                             method  path
====================================  ======  ==========================================
CreateModelInvocationJob              POST    ``/model-invocation-job``
GetModelInvocationJob                 GET     ``/model-invocation-job/{jobIdentifier}``
ListModelInvocationJobs               GET     ``/model-invocation-jobs``
StopModelInvocationJob                POST    ``/model-invocation-job/{jobIdentifier}/stop``
====================================  ======  ==========================================

Creation validates what the service model constrains (job name, role ARN and S3 URI patterns,
timeout range, the model id) and answers ``ValidationException`` in AWS's
``1 validation error detected`` wording; a reused ``clientRequestToken`` returns the same job,
a reused name is a ``ConflictException``. Each job then runs in a background thread the way the
user guide describes: ``Submitted`` -> ``Validating`` (its input ``.jsonl`` files in S3, the
record minimum and per-file maximum) -> ``InProgress`` -> ``Completed`` (also when some records
failed: they carry ``error`` instead of ``modelOutput``), ``PartiallyCompleted`` (records left
unprocessed), ``Failed`` (with a message) or ``Stopping`` -> ``Stopped``. For every input file
``<name>.jsonl`` it writes ``<output>/<jobId>/<name>.jsonl.out`` and one
``<output>/<jobId>/manifest.json.out`` with the record and token counts. Titan V2 records get
exactly the vectors InvokeModel returns.

Test knobs (on ``LocalBedrock.batch_jobs``): ``fail_record_ids`` (record ids answered with an
``error``), ``start_delay`` (seconds a job stays Submitted), ``records_per_second`` (processing
speed; None = as fast as the stand-in runs), ``process_limit`` (records processed per job before
it ends PartiallyCompleted), ``min_records`` / ``max_records_per_file`` (the service's 100 and
50,000 defaults), ``fail_next_job(message)``; records: ``jobs`` and LocalBedrock's ``requests``
(op = the botocore operation name).
"""

from __future__ import annotations

import json
import re
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from langchain_tidb_bedrock.local import _standin_models as models
from langchain_tidb_bedrock.local._validation import (
    TITAN_V2_MODEL_ID,
    BedrockError,
    resolve_model,
    validate_titan,
)

if TYPE_CHECKING:
    from langchain_tidb_bedrock.local.bedrock import LocalBedrock, _Handler

__all__ = ["BatchJob", "BatchJobs"]

ACCOUNT = "123456789012"
REGION = "us-east-1"
MIN_RECORDS = 100
MAX_RECORDS_PER_FILE = 50_000
_MAX_TITAN_TOKENS = 8_192

# Patterns and ranges from botocore's bedrock service model.
_JOB_NAME = re.compile(r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}")
_ROLE_ARN = re.compile(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+")
_S3_URI = re.compile(
    r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?"
)
_TOKEN = re.compile(r"[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}")
_JOB_ID = re.compile(
    r"(?:arn:aws(?:-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:model-invocation-job/)?([a-z0-9]{12})"
)
_INJECTED = "Internal error (LocalBedrock injected)."
_TERMINAL = frozenset({"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"})
_STATUSES = (
    "Submitted",
    "InProgress",
    "Completed",
    "Failed",
    "Stopping",
    "Stopped",
    "PartiallyCompleted",
    "Expired",
    "Validating",
    "Scheduled",
)


def _constraint(value: Any, member: str, rule: str) -> BedrockError:
    return BedrockError(
        400,
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {rule}",
    )


def _pattern(value: Any, member: str, pattern: re.Pattern[str]) -> BedrockError:
    return _constraint(
        value, member, f"Member must satisfy regular expression pattern: {pattern.pattern}"
    )


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_time(value: str) -> float:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float(value)


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


@dataclass
class BatchJob:
    """One model invocation job as LocalBedrock keeps it."""

    job_id: str
    name: str
    model_id: str
    role_arn: str
    input_uri: str
    output_uri: str
    client_token: str | None
    timeout_hours: int
    submit_time: float
    status: str = "Submitted"
    message: str | None = None
    last_modified: float = 0.0
    end_time: float | None = None
    total: int = 0
    processed: int = 0
    succeeded: int = 0
    errors: int = 0
    stop_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def arn(self) -> str:
        """The job's ARN."""
        return f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/{self.job_id}"

    def describe(self) -> dict[str, Any]:
        """GetModelInvocationJob's response (also a ListModelInvocationJobs summary)."""
        out: dict[str, Any] = {
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model_id,
            "roleArn": self.role_arn,
            "status": self.status,
            "submitTime": _iso(self.submit_time),
            "lastModifiedTime": _iso(self.last_modified or self.submit_time),
            "inputDataConfig": {
                "s3InputDataConfig": {"s3Uri": self.input_uri, "s3InputFormat": "JSONL"}
            },
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": self.output_uri}},
            "timeoutDurationInHours": self.timeout_hours,
            "jobExpirationTime": _iso(self.submit_time + self.timeout_hours * 3600),
            "modelInvocationType": "InvokeModel",
            "totalRecordCount": self.total,
            "processedRecordCount": self.processed,
            "successRecordCount": self.succeeded,
            "errorRecordCount": self.errors,
        }
        if self.client_token:
            out["clientRequestToken"] = self.client_token
        if self.message:
            out["message"] = self.message
        if self.end_time is not None:
            out["endTime"] = _iso(self.end_time)
        return out


class BatchJobs:
    """The model-invocation-job control plane and job runner of one LocalBedrock."""

    def __init__(self, owner: LocalBedrock, s3_endpoint_url: str | None) -> None:
        self.owner = owner
        self.s3_endpoint_url = s3_endpoint_url
        self._lock = threading.Lock()
        self.jobs: dict[str, BatchJob] = {}
        self._threads: list[threading.Thread] = []
        self.reset()

    def reset(self) -> None:
        """Clear the knobs (jobs already submitted are kept: they live in the account)."""
        with self._lock:
            self.fail_record_ids: set[str] = set()
            self.start_delay = 0.0
            self.records_per_second: float | None = None
            self.process_limit: int | None = None
            self.min_records = MIN_RECORDS
            self.max_records_per_file = MAX_RECORDS_PER_FILE
            self._fail_jobs: list[str] = []

    def fail_next_job(self, message: str = "Internal error (LocalBedrock injected).") -> None:
        """Make the next job that starts end ``Failed`` with ``message``."""
        with self._lock:
            self._fail_jobs.append(message)

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for every job thread to finish (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------ routing

    @staticmethod
    def route(method: str, path: str) -> tuple[str, str | None] | None:
        """(operation, job identifier) for a control-plane path, else None."""
        parts = path.split("/")  # split before unquoting: an ARN identifier holds "/"
        if method == "GET" and parts == ["", "model-invocation-jobs"]:
            return "ListModelInvocationJobs", None
        if len(parts) < 2 or parts[1] != "model-invocation-job":
            return None
        if method == "POST" and len(parts) == 2:
            return "CreateModelInvocationJob", None
        if method == "GET" and len(parts) == 3:
            return "GetModelInvocationJob", unquote(parts[2])
        if method == "POST" and len(parts) == 4 and parts[3] == "stop":
            return "StopModelInvocationJob", unquote(parts[2])
        return None

    def serve(self, handler: _Handler, method: str) -> bool:
        """Answer a control-plane request; False when the path is not one (bedrock-runtime)."""
        from langchain_tidb_bedrock.local.bedrock import LocalBedrock, RecordedRequest

        split = urlsplit(handler.path)
        routed = self.route(method, split.path)
        if routed is None:
            return False
        op, ident = routed
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        record = RecordedRequest(
            op=op,
            model_id=str(body.get("modelId", "")) if isinstance(body, dict) else "",
            headers=dict(handler.headers.items()),
            body=body,
            time=time.time(),
            path=split.path,
        )
        handler.record = record
        with self.owner._lock:
            self.owner._requests.append(record)
        try:
            self.owner._inject_faults()  # fail_next / throttling knobs apply here too
            if body is None or not isinstance(body, dict):
                raise BedrockError(400, "SerializationException", "Malformed request body.")
            if op == "CreateModelInvocationJob":
                payload: dict[str, Any] = {"jobArn": self._create(body)}
            elif op == "ListModelInvocationJobs":
                payload = self._list(parse_qs(split.query))
            else:
                job = self._find(ident or "")
                payload = self._stop(job) if op == "StopModelInvocationJob" else job.describe()
            LocalBedrock._send_json(handler, payload)
        except BedrockError as err:
            LocalBedrock._send_error(handler, err)
        return True

    # ------------------------------------------------------------ operations

    def _create(self, body: dict[str, Any]) -> str:
        for member in ("jobName", "roleArn", "modelId", "inputDataConfig", "outputDataConfig"):
            if member not in body:
                raise _constraint(None, member, "Member must not be null")
        name, role, model_id = body["jobName"], body["roleArn"], body["modelId"]
        if not isinstance(name, str) or len(name) > 63 or not _JOB_NAME.fullmatch(name):
            raise _constraint(
                name,
                "jobName",
                f"Member must satisfy regular expression pattern: {_JOB_NAME.pattern}",
            )
        if not isinstance(role, str) or not _ROLE_ARN.fullmatch(role):
            raise _constraint(
                role,
                "roleArn",
                f"Member must satisfy regular expression pattern: {_ROLE_ARN.pattern}",
            )
        uris = []
        for member, config, inner in (
            ("inputDataConfig", body["inputDataConfig"], "s3InputDataConfig"),
            ("outputDataConfig", body["outputDataConfig"], "s3OutputDataConfig"),
        ):
            uri = (config or {}).get(inner, {}).get("s3Uri") if isinstance(config, dict) else None
            where = f"{member}.{inner}.s3Uri"
            if not isinstance(uri, str) or len(uri) > 1024 or not _S3_URI.fullmatch(uri):
                raise _pattern(uri, where, _S3_URI)
            uris.append(uri)
        hours = body.get("timeoutDurationInHours", 24)
        if not isinstance(hours, int) or not 24 <= hours <= 168:
            raise _constraint(
                hours, "timeoutDurationInHours", "Member must have value between 24 and 168"
            )
        token = body.get("clientRequestToken")
        if token is not None and (not isinstance(token, str) or not _TOKEN.fullmatch(token)):
            raise _constraint(token, "clientRequestToken", "Member must satisfy pattern")
        model = resolve_model(model_id)  # unknown ids: "The provided model identifier is invalid."
        if model.kind != "titan":
            raise BedrockError(
                400,
                "ValidationException",
                f"LocalBedrock runs batch inference for {TITAN_V2_MODEL_ID} only, not {model_id}.",
            )
        if not self.s3_endpoint_url:
            raise BedrockError(
                400,
                "ValidationException",
                "LocalBedrock was started without s3_endpoint_url: batch jobs have no S3 to read.",
            )
        with self._lock:
            for job in self.jobs.values():
                if token and job.client_token == token:
                    return job.arn  # idempotent retry of the same request
                if job.name == name:
                    raise BedrockError(
                        400,
                        "ConflictException",
                        f"A model invocation job with the name {name} already exists.",
                    )
            alphabet = string.ascii_lowercase + string.digits
            raw = uuid.uuid4().int
            job_id = "".join(alphabet[(raw >> (6 * i)) % 36] for i in range(12))
            now = time.time()
            job = BatchJob(
                job_id=job_id,
                name=name,
                model_id=model_id,
                role_arn=role,
                input_uri=uris[0],
                output_uri=uris[1],
                client_token=token,
                timeout_hours=hours,
                submit_time=now,
                last_modified=now,
            )
            self.jobs[job_id] = job
            thread = threading.Thread(
                target=self._run, args=(job,), name=f"batch-job-{job_id}", daemon=True
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job.arn

    def _find(self, ident: str) -> BatchJob:
        match = _JOB_ID.fullmatch(ident)
        if match is None:
            raise _constraint(
                ident,
                "jobIdentifier",
                f"Member must satisfy regular expression pattern: {_JOB_ID.pattern}",
            )
        with self._lock:
            job = self.jobs.get(match.group(1))
        if job is None:
            raise BedrockError(
                404, "ResourceNotFoundException", f"The model invocation job {ident} was not found."
            )
        return job

    def _stop(self, job: BatchJob) -> dict[str, Any]:
        with self._lock:
            if job.status in _TERMINAL:
                raise BedrockError(
                    400,
                    "ConflictException",
                    f"The model invocation job is in status {job.status} and cannot be stopped.",
                )
            job.status, job.last_modified = "Stopping", time.time()
            job.stop_requested.set()
        return {}

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        def one(key: str) -> str | None:
            return query[key][0] if key in query else None

        status, contains = one("statusEquals"), one("nameContains")
        if status is not None and status not in _STATUSES:
            raise _constraint(
                status, "statusEquals", f"Member must satisfy enum value set: {list(_STATUSES)}"
            )
        after, before = one("submitTimeAfter"), one("submitTimeBefore")
        max_results = int(one("maxResults") or 1000)
        if not 1 <= max_results <= 1000:
            raise _constraint(
                max_results, "maxResults", "Member must have value between 1 and 1000"
            )
        with self._lock:
            jobs = list(self.jobs.values())
        jobs = [
            j
            for j in jobs
            if (status is None or j.status == status)
            and (contains is None or contains in j.name)
            and (after is None or j.submit_time > _parse_time(after))
            and (before is None or j.submit_time < _parse_time(before))
        ]
        jobs.sort(key=lambda j: j.submit_time, reverse=one("sortOrder") != "Ascending")
        start = int(one("nextToken") or 0)
        page = jobs[start : start + max_results]
        out: dict[str, Any] = {"invocationJobSummaries": [j.describe() for j in page]}
        if start + max_results < len(jobs):
            out["nextToken"] = str(start + max_results)
        return out

    # ------------------------------------------------------------ the job runner

    def _set(self, job: BatchJob, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            job.last_modified = time.time()
            if job.status in _TERMINAL and job.end_time is None:
                job.end_time = job.last_modified

    def _s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint_url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - LocalS3 does not check signatures
        )

    def _inputs(self, s3: Any, job: BatchJob) -> list[tuple[str, list[dict[str, Any]]]]:
        """The job's input files (key, records), or raise a message for ``Failed``."""
        bucket, prefix = _split_s3(job.input_uri)
        try:
            if prefix.endswith(".jsonl"):
                keys = [prefix]
            else:
                keys = []
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for page in pages:
                    keys += [
                        o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl")
                    ]
            files = []
            for key in sorted(keys):
                data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                records = []
                for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    if not isinstance(record, dict) or not isinstance(
                        record.get("modelInput"), dict
                    ):
                        msg = f"Line {n} of {key} is not a JSON object with a modelInput object."
                        raise _JobFailedError(msg)
                    records.append(record)
                files.append((key, records))
        except _JobFailedError:
            raise
        except ValueError as err:
            msg = f"An input file is not valid JSONL: {err}"
            raise _JobFailedError(msg) from err
        except Exception as err:  # botocore errors: the role could not read the input
            msg = f"Unable to read the input data at {job.input_uri}: {type(err).__name__}."
            raise _JobFailedError(msg) from err
        if not files:
            msg = f"No .jsonl input files were found at {job.input_uri}."
            raise _JobFailedError(msg)
        total = sum(len(records) for _, records in files)
        if total < self.min_records:
            msg = (
                f"Batch job contains less records than the required minimum of: "
                f"{self.min_records}, found {total}."
            )
            raise _JobFailedError(msg)
        for key, records in files:
            if len(records) > self.max_records_per_file:
                msg = (
                    f"The input file {key} has {len(records)} records; the maximum per file is "
                    f"{self.max_records_per_file}."
                )
                raise _JobFailedError(msg)
        return files

    def _run(self, job: BatchJob) -> None:
        try:
            self._execute(job)
        except _JobFailedError as err:
            self._set(job, status="Failed", message=str(err))
        except Exception as err:  # the stand-in must never leave a job hanging
            self._set(job, status="Failed", message=f"Internal error: {type(err).__name__}: {err}")

    def _execute(self, job: BatchJob) -> None:
        if job.stop_requested.wait(self.start_delay):
            self._set(job, status="Stopped")
            return
        self._set(job, status="Validating")
        s3 = self._s3()
        files = self._inputs(s3, job)
        with self._lock:
            injected = self._fail_jobs.pop(0) if self._fail_jobs else None
            fail_ids = set(self.fail_record_ids)
            limit, speed = self.process_limit, self.records_per_second
        if injected is not None:
            raise _JobFailedError(injected)
        self._set(job, status="InProgress", total=sum(len(r) for _, r in files))
        out_bucket, out_prefix = _split_s3(job.output_uri)
        folder = f"{out_prefix.rstrip('/')}/{job.job_id}/".lstrip("/")
        in_tokens = 0
        started = time.monotonic()
        stopped = partial = False
        for key, records in files:
            lines: list[str] = []
            for record in records:
                if job.stop_requested.is_set():
                    stopped = True
                    break
                if limit is not None and job.processed >= limit:
                    partial = True
                    break
                if speed:
                    time.sleep(max(0.0, started + job.processed / speed - time.monotonic()))
                record_id = str(record.get("recordId") or uuid.uuid4().hex[:11].upper())
                result: dict[str, Any] = {"recordId": record_id, "modelInput": record["modelInput"]}
                try:
                    if record_id in fail_ids:
                        raise BedrockError(
                            500,
                            "InternalServerException",
                            "Internal error (LocalBedrock injected).",
                        )
                    output, tokens = _titan_output(record["modelInput"])
                    result["modelOutput"] = output
                    in_tokens += tokens
                    ok = True
                except BedrockError as err:
                    result["error"] = {"errorCode": err.status, "errorMessage": err.message}
                    ok = False
                lines.append(json.dumps(result))
                with self._lock:
                    job.processed += 1
                    job.succeeded += ok
                    job.errors += not ok
            name = key.rsplit("/", 1)[-1]
            s3.put_object(
                Bucket=out_bucket, Key=f"{folder}{name}.out", Body="\n".join(lines).encode() + b"\n"
            )
            if stopped or partial:
                break
        manifest = {
            "totalRecordCount": job.total,
            "processedRecordCount": job.processed,
            "successRecordCount": job.succeeded,
            "errorRecordCount": job.errors,
            "inputTokenCount": in_tokens,
            "outputTokenCount": 0,
        }
        s3.put_object(
            Bucket=out_bucket, Key=f"{folder}manifest.json.out", Body=json.dumps(manifest).encode()
        )
        if stopped:
            self._set(job, status="Stopped")
        elif partial:
            self._set(
                job,
                status="PartiallyCompleted",
                message="Not all records could be processed before the job timed out.",
            )
        else:
            self._set(job, status="Completed")


class _JobFailedError(Exception):
    """A job ends Failed with this message."""


def _titan_output(model_input: Any) -> tuple[dict[str, Any], int]:
    """InvokeModel's Titan V2 response body for one record, and its input token count."""
    text, dims, normalize, types = validate_titan(model_input)
    tokens = models.count_tokens(text)
    if tokens > _MAX_TITAN_TOKENS:
        raise BedrockError(
            400,
            "ValidationException",
            f"400 Bad Request: Too many input tokens. Max input tokens: {_MAX_TITAN_TOKENS}, "
            f"request input token count: {tokens}",
        )
    vector = models.embed(text, dims, normalize=normalize)
    by_type: dict[str, Any] = {}
    if "float" in types:
        by_type["float"] = vector
    if "binary" in types:
        by_type["binary"] = models.binary(vector)
    return {"embedding": vector, "inputTextTokenCount": tokens, "embeddingsByType": by_type}, tokens
