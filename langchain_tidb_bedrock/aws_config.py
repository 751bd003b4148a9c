"""AWS settings checks that fail early with a message naming the fix.

botocore's own errors (``NoRegionError``, ``NoCredentialsError``) surface at the first call, deep in
a traceback; these helpers run in the constructors instead. Nothing here touches the network: the
instance-metadata and container credential providers are skipped.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import botocore.session
from botocore.exceptions import BotoCoreError

__all__ = [
    "BedrockConfigError",
    "aws_is_configured",
    "credentials_available",
    "is_local_endpoint",
    "require_aws",
    "resolve_region",
]

_FIX = (
    "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary "
    "credentials), or AWS_PROFILE for a named profile, or AWS_BEARER_TOKEN_BEDROCK for a Bedrock "
    "API key; and AWS_REGION (e.g. us-east-1). To work offline, run the local stand-in "
    "(`python -m langchain_tidb_bedrock.local bedrock`, or LocalBedrock in tests) and point the "
    "client at it with endpoint_url / --bedrock-endpoint-url."
)


class BedrockConfigError(RuntimeError):
    """AWS region or credentials for Bedrock are missing; the message says what to set."""


def is_local_endpoint(endpoint_url: str | None) -> bool:
    """Whether ``endpoint_url`` points at this machine (e.g. a LocalBedrock)."""
    if not endpoint_url:
        return False
    host = urlsplit(endpoint_url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _session(profile: str | None) -> botocore.session.Session:
    return botocore.session.Session(profile=profile)


def resolve_region(region_name: str | None = None, profile: str | None = None) -> str:
    """The region to use: the argument, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then the profile.

    Raises:
        BedrockConfigError: If no region is set anywhere.
    """
    region = region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        try:
            region = _session(profile).get_config_variable("region")
        except BotoCoreError:
            region = None
    if not region:
        msg = (
            "No AWS region configured for Amazon Bedrock. Pass region_name=..., or set "
            "AWS_REGION (e.g. `export AWS_REGION=us-east-1`) or AWS_DEFAULT_REGION. " + _FIX
        )
        raise BedrockConfigError(msg)
    return str(region)


def credentials_available(profile: str | None = None) -> bool:
    """Whether credentials resolve from env keys, a profile or a Bedrock API key, offline."""
    if os.environ.get("AWS_BEARER_TOKEN_BEDROCK"):
        return True
    try:
        session = _session(profile)
        resolver = session.get_component("credential_provider")
        for name in ("iam-role", "container-role"):  # the ones that would probe the network
            resolver.remove(name)
        return resolver.load_credentials() is not None
    except BotoCoreError:
        return False


def aws_is_configured(region_name: str | None = None, profile: str | None = None) -> bool:
    """Whether a region and credentials for Bedrock are resolvable without network access."""
    try:
        resolve_region(region_name, profile)
    except BedrockConfigError:
        return False
    return credentials_available(profile)


def require_aws(
    region_name: str | None = None,
    profile: str | None = None,
    *,
    has_explicit_keys: bool = False,
) -> str:
    """Check region and credentials; return the region.

    Args:
        region_name: Explicit region, if any.
        profile: Named profile, if any.
        has_explicit_keys: Keys were passed directly to the client (skip the credential lookup).

    Raises:
        BedrockConfigError: Naming the environment variables to set, or LocalBedrock.
    """
    region = resolve_region(region_name, profile)
    if not has_explicit_keys and not credentials_available(profile):
        where = f"profile {profile!r}" if profile else "the environment or ~/.aws"
        msg = f"No AWS credentials found for Amazon Bedrock in {where}. " + _FIX
        raise BedrockConfigError(msg)
    return region
