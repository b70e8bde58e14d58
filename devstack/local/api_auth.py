"""What the offline gateway checks before a route's function runs: a JWT authorizer, or AWS_IAM.

JWT (as API Gateway's JWT authorizer does it): the `Authorization` header's token ("Bearer "
optional) must be an RS256 JWT signed by a key of the issuer's JWKS (found through the issuer's
OpenID discovery document; a Cognito issuer is served by the moto server, which issues the
user pool's tokens), with `iss` the configured issuer, `exp` in the future and `nbf`/`iat` not
in it, and `aud` (ID tokens) or `client_id` (access tokens) one of the configured audiences.
Missing or failing: 401. Passing: the claims, as strings, in requestContext.authorizer.jwt.

AWS_IAM: the request must carry a SigV4 signature for `execute-api` that recomputes with the
secret of its access key, dated within 15 minutes. The only keys known offline are the offline
stack's (`offline`/`offline`, local.stack.offline_session), so a signature made with anything else
fails, as does an unsigned request: 403. IAM policies are not evaluated (moto holds none for the
caller): any correctly signed request passes, and the caller's ARN is derived from its access key.
docs/review.md lists what is and is not enforced.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from local.cfn import ACCOUNT_ID
from local.provision import RouteAuth

# The offline stack's credentials: what `make local-up` tells operators to export.
OFFLINE_CREDENTIALS = {"offline": "offline"}
SIGNATURE_MAX_AGE_SECONDS = 15 * 60
_COGNITO_ISSUER = re.compile(r"https://cognito-idp\.[a-z0-9-]+\.amazonaws\.com/(?P<pool>[^/]+)")
_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class Denied:
    status: int
    message: str


class RouteAuthorizer:
    """Checks requests against a route's RouteAuth; JWKS are fetched once per issuer."""

    def __init__(self, aws_endpoint_url: str) -> None:
        self._aws_endpoint_url = aws_endpoint_url.rstrip("/")
        self._key_sets: dict[str, KeySet] = {}
        self._lock = threading.Lock()

    def check(
        self, auth: RouteAuth, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, Any] | Denied:
        """The requestContext.authorizer entry for an allowed request, or why it is refused."""
        if auth.kind == "jwt":
            return self._jwt(auth, headers)
        return self._iam(method, url, headers, body)

    # --- JWT ------------------------------------------------------------------------------

    def _jwt(self, auth: RouteAuth, headers: Mapping[str, str]) -> dict[str, Any] | Denied:
        value = headers.get("authorization", "")
        token = value[7:] if value[:7].lower() == "bearer " else value
        if not token or auth.issuer is None:
            return Denied(401, "Unauthorized")
        try:
            decoded = jwt.decode(token, self._key_set(auth.issuer), algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": auth.issuer}, exp={"essential": True}, nbf={}, iat={}
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            return Denied(401, "Unauthorized")
        claims = decoded.claims
        audiences = claims.get("aud") or claims.get("client_id")
        given = audiences if isinstance(audiences, list) else [audiences]
        if not set(map(str, given)) & set(auth.audience):
            return Denied(401, "Unauthorized")
        # API Gateway hands claims on as strings; lists become "[a b]".
        as_strings = {
            name: f"[{' '.join(map(str, v))}]" if isinstance(v, list) else str(v) for name, v in claims.items()
        }
        return {"jwt": {"claims": as_strings, "scopes": None}}

    def _key_set(self, issuer: str) -> KeySet:
        with self._lock:
            if issuer not in self._key_sets:
                self._key_sets[issuer] = KeySet.import_key_set(_get_json(self._jwks_url(issuer)))
            return self._key_sets[issuer]

    def _jwks_url(self, issuer: str) -> str:
        """The issuer's jwks_uri from its discovery document; a Cognito issuer's is in the moto server."""
        cognito = _COGNITO_ISSUER.fullmatch(issuer)
        base = f"{self._aws_endpoint_url}/{cognito['pool']}" if cognito else issuer.rstrip("/")
        return str(_get_json(f"{base}/.well-known/openid-configuration")["jwks_uri"])

    # --- AWS_IAM --------------------------------------------------------------------------

    def _iam(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any] | Denied:
        parsed = _SIGV4.fullmatch(headers.get("authorization", "").strip())
        if parsed is None:
            return Denied(403, "Forbidden")
        secret = OFFLINE_CREDENTIALS.get(parsed["key"])
        if secret is None or parsed["service"] != "execute-api":
            return Denied(403, "The security token included in the request is invalid.")
        signed = parsed["headers"].split(";")
        if "x-amz-date" not in signed or any(name not in headers for name in signed):
            return Denied(403, "Forbidden")
        try:
            stamp = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return Denied(403, "Forbidden")
        if abs(time.time() - stamp.timestamp()) > SIGNATURE_MAX_AGE_SECONDS:
            return Denied(403, "Signature expired")
        request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in signed})
        request.context["timestamp"] = headers["x-amz-date"]
        credentials = Credentials(parsed["key"], secret, headers.get("x-amz-security-token"))
        signer = SigV4Auth(credentials, "execute-api", parsed["region"])
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        if not hmac.compare_digest(expected, parsed["signature"]):
            return Denied(403, "The request signature we calculated does not match the signature you provided.")
        user_arn = f"arn:aws:iam::{ACCOUNT_ID}:user/{parsed['key']}"
        return {
            "iam": {
                "accessKey": parsed["key"],
                "accountId": ACCOUNT_ID,
                "callerId": parsed["key"],
                "principalOrgId": None,
                "userArn": user_arn,
                "userId": parsed["key"],
            }
        }


def _get_json(url: str) -> Any:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (scheme checked above)
        return json.loads(response.read())
