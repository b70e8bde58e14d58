"""`python -m tools sign-event EVENT.json`: re-sign an API Gateway event for IngestFunction.

The webhook refuses a signature older than SIGNATURE_TOLERANCE_SECONDS (300 s), so a committed
event (events/ingest-http.json) cannot carry a working one. This signs its body afresh with the
webhook secret, the way a CMS signs a request (`categorizer.ingest.signature_headers`), and
writes the event to stdout or a file, for `python -m local invoke IngestFunction -e FILE` or
`sam local invoke IngestFunction -e FILE` (docs/offline.md).

The secret comes from Secrets Manager (`--secret-arn`, or WEBHOOK_SECRET_ARN, at the endpoint
AWS_ENDPOINT_URL names, if any), from the running offline stack (`--stack offline`: the secret
`make local-up` created), or from the WEBHOOK_SECRET environment variable.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from categorizer.ingest import SignedRequest, sign, webhook_secrets
from categorizer.ingest.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tools.publish import load_secret
from tools.stack import StackOutputs, add_stack_argument


def event_body(event: dict[str, Any]) -> bytes:
    """The bytes IngestFunction verifies: the body as functions/ingest/app.py reads it."""
    raw = event.get("body") or ""
    return base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8", "surrogatepass")


def signed_request(event: dict[str, Any]) -> SignedRequest:
    """What IngestFunction verifies: the method, path and query string as API Gateway hands them over, and the body."""
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "POST")
    return SignedRequest(method, event.get("rawPath") or "/", event.get("rawQueryString") or "", event_body(event))


def sign_event(event: dict[str, Any], secret: bytes, now: float | None = None) -> dict[str, Any]:
    """A copy of the HTTP API (payload 2.0) event with fresh signature headers and request time."""
    signed_at = time.time() if now is None else now
    timestamp = str(int(signed_at))
    signature = sign(secret, timestamp, signed_request(event))
    fresh = {TIMESTAMP_HEADER.lower(): timestamp, SIGNATURE_HEADER.lower(): signature}
    # HTTP API events carry header names in lower case; drop any old signature whatever its case.
    headers = {name: value for name, value in (event.get("headers") or {}).items() if name.lower() not in fresh}
    request_context = dict(event.get("requestContext") or {})
    if request_context:
        request_context["timeEpoch"] = int(signed_at * 1000)
        request_context["time"] = datetime.fromtimestamp(signed_at, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return {**event, "headers": headers | fresh, "requestContext": request_context}


def offline_stack_secret(state_file: Path | None = None) -> bytes:
    """The webhook secret of the stack `make local-up` runs (found through its state file)."""
    from local.stack import STATE_FILE, OfflineStack  # a development tool: imported only for --stack offline

    stack = OfflineStack.attach(state_file or STATE_FILE)
    if stack is None:
        raise SystemExit("no offline stack is running: start one with `make local-up`")
    arn = stack.provisioned.parameters["WebhookSecretArn"]
    value = stack.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    return webhook_secrets(value)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools sign-event", description=__doc__)
    parser.add_argument("event", type=Path, help="an API Gateway HTTP API event (events/ingest-http.json)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--secret-arn", help="(or WEBHOOK_SECRET_ARN; default the stack's WebhookSecretArn output)")
    source.add_argument("--stack", choices=["offline"], help="the secret of the running offline stack")
    add_stack_argument(parser)
    parser.add_argument("-o", "--output", type=Path, help="write the signed event here (default: stdout)")
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text(encoding="utf-8"))
    secret = (
        offline_stack_secret()
        if args.stack == "offline"
        else load_secret(args.secret_arn, StackOutputs(args.stack_name))
    )
    signed = json.dumps(sign_event(event, secret), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(signed, encoding="utf-8")
    else:
        sys.stdout.write(signed)
    return 0
