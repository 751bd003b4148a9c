"""Titan Text Embeddings V2 through Bedrock batch inference (model invocation jobs).

On-demand InvokeModel is capped by per-minute quotas (2,000 requests/min by default, 60 on some
new accounts). A batch inference job has no per-minute quota and costs half the on-demand price:
its input and output are JSONL files in S3. :class:`BedrockBatchEmbeddings` turns
``embed_documents`` into such jobs and returns the same vectors on-demand calls return.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from langchain_core.embeddings import Embeddings
from tqdm.auto import tqdm

from langchain_tidb_bedrock.aws_config import (
    is_local_endpoint,
    local_endpoint_settings,
    require_aws,
)
from langchain_tidb_bedrock.embeddings._s3 import BatchInferenceError, S3Location, parse_s3_uri
from langchain_tidb_bedrock.embeddings.titan import (
    DEFAULT_EMBEDDING_MODEL_ID,
    VALID_DIMENSIONS,
    BedrockTitanEmbeddings,
)
from langchain_tidb_bedrock.errors import InvalidInputError

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_JOB_BYTES",
    "MAX_RECORDS_PER_FILE",
    "MAX_RECORDS_PER_JOB",
    "MIN_RECORDS_PER_JOB",
    "BatchInferenceError",
    "BedrockBatchEmbeddings",
]

logger = logging.getLogger(__name__)

# Bedrock's default batch inference quotas (Service Quotas; some are adjustable per account).
MIN_RECORDS_PER_JOB = 100
MAX_RECORDS_PER_JOB = 50_000
MAX_RECORDS_PER_FILE = 50_000
MAX_FILE_BYTES = 1024**3  # 1 GiB per input file
MAX_JOB_BYTES = 5 * 1024**3  # 5 GiB per job
MAX_CONCURRENT_JOBS = 10  # submitted + in progress at once, per model

# botocore's RoleArn pattern from the bedrock service model.
_ROLE_ARN = re.compile(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+")
_RUNNING = frozenset({"Submitted", "Validating", "Scheduled", "InProgress", "Stopping"})
_FINISHED = frozenset({"Completed", "PartiallyCompleted"})
_JOB_PREFIX = "tidbbedrock-"
_FORMAT_VERSION = "1"  # part of every job's hash: change it when the record layout changes


@dataclass
class _Job:
    """One planned model invocation job: its records and where they live."""

    digest: str
    texts: list[str]  # unique prepared texts, record i = texts[i]
    files: list[bytes]  # JSONL input files
    arn: str | None = None
    status: str = ""
    processed: int = 0
    reused: bool = False
    vectors: dict[int, list[float]] = field(default_factory=dict)

    @property
    def base_name(self) -> str:
        return _JOB_PREFIX + self.digest


def _record_id(i: int) -> str:
    return f"R{i:010d}"  # Bedrock's 11-character alphanumeric record ids


def _job_name_attempt(name: str, base: str) -> int:
    """0 for ``base``, n for ``base-rn``, -1 for any other name."""
    if name == base:
        return 0
    head, sep, tail = name.rpartition("-r")
    return int(tail) if sep and head == base and tail.isdigit() else -1


class BedrockBatchEmbeddings(Embeddings):
    """Titan Text Embeddings V2 through Bedrock batch inference: no per-minute quota, half price.

    ``embed_documents`` writes the texts as JSONL records (``recordId``, ``modelInput`` = the
    InvokeModel body) under ``s3_uri``, starts model invocation jobs, polls them with a progress
    bar and reads the ``.jsonl.out`` files: the vectors come back in input order and equal what
    :class:`BedrockTitanEmbeddings` returns for the same settings. Records the job could not
    embed (``error`` in the output, or left unprocessed) are embedded on demand; each job's
    ``manifest.json.out`` counts are checked against what was read.

    Jobs are named after a hash of their content, so a rerun with the same texts picks up a
    finished or running job instead of paying twice; an interrupted run resumes. Inputs are split
    across files and jobs within the service's limits (50,000 records per file and per job, 1 GiB
    per file, 5 GiB per job). Below the 100-record job minimum, and for ``embed_query``, it
    embeds on demand (and says so once).

    Setup:
        An S3 bucket for input and output, and an IAM service role Bedrock can assume that may
        read and write it (see "Required permissions for batch inference" in the Bedrock user
        guide). Your own credentials need ``bedrock:CreateModelInvocationJob``,
        ``bedrock:GetModelInvocationJob``, ``bedrock:ListModelInvocationJobs``,
        ``iam:PassRole`` on the role, and S3 read/write on the prefix.

        ```bash
        pip install -U langchain-tidb-bedrock
        export AWS_REGION=us-east-1 AWS_PROFILE=...
        ```

        Offline: ``LocalS3`` and ``LocalBedrock(s3_endpoint_url=...)`` serve the same protocol.

    Key init args — batch params:
        s3_uri: str
            ``s3://bucket/prefix`` for the job inputs and outputs.
        role_arn: str
            The service role Bedrock assumes to read and write ``s3_uri``.
        poll_interval: float
            Seconds between job status checks (default 30; 0.5 against a local endpoint).
        timeout: float
            Seconds to wait for the jobs (default 72 hours); the jobs keep running after it, and
            a rerun picks them up.

    Key init args — embedding params:
        model_id: str
            Default ``amazon.titan-embed-text-v2:0``.
        dimensions: int
            256, 512 or 1024 (default 512).
        normalize: bool
            Titan's ``normalize`` flag (default True).

    Key init args — client params:
        region_name: str | None
            AWS region; falls back to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
        endpoint_url: str | None
            Bedrock endpoint for both the control plane and the on-demand runtime
            (e.g. a LocalBedrock).
        s3_endpoint_url: str | None
            S3 endpoint (e.g. a LocalS3).

    Instantiate:
        ```python
        from langchain_tidb_bedrock import BedrockBatchEmbeddings

        embeddings = BedrockBatchEmbeddings(
            "s3://my-bucket/embeddings",
            "arn:aws:iam::123456789012:role/BedrockBatchInference",
            dimensions=512,
        )
        ```

    Embed multiple texts:
        ```python
        vectors = embeddings.embed_documents(chunks)  # 100+ texts: one batch job per 50,000
        len(vectors), len(vectors[0])
        ```

        ```python
        (20000, 512)
        ```

    Embed single text:
        ```python
        vector = embeddings.embed_query("What is TiDB?")  # on demand
        ```
    """

    def __init__(
        self,
        s3_uri: str,
        role_arn: str,
        *,
        model_id: str = DEFAULT_EMBEDDING_MODEL_ID,
        dimensions: int = 512,
        normalize: bool = True,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        s3_endpoint_url: str | None = None,
        poll_interval: float | None = None,
        timeout: float = 72 * 3600.0,
        credentials_profile_name: str | None = None,
        show_progress: bool = True,
        max_concurrent_jobs: int = MAX_CONCURRENT_JOBS,
        min_records_per_job: int = MIN_RECORDS_PER_JOB,
        max_records_per_job: int = MAX_RECORDS_PER_JOB,
        max_records_per_file: int = MAX_RECORDS_PER_FILE,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_job_bytes: int = MAX_JOB_BYTES,
    ) -> None:
        # Argument errors first: they need no network and name the argument.
        bucket, prefix = parse_s3_uri(s3_uri)
        if not isinstance(role_arn, str) or not _ROLE_ARN.fullmatch(role_arn):
            msg = (
                f"role_arn must be an IAM role ARN like arn:aws:iam::123456789012:role/NAME, got "
                f"{role_arn!r}"
            )
            raise InvalidInputError(msg)
        if dimensions not in VALID_DIMENSIONS:
            msg = (
                f"dimensions must be one of {VALID_DIMENSIONS} for Titan Text V2, got {dimensions}"
            )
            raise InvalidInputError(msg)
        if poll_interval is None:
            # Real jobs run for minutes to hours; a local stand-in's finish in about a second.
            poll_interval = 0.5 if is_local_endpoint(endpoint_url) else 30.0
        if poll_interval <= 0 or timeout <= 0:
            msg = "poll_interval and timeout must be positive"
            raise InvalidInputError(msg)
        if not 1 <= min_records_per_job <= max_records_per_job:
            msg = "min_records_per_job must be between 1 and max_records_per_job"
            raise InvalidInputError(msg)
        if max_concurrent_jobs < 1 or max_records_per_file < 1:
            msg = "max_concurrent_jobs and max_records_per_file must be positive"
            raise InvalidInputError(msg)
        self.s3_uri, self.role_arn = s3_uri, role_arn
        self.model_id, self.dimensions, self.normalize = model_id, dimensions, normalize
        self.endpoint_url, self.s3_endpoint_url = endpoint_url, s3_endpoint_url
        self.poll_interval, self.timeout = poll_interval, timeout
        self.show_progress = show_progress
        self.max_concurrent_jobs = max_concurrent_jobs
        self.min_records_per_job = min_records_per_job
        self.max_records_per_job = max_records_per_job
        self.max_records_per_file = max_records_per_file
        self.max_file_bytes, self.max_job_bytes = max_file_bytes, max_job_bytes
        self._said_fallback = False
        self.last_run: dict[str, int] = {}
        """What the last ``embed_documents`` did: records, jobs_created, jobs_reused,
        files_uploaded, retried_on_demand, control_plane_requests."""

        placeholder = False
        if is_local_endpoint(endpoint_url):
            region, placeholder = local_endpoint_settings(
                region_name, credentials_profile_name, has_keys=False
            )
        else:
            region = require_aws(region_name, credentials_profile_name)
        self.region_name = region
        secret = "local" if placeholder else None  # LocalBedrock/LocalS3 check no signatures
        session = boto3.session.Session(
            aws_access_key_id=secret,
            aws_secret_access_key=secret,
            profile_name=credentials_profile_name,
            region_name=region,
        )
        # botocore's adaptive mode paces the control-plane calls if Bedrock throttles them.
        config = Config(retries={"mode": "adaptive", "total_max_attempts": 8})
        self._bedrock = session.client("bedrock", endpoint_url=endpoint_url, config=config)
        self._s3 = S3Location(
            session.client("s3", endpoint_url=s3_endpoint_url, config=config), bucket, prefix
        )
        self._on_demand = BedrockTitanEmbeddings(
            model_id=model_id,
            dimensions=dimensions,
            normalize=normalize,
            region_name=region,
            endpoint_url=endpoint_url,
            credentials_profile_name=credentials_profile_name,
        )

    ingest_batch_size = 100_000
    """Chunks per ``embed_documents`` call when ingesting (two full jobs; bounds memory)."""

    @classmethod
    def like(
        cls,
        embeddings: Embeddings | None,
        s3_uri: str,
        role_arn: str | None,
        **kwargs: Any,
    ) -> BedrockBatchEmbeddings:
        """Batch embeddings with the model, dimensions and endpoint of an on-demand client.

        Vectors from both then match, so a store keeps one vector space.

        Raises:
            ValueError: ``embeddings`` is not a :class:`BedrockTitanEmbeddings`, or no role.
        """
        if not isinstance(embeddings, BedrockTitanEmbeddings):
            msg = "batch inference needs a store whose embeddings are BedrockTitanEmbeddings"
            raise InvalidInputError(msg)
        if not role_arn:
            msg = "batch inference needs the ARN of a service role Bedrock can assume (role_arn)"
            raise InvalidInputError(msg)
        settings: dict[str, Any] = {
            "model_id": embeddings.model_id,
            "dimensions": embeddings.dimensions,
            "normalize": embeddings.normalize,
            "region_name": embeddings.region_name,
            "endpoint_url": embeddings.endpoint_url,
            "credentials_profile_name": embeddings.credentials_profile_name,
        }
        settings.update(kwargs)
        return cls(s3_uri, role_arn, **settings)

    @property
    def on_demand(self) -> BedrockTitanEmbeddings:
        """The on-demand client used for queries, small inputs and retried records."""
        return self._on_demand

    # ------------------------------------------------------------ public API

    def embed_query(self, text: str) -> list[float]:
        """Embed one query on demand (a batch job takes minutes at best)."""
        return self._on_demand.embed_query(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts through batch inference jobs; vectors in input order.

        Args:
            texts: Texts to embed; a text repeated in the list is embedded once.

        Returns:
            One vector per text, equal to what on-demand Titan returns for it.

        Raises:
            ValueError: An empty or non-string text (as on demand).
            BatchInferenceError: The bucket or Bedrock refused before anything was uploaded, a
                job failed or was stopped, or the jobs outlived ``timeout`` (rerun to resume).
        """
        self.last_run = dict.fromkeys(
            (
                "records",
                "jobs_created",
                "jobs_reused",
                "files_uploaded",
                "retried_on_demand",
                "control_plane_requests",
            ),
            0,
        )
        if len(set(texts)) < self.min_records_per_job:
            if texts and not self._said_fallback:
                logger.warning(
                    "%d distinct texts is below the batch inference minimum of %d records per "
                    "job: embedding them on demand",
                    len(set(texts)),
                    self.min_records_per_job,
                )
                self._said_fallback = True
            return self._on_demand.embed_documents(texts)
        # The on-demand client's checks and truncation, so both paths send the same bodies.
        prepared = self._on_demand._prepare(texts)
        positions: dict[str, list[int]] = {}
        for i, text in enumerate(prepared):
            positions.setdefault(text, []).append(i)
        unique = list(positions)
        self.last_run["records"] = len(unique)
        jobs = self._plan(unique)
        self._preflight()
        vectors = self._run(jobs)
        out: list[list[float]] = [[] for _ in prepared]
        for text, indices in positions.items():
            for i in indices:
                out[i] = vectors[text]
        return out

    # ------------------------------------------------------------ planning

    def _line(self, i: int, text: str) -> bytes:
        body = self._on_demand._body(text)  # the exact InvokeModel body on-demand sends
        return f'{{"recordId": "{_record_id(i)}", "modelInput": {body}}}\n'.encode()

    def _plan(self, texts: list[str]) -> list[_Job]:
        """Split texts into jobs and files within the limits; every job gets the minimum."""
        # Record ids are fixed-width, so a record's size does not depend on its position.
        lines = [self._line(0, t) for t in texts]
        groups: list[list[int]] = [[]]
        size = 0
        for i, line in enumerate(lines):
            if len(line) > self.max_file_bytes:
                msg = f"text at position {i} makes a batch record over the file size limit"
                raise InvalidInputError(msg)
            group = groups[-1]
            if group and (
                len(group) >= self.max_records_per_job or size + len(line) > self.max_job_bytes
            ):
                groups.append([])
                group, size = groups[-1], 0
            group.append(i)
            size += len(line)
        # A short last job shares the one before (which is full): two halves of at least
        # half a full job each, so both stay above the minimum at the service's limits.
        if len(groups) > 1 and len(groups[-1]) < self.min_records_per_job:
            merged = groups[-2] + groups[-1]
            groups[-2:] = [merged[: len(merged) // 2], merged[len(merged) // 2 :]]
        jobs = []
        for group in groups:
            job_texts = [texts[i] for i in group]
            files: list[bytes] = []
            current: list[bytes] = []
            current_size = 0
            for n, text in enumerate(job_texts):
                line = self._line(n, text)
                if current and (
                    len(current) >= self.max_records_per_file
                    or current_size + len(line) > self.max_file_bytes
                ):
                    files.append(b"".join(current))
                    current, current_size = [], 0
                current.append(line)
                current_size += len(line)
            files.append(b"".join(current))
            digest = hashlib.sha256()
            # The location is part of the identity: a job's output lives next to its input.
            where = f"{self._s3.uri()}\x00{self.model_id}\x00{_FORMAT_VERSION}".encode()
            for part in (where, *files):
                digest.update(part)
                digest.update(b"\x00")
            jobs.append(_Job(digest.hexdigest()[:40], job_texts, files))
        return jobs

    # ------------------------------------------------------------ control plane

    def _call(self, operation: str, **kwargs: Any) -> Any:
        self.last_run["control_plane_requests"] += 1
        return getattr(self._bedrock, operation)(**kwargs)

    def _bedrock_error(self, action: str, err: Exception) -> BatchInferenceError:
        if isinstance(err, ClientError):
            error = err.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", "")
            hint = ""
            if code == "AccessDeniedException":
                hint = (
                    " (your credentials need bedrock:*ModelInvocationJob* permissions and "
                    "iam:PassRole on the service role)"
                )
            return BatchInferenceError(f"Bedrock refused to {action}: {code}: {message}{hint}")
        return BatchInferenceError(f"Bedrock could not {action}: {type(err).__name__}: {err}")

    def _preflight(self) -> None:
        """One clear error before any upload: the bucket and Bedrock's job API must answer."""
        self._s3.check()
        try:
            self._call("list_model_invocation_jobs", maxResults=1)
        except (ClientError, BotoCoreError) as err:
            raise self._bedrock_error("list model invocation jobs", err) from err

    def _find(self, job: _Job) -> tuple[dict[str, Any] | None, int]:
        """The newest job with this content (or None), and the highest attempt number seen."""
        found: list[tuple[int, dict[str, Any]]] = []
        kwargs: dict[str, Any] = {"nameContains": job.base_name, "maxResults": 1000}
        try:
            while True:
                page = self._call("list_model_invocation_jobs", **kwargs)
                for summary in page.get("invocationJobSummaries", []):
                    attempt = _job_name_attempt(summary.get("jobName", ""), job.base_name)
                    if attempt >= 0:
                        found.append((attempt, summary))
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        except (ClientError, BotoCoreError) as err:
            raise self._bedrock_error("list model invocation jobs", err) from err
        if not found:
            return None, -1
        found.sort(key=lambda item: item[0])
        return found[-1][1], found[-1][0]

    def _submit(self, job: _Job, attempt: int) -> None:
        folder = self._s3.key(job.digest)
        for n, data in enumerate(job.files):
            self._s3.put(f"{folder}/input/part-{n:05d}.jsonl", data)
            self.last_run["files_uploaded"] += 1
        name = job.base_name if attempt == 0 else f"{job.base_name}-r{attempt}"
        try:
            response = self._call(
                "create_model_invocation_job",
                jobName=name,
                roleArn=self.role_arn,
                clientRequestToken=name,  # a retried request is the same job
                modelId=self.model_id,
                inputDataConfig={
                    "s3InputDataConfig": {
                        "s3Uri": self._s3.uri(job.digest, "input") + "/",
                        "s3InputFormat": "JSONL",
                    }
                },
                outputDataConfig={
                    "s3OutputDataConfig": {"s3Uri": self._s3.uri(job.digest, "output") + "/"}
                },
            )
        except (ClientError, BotoCoreError) as err:
            raise self._bedrock_error(f"create batch inference job {name}", err) from err
        job.arn, job.status = response["jobArn"], "Submitted"
        self.last_run["jobs_created"] += 1

    def _start(self, job: _Job) -> None:
        """Attach to a running or finished job with this content, else upload and submit."""
        existing, attempt = self._find(job)
        if existing is not None and existing.get("status") in _RUNNING | _FINISHED:
            job.arn, job.status = existing["jobArn"], str(existing["status"])
            job.reused = True
            self.last_run["jobs_reused"] += 1
            logger.info("resuming batch inference job %s (%s)", existing["jobName"], job.status)
            return
        # A job that failed, stopped or expired in an earlier run is submitted once more.
        self._submit(job, attempt + 1)

    # ------------------------------------------------------------ running

    def _run(self, jobs: list[_Job]) -> dict[str, list[float]]:
        pending = list(jobs)
        active: list[_Job] = []
        done: list[_Job] = []
        total = sum(len(j.texts) for j in jobs)
        deadline = time.monotonic() + self.timeout
        with tqdm(
            total=total, unit="record", desc="Batch inference", disable=not self.show_progress
        ) as bar:
            while pending or active:
                while pending and len(active) < self.max_concurrent_jobs:
                    job = pending.pop(0)
                    try:
                        self._start(job)
                    except BatchInferenceError as err:
                        if "ServiceQuotaExceededException" in str(err) and active:
                            pending.insert(0, job)  # wait for a running job to finish
                            break
                        raise
                    active.append(job)
                for job in list(active):
                    if job.status not in _FINISHED:
                        self._poll(job)
                    if job.status in _FINISHED:
                        active.remove(job)
                        self._collect(job)
                        done.append(job)
                bar.n = sum(j.processed for j in (*active, *done))
                bar.refresh()
                if not (pending or active):
                    break
                if time.monotonic() > deadline:
                    names = ", ".join(j.base_name for j in active)
                    msg = (
                        f"batch inference jobs still running after {self.timeout:.0f} s: {names}. "
                        "They keep running; run again with the same texts to pick them up."
                    )
                    raise BatchInferenceError(msg)
                time.sleep(self.poll_interval)
            bar.n = total
            bar.refresh()
        vectors: dict[str, list[float]] = {}
        missing: list[str] = []
        for job in done:
            for i, text in enumerate(job.texts):
                vector = job.vectors.get(i)
                if vector is None:
                    missing.append(text)
                else:
                    vectors[text] = vector
        if missing:
            logger.warning(
                "%d of %d records were not embedded by the batch job; embedding them on demand",
                len(missing),
                total,
            )
            self.last_run["retried_on_demand"] = len(missing)
            for text, vector in zip(missing, self._on_demand.embed_documents(missing), strict=True):
                vectors[text] = vector
        return vectors

    def _poll(self, job: _Job) -> None:
        try:
            state = self._call("get_model_invocation_job", jobIdentifier=job.arn)
        except (ClientError, BotoCoreError) as err:
            raise self._bedrock_error(f"describe batch inference job {job.base_name}", err) from err
        job.status = str(state.get("status", ""))
        job.processed = int(state.get("processedRecordCount") or 0)
        if job.status in _RUNNING | _FINISHED:
            return
        # Failed, Stopped, Expired: the run stops here; a rerun submits this job again.
        reason = state.get("message") or "no message"
        msg = (
            f"batch inference job {state.get('jobName', job.base_name)} ended {job.status}: "
            f"{reason}. Other jobs of this run keep going; run again to resume."
        )
        raise BatchInferenceError(msg)

    def _collect(self, job: _Job) -> None:
        """Read the job's ``.jsonl.out`` files and check them against ``manifest.json.out``."""
        output = self._s3.key(job.digest, "output") + "/"
        keys = list(self._s3.keys(output))
        manifest: dict[str, Any] | None = None
        errors = 0
        for key in keys:
            if key.endswith("manifest.json.out"):
                manifest = json.loads(self._s3.get(key))
            elif key.endswith(".jsonl.out"):
                for line in self._s3.get(key).decode("utf-8").splitlines():
                    if line.strip():
                        errors += self._read_record(job, json.loads(line))
        job.processed = len(job.texts)
        if manifest is None:
            logger.warning("batch job %s wrote no manifest.json.out", job.base_name)
            return
        total = int(manifest.get("totalRecordCount", -1))
        if total != len(job.texts):
            msg = (
                f"batch inference job {job.base_name}: manifest.json.out counts {total} records, "
                f"the job was given {len(job.texts)}"
            )
            raise BatchInferenceError(msg)
        succeeded = int(manifest.get("successRecordCount", -1))
        if succeeded != len(job.vectors) or int(manifest.get("errorRecordCount", -1)) != errors:
            logger.warning(
                "batch job %s: manifest.json.out says %s succeeded and %s failed; the output "
                "files hold %d vectors and %d errors (the rest are embedded on demand)",
                job.base_name,
                succeeded,
                manifest.get("errorRecordCount"),
                len(job.vectors),
                errors,
            )

    def _read_record(self, job: _Job, record: dict[str, Any]) -> int:
        """Store one output record's vector; returns 1 for an ``error`` record."""
        record_id = str(record.get("recordId", ""))
        if not (record_id.startswith("R") and record_id[1:].isdigit()):
            return 0
        index = int(record_id[1:])
        if index >= len(job.texts) or "error" in record:
            return 1 if "error" in record else 0
        output = record.get("modelOutput") or {}
        vector = output.get("embedding") or output.get("embeddingsByType", {}).get("float")
        if isinstance(vector, list) and len(vector) == self.dimensions:
            job.vectors[index] = vector
        return 0
