"""The few S3 operations batch inference needs, with errors that say what to fix.

Errors name the bucket and key prefix only: never credentials, never object contents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from langchain_tidb_bedrock.errors import BatchInferenceError, InvalidInputError

__all__ = ["BatchInferenceError", "S3Location", "parse_s3_uri"]

# Bucket naming rules (3-63 characters of a-z 0-9 . -, starting and ending with a letter or
# digit); Bedrock's S3Uri pattern also limits the key characters.
_BUCKET = re.compile(r"[a-z0-9][-.a-z0-9]{1,61}[a-z0-9]")
_KEY = re.compile(r"[-!_*'().a-zA-Z0-9/]*")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into ``(bucket, prefix)`` (no slashes at the prefix ends).

    Raises:
        ValueError: Not an ``s3://`` URI Bedrock accepts.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        msg = f"s3_uri must look like s3://bucket/prefix, got {uri!r}"
        raise InvalidInputError(msg)
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        msg = (
            f"{bucket!r} in s3_uri is not a valid S3 bucket name (3-63 lowercase letters, "
            "digits, '.' and '-')"
        )
        raise InvalidInputError(msg)
    prefix = prefix.strip("/")
    if not _KEY.fullmatch(prefix) or "//" in prefix:
        msg = (
            f"the key prefix {prefix!r} in s3_uri has characters Bedrock batch inference does "
            "not accept (use letters, digits and -!_*'(). separated by single '/')"
        )
        raise InvalidInputError(msg)
    return bucket, prefix


@dataclass
class S3Location:
    """A bucket and key prefix reached through one boto3 S3 client."""

    client: Any
    bucket: str
    prefix: str

    def uri(self, *parts: str) -> str:
        """``s3://bucket/prefix/part/...``."""
        key = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        return f"s3://{self.bucket}/{key}"

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under the prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def _fail(self, action: str, err: Exception) -> BatchInferenceError:
        code = ""
        if isinstance(err, ClientError):
            code = str(err.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            why = "the bucket does not exist (create it, or fix the s3:// URI)"
        elif code in ("403", "AccessDenied", "AllAccessDisabled"):
            why = "access denied (your credentials need s3:ListBucket, s3:GetObject, s3:PutObject)"
        else:
            why = f"{type(err).__name__} {code}".strip()
        return BatchInferenceError(f"S3 bucket {self.bucket!r}: cannot {action}: {why}")

    def check(self) -> None:
        """Fail early (before any upload) when the bucket is missing or not accessible.

        Raises:
            BatchInferenceError: The bucket does not exist or these credentials may not use it.
        """
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as err:
            raise self._fail("reach it", err) from err

    def put(self, key: str, data: bytes) -> None:
        """Write one object."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as err:
            raise self._fail(f"write under {self.prefix or '/'}", err) from err

    def get(self, key: str) -> bytes:
        """Read one object."""
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as err:
            raise self._fail(f"read under {self.prefix or '/'}", err) from err
        return body

    def keys(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix`` (a full key prefix), in S3's order."""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    yield str(obj["Key"])
        except (ClientError, BotoCoreError) as err:
            raise self._fail(f"list {prefix or '/'}", err) from err
