"""`python -m tools review list|show|accept|correct|skip|export`: the review queue from the command line.

Every command but `export` calls the review API's /admin/review routes, signed with SigV4 as the
caller's IAM identity (API Gateway's AWS_IAM authorizer; the decision records the caller's ARN),
so the CLI and the review page share one code path, its checks and its conditional writes
(docs/review.md). The URL is `--url`, REVIEW_API_URL or the stack's ReviewApiUrl output.

`export` reads the label lines under labels/reviewed/ in the pipeline bucket directly: they are
S3 objects already in the export format, and a Lambda response (6 MB at most) could not carry a
large export in one piece. The bucket is `--bucket`, PIPELINE_BUCKET or the stack's output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlencode

import boto3
import httpx2
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from categorizer.review.labels import ReviewLabels
from tools.stack import StackOutputs, add_stack_argument

ADMIN_PREFIX = "/admin/review"


class ReviewApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ReviewApi:
    """The /admin/review routes, each request signed for execute-api."""

    def __init__(self, base_url: str, client: httpx2.Client, credentials: Credentials, region: str) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = client
        self._signer = SigV4Auth(credentials, "execute-api", region)

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        url = f"{self._base_url}{ADMIN_PREFIX}{path}"
        given = {key: value for key, value in (query or {}).items() if value is not None}
        if given:
            url += f"?{urlencode(given)}"
        data = json.dumps(body).encode() if body is not None else b""
        request = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
        self._signer.add_auth(request)
        response = self._client.request(method, url, content=data, headers=dict(request.headers.items()))
        payload = response.json() if response.content else {}
        if response.status_code >= 400:
            raise ReviewApiError(response.status_code, str(payload.get("message", response.text[:200])))
        return payload

    def pending(self, limit: int) -> Iterator[dict[str, Any]]:
        """Queued items oldest first, page after page, up to `limit` in all."""
        cursor: str | None = None
        left = limit
        while left > 0:
            page = self.call("GET", "/items", {"limit": min(left, 100), "cursor": cursor})
            yield from page["items"][:left]
            left -= len(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def item(self, article_id: str) -> Any:
        return self.call("GET", f"/items/{_segment(article_id)}")

    def decide(self, article_id: str, decision: str, category_id: str | None, revision: int | None) -> Any:
        body: dict[str, Any] = {"decision": decision}
        if category_id is not None:
            body["category_id"] = category_id
        if revision is not None:
            body["revision"] = revision
        return self.call("POST", f"/items/{_segment(article_id)}/decision", body=body)


def _segment(article_id: str) -> str:
    # An article id may hold "/": percent-encoded, it stays one path segment.
    return quote(article_id, safe="")


def _summary(item: dict[str, Any]) -> dict[str, Any]:
    """A list line: the item without the text."""
    return {key: value for key, value in item.items() if key != "text"}


def export(labels: ReviewLabels, out: TextIO) -> int:
    count = 0
    for line in labels.lines():
        out.write(line + "\n")
        count += 1
    return count


def _api(args: argparse.Namespace, stack: StackOutputs, client: httpx2.Client) -> ReviewApi:
    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise SystemExit("error: no AWS credentials to sign the request with")
    url = stack.resolve(args.url, "REVIEW_API_URL", "ReviewApiUrl")
    return ReviewApi(url, client, credentials, session.region_name or "us-east-1")


def main(argv: list[str] | None = None, client_factory: Callable[[], httpx2.Client] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools review", description=__doc__)
    add_stack_argument(parser)
    parser.add_argument("--url", help="the review API's base URL (or REVIEW_API_URL; default the stack's output)")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="pending items, oldest first (one JSON line each, without the text)")
    listing.add_argument("--limit", type=int, default=20)
    commands.add_parser("show", help="one item with the text the model read").add_argument("article_id")
    for name in ("accept", "skip"):
        decision = commands.add_parser(name, help=f"{name} the model's category")
        decision.add_argument("article_id")
        decision.add_argument("--revision", type=int, help="refuse (409) unless the row is at this revision")
    correct = commands.add_parser("correct", help="set the category (writes a label line)")
    correct.add_argument("article_id")
    correct.add_argument("category_id")
    correct.add_argument("--revision", type=int, help="refuse (409) unless the row is at this revision")
    exporting = commands.add_parser("export", help="the reviewed label lines (JSONL) from labels/reviewed/")
    exporting.add_argument("--out", type=Path, help="file to write (default stdout)")
    exporting.add_argument("--bucket", help="(or PIPELINE_BUCKET; default the stack's PipelineBucketName output)")
    args = parser.parse_args(argv)
    stack = StackOutputs(args.stack_name)

    if args.command == "export":
        s3 = boto3.client("s3")
        labels = ReviewLabels(lambda: s3, stack.resolve(args.bucket, "PIPELINE_BUCKET", "PipelineBucketName"))
        if args.out is None:
            count = export(labels, sys.stdout)
        else:
            with args.out.open("w", encoding="utf-8") as out:
                count = export(labels, out)
        print(json.dumps({"exported": count}), file=sys.stderr)
        return 0

    with (client_factory or (lambda: httpx2.Client(timeout=30.0)))() as client:
        api = _api(args, stack, client)
        try:
            if args.command == "list":
                for item in api.pending(args.limit):
                    print(json.dumps(_summary(item), ensure_ascii=False))
            elif args.command == "show":
                print(json.dumps(api.item(args.article_id), ensure_ascii=False, indent=2))
            else:
                category = args.category_id if args.command == "correct" else None
                decided = api.decide(args.article_id, args.command, category, args.revision)
                print(json.dumps(_summary(decided), ensure_ascii=False))
        except ReviewApiError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return 0
