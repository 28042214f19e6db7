"""SigV4 signing of a Bedrock request with botocore's signer, credentials read from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sluicegate.config.schema import ProviderConfig
from sluicegate.errors import ErrorClass, UpstreamError


def credentials(config: ProviderConfig, environ: Mapping[str, str] = os.environ) -> Credentials:
    access_key = environ.get(config.aws_access_key_id_env)
    secret_key = environ.get(config.aws_secret_access_key_env)
    if not access_key or not secret_key:
        raise UpstreamError(
            ErrorClass.AUTH,
            f"no AWS credentials: set {config.aws_access_key_id_env} and {config.aws_secret_access_key_env}",
        )
    return Credentials(access_key, secret_key, environ.get(config.aws_session_token_env) or None)


def region_of(config: ProviderConfig) -> str:
    if config.aws_region:
        return config.aws_region
    host = config.base_url.split("://", 1)[1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 3 and parts[0].startswith("bedrock"):
        return parts[1]
    raise UpstreamError(ErrorClass.AUTH, "set aws_region for this Bedrock provider (its URL names no region)")


def sign(url: str, body: bytes, headers: dict[str, str], creds: Credentials, region: str) -> dict[str, str]:
    """The headers with SigV4 `authorization`, `x-amz-date` (and the session token) added."""
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(creds, "bedrock", region).add_auth(request)
    return dict(request.headers.items())
