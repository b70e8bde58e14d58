"""`tools review`: SigV4-signed calls to the /admin/review routes, and the export of label lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx2
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from moto import mock_aws

from tests.support.lambda_env import LambdaContext
from tests.support.review import ReviewStack, api_event, create_review_stack, load_review
from tools import review

API_URL = "https://review.execute-api.us-east-1.amazonaws.com"
CALLER = "arn:aws:iam::123456789012:user/operator"


@pytest.fixture
def review_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReviewStack]:
    with mock_aws():
        yield create_review_stack(monkeypatch)


def _printed(out: str, multiline: bool = False) -> list[dict[str, Any]]:
    """The command's JSON output; the handler, run in this process, prints its EMF metrics and logs too."""
    if multiline:
        start = out.index("{\n")
        return [json.loads(out[start : out.index("\n}", start) + 2])]
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" not in line and "level" not in line]


def _iam_gateway(app: ModuleType, seen: list[httpx2.Request]) -> httpx2.Client:
    """Requests reach the handler as API Gateway would pass them once their SigV4 signature checks out."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        # The signature must recompute with the caller's credentials (moto's fake ones, inside mock_aws).
        signed = request.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
        check = AWSRequest(
            method=request.method,
            url=str(request.url),
            data=request.content,
            headers={name: request.headers[name] for name in signed},
        )
        check.context["timestamp"] = request.headers["x-amz-date"]
        credentials = boto3.Session().get_credentials()
        assert credentials is not None
        signer = SigV4Auth(credentials, "execute-api", "us-east-1")
        expected = signer.signature(signer.string_to_sign(check, signer.canonical_request(check)), check)
        if not request.headers["authorization"].endswith(f"Signature={expected}"):
            return httpx2.Response(403, json={"message": "signature mismatch"})
        query = dict(request.url.params)
        event = api_event(
            request.method,
            request.url.raw_path.decode().split("?")[0],
            body=request.content.decode() or None,
            query=query or None,
            iam_arn=CALLER,
        )
        response = app.lambda_handler(event, LambdaContext("ReviewFunction"))
        return httpx2.Response(response["statusCode"], content=response["body"].encode())

    return httpx2.Client(transport=httpx2.MockTransport(handle))


def test_list_show_and_correct_go_through_the_signed_admin_routes(
    review_stack: ReviewStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two queued results, one with "/" in its id
    review_stack.categorize("site/a-1", 0.3)
    review_stack.categorize("a-2", 0.4)
    app, seen = load_review(), list[httpx2.Request]()
    run = lambda *argv: review.main(["--url", API_URL, *argv], client_factory=lambda: _iam_gateway(app, seen))  # noqa: E731
    # WHEN the operator lists the queue
    assert run("list") == 0
    listed = _printed(capsys.readouterr().out)
    # THEN both items come back oldest first, without their texts, through a signed /admin route
    assert [item["article_id"] for item in listed] == ["site/a-1", "a-2"]
    assert all("text" not in item for item in listed)
    assert seen[0].url.path == "/admin/review/items" and "execute-api" in seen[0].headers["authorization"]
    # WHEN they show and correct the first
    assert run("show", "site/a-1") == 0
    [shown] = _printed(capsys.readouterr().out, multiline=True)
    assert shown["text"] == "What the model read of site/a-1 at revision 1."
    assert run("correct", "site/a-1", "sports") == 0
    # THEN the decision is recorded as the caller's ARN, the id travelled as one encoded segment
    [decided] = _printed(capsys.readouterr().out)
    assert decided["review"]["by"] == CALLER
    assert seen[-1].url.raw_path == b"/admin/review/items/site%2Fa-1/decision"
    assert review_stack.row("site/a-1")["corrected_by"] == CALLER
    # AND a refused decision exits 1 with the API's reason
    assert run("accept", "site/a-1") == 1
    assert "HTTP 409" in capsys.readouterr().err


def test_export_writes_the_reviewed_label_lines(review_stack: ReviewStack, tmp_path: Path) -> None:
    # GIVEN two reviewed items and one skipped
    app = load_review()
    for article_id, decision in (
        ("e-1", {"decision": "accept"}),
        ("e-2", {"decision": "correct", "category_id": "sports"}),
        ("e-3", {"decision": "skip"}),
    ):
        review_stack.categorize(article_id, 0.3)
        event = api_event(
            "POST", f"/review/items/{article_id}/decision", body=decision, claims={"email": "e@x.example"}
        )
        assert app.lambda_handler(event, LambdaContext("ReviewFunction"))["statusCode"] == 200
    out = tmp_path / "reviewed.jsonl"
    # WHEN they are exported
    assert review.main(["export", "--bucket", "pipeline", "--out", str(out)]) == 0
    # THEN the file holds one line per accepted or corrected item
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((line["article_id"], line["category_id"]) for line in lines) == [
        ("e-1", "technology"),
        ("e-2", "sports"),
    ]
