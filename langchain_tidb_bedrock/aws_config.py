"""AWS settings checks that fail early with a message naming the fix.

botocore's own errors (``NoRegionError``, ``NoCredentialsError``) surface at the first call, deep in
a traceback; these helpers run in the constructors instead. The credential check uses botocore's
whole provider chain, so EC2 instance profiles and ECS/EKS container roles count: the container
provider only calls out when ``AWS_CONTAINER_CREDENTIALS_*_URI`` is set, and the instance-metadata
probe gets a short timeout and a single attempt (skipped when ``AWS_EC2_METADATA_DISABLED=true``).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import botocore.session
from botocore.exceptions import BotoCoreError

from langchain_tidb_bedrock.errors import BedrockConfigError

__all__ = [
    "BedrockConfigError",
    "aws_is_configured",
    "credentials_available",
    "is_local_endpoint",
    "local_endpoint_settings",
    "require_aws",
    "resolve_endpoint",
    "resolve_region",
]

# botocore's standard endpoint variables, the service-specific one first.
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL")
# Any of these means the user meant real AWS: missing pieces are then an error, not a fallback.
_AWS_INTENT_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)

_FIX = (
    "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary "
    "credentials), or AWS_PROFILE for a named profile, or AWS_BEARER_TOKEN_BEDROCK for a Bedrock "
    "API key; and AWS_REGION (e.g. us-east-1). To work offline, run the local stand-in "
    "(`python -m langchain_tidb_bedrock.local bedrock`, or LocalBedrock in tests) and point the "
    "client at it with endpoint_url / --bedrock-endpoint-url."
)


def is_local_endpoint(endpoint_url: str | None) -> bool:
    """Whether ``endpoint_url`` points at this machine (e.g. a LocalBedrock)."""
    if not endpoint_url:
        return False
    host = urlsplit(endpoint_url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def local_endpoint_settings(
    region_name: str | None, profile: str | None, *, has_keys: bool
) -> tuple[str, bool]:
    """Region and whether to sign with placeholder keys, for a LocalBedrock endpoint.

    A LocalBedrock does not check signatures, so with no credentials anywhere the clients sign
    with placeholders, and the region defaults to us-east-1.
    """
    region = (
        region_name
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    return region, not has_keys and not credentials_available(profile)


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


# The instance-metadata (IMDS) probe for this check: one attempt, 1 s timeout (botocore's default
# is also 1 s, but users may raise it; off EC2 the probe fails fast either way).
_IMDS_TIMEOUT = 1
_IMDS_ATTEMPTS = 1


def _imds_disabled() -> bool:
    return os.environ.get("AWS_EC2_METADATA_DISABLED", "false").strip().lower() == "true"


def credentials_available(profile: str | None = None) -> bool:
    """Whether botocore's credential chain resolves credentials (or a Bedrock API key is set).

    Env keys, profiles, SSO, web identity, container roles (ECS/EKS, only when
    ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` / ``_FULL_URI`` is set) and EC2 instance profiles
    all count. The instance-metadata probe uses a 1 s timeout and one attempt, and is skipped when
    ``AWS_EC2_METADATA_DISABLED=true``.
    """
    if os.environ.get("AWS_BEARER_TOKEN_BEDROCK"):
        return True
    try:
        session = _session(profile)
        # Read by botocore when it builds the resolver (below), for this check only.
        session.set_config_variable("metadata_service_timeout", _IMDS_TIMEOUT)
        session.set_config_variable("metadata_service_num_attempts", _IMDS_ATTEMPTS)
        resolver = session.get_component("credential_provider")
        if _imds_disabled():
            resolver.remove("iam-role")
        return resolver.load_credentials() is not None
    except BotoCoreError:
        return False


def aws_is_configured(region_name: str | None = None, profile: str | None = None) -> bool:
    """Whether a region and credentials for Bedrock are resolvable (see credentials_available)."""
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


def _aws_files_exist() -> bool:
    home = os.path.expanduser("~")
    paths = (
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials"),
        os.environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config"),
    )
    return any(os.path.isfile(p) for p in paths)


def resolve_endpoint(
    endpoint_url: str | None,
    region_name: str | None = None,
    profile: str | None = None,
    *,
    has_keys: bool = False,
) -> str | None:
    """The bedrock-runtime endpoint a client should use; None means real AWS.

    The argument wins, then botocore's ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` /
    ``AWS_ENDPOINT_URL``. With no AWS setting at all (no region, keys, profile, token or AWS
    files), this process's LocalBedrock (started once, announced in one line on stderr): the
    library works offline by default, as the CLI does. Any AWS setting means real AWS, so a
    missing piece is reported by :func:`require_aws` instead of silently replaced.
    """
    if endpoint_url:
        return endpoint_url
    for name in _ENDPOINT_VARS:
        if os.environ.get(name):
            return os.environ[name]
    if region_name or profile or has_keys or _aws_files_exist():
        return None
    if any(os.environ.get(name) for name in _AWS_INTENT_VARS):
        return None
    from langchain_tidb_bedrock.local.offline import local_bedrock_endpoint

    return local_bedrock_endpoint()
