"""`python -m tools publish FILE.jsonl`: sign and send articles to `POST /articles` (backfills, manual tests).

The shared secret comes from Secrets Manager (`--secret-arn`, or WEBHOOK_SECRET_ARN, or the stack's
WebhookSecretArn output) or from the WEBHOOK_SECRET environment variable; never from the command
line, where `ps` would show it. The URL is `--url`, INGEST_URL or the stack's IngestUrl output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx2

from categorizer.ingest import signature_headers, webhook_secrets
from tools.stack import StackOutputs, add_stack_argument

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 599})  # 599: no HTTP response at all


@dataclass
class PublishSummary:
    batches: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "statuses": self.statuses,
            "errors": self.errors[:20],
        }


def load_secret(secret_arn: str | None, stack: StackOutputs) -> bytes:
    plain = os.environ.get("WEBHOOK_SECRET")
    if plain and not secret_arn and not os.environ.get("WEBHOOK_SECRET_ARN"):
        return webhook_secrets(plain)[0]
    arn = stack.resolve(secret_arn, "WEBHOOK_SECRET_ARN", "WebhookSecretArn")
    value = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    return webhook_secrets(value)[0]


def read_batches(path: Path, batch_size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                batch.append(json.loads(line))
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def post(client: httpx2.Client, url: str, secret: bytes, body: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", **signature_headers(secret, body, url)}
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx2.TransportError as error:
        return 599, {"message": f"{type(error).__name__}: {error}"}
    try:
        payload = response.json() if response.content else {}
    except json.JSONDecodeError:
        payload = {"message": response.text[:200]}
    return response.status_code, payload if isinstance(payload, dict) else {"response": payload}


def publish(
    client: httpx2.Client,
    url: str,
    secret: bytes,
    batches: Iterator[list[Any]],
    *,
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishSummary:
    summary = PublishSummary()
    for batch in batches:
        summary.batches += 1
        pending = batch
        for attempt in range(attempts):
            # Signed afresh on each attempt: the timestamp must stay inside the tolerance.
            body = json.dumps({"articles": pending}, ensure_ascii=False).encode("utf-8")
            status, payload = post(client, url, secret, body)
            summary.statuses[str(status)] = summary.statuses.get(str(status), 0) + 1
            summary.accepted += len(payload.get("accepted", [])) if status in (202, 503) else 0
            if status == 202:
                break
            if status == 503 and payload.get("failed"):
                failed_indexes = {f["index"] for f in payload["failed"]}
                pending = [item for index, item in enumerate(pending) if index in failed_indexes]
            if status not in RETRY_STATUSES or attempt == attempts - 1:
                if status == 400:
                    summary.rejected += len(pending)
                else:
                    summary.failed += len(pending)
                summary.errors.append({"batch": summary.batches, "status": status, "response": payload})
                break
            sleep(min(2.0**attempt, 30.0))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools publish", description=__doc__)
    parser.add_argument("file", type=Path, help="JSON Lines, one article (or CMS webhook item) per line")
    add_stack_argument(parser)
    parser.add_argument("--url", help="…/articles (or INGEST_URL; default the stack's IngestUrl output)")
    parser.add_argument("--secret-arn", help="(or WEBHOOK_SECRET_ARN; default the stack's WebhookSecretArn output)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--format", default="generic", help="payload adapter (generic, wordpress)")
    args = parser.parse_args(argv)
    stack = StackOutputs(args.stack_name)
    ingest_url = stack.resolve(args.url, "INGEST_URL", "IngestUrl")
    if not ingest_url.startswith(("https://", "http://")):
        parser.error(f"not an http(s) URL: {ingest_url}")
    url = ingest_url if args.format == "generic" else f"{ingest_url}?format={args.format}"
    with httpx2.Client(timeout=30.0) as client:
        summary = publish(client, url, load_secret(args.secret_arn, stack), read_batches(args.file, args.batch_size))
    json.dump(summary.to_json(), sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0 if summary.rejected == 0 and summary.failed == 0 else 1
