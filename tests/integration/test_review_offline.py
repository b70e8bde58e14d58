"""The review API through the offline gateway: the JWT authorizer on /review, AWS_IAM on /admin/review.

The reviewer's token comes from the stack's user pool in moto (`python -m local review-token`),
the operator's requests are signed with the offline stack's credentials by `tools review`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx2
import pytest

from categorizer.active_model import write_active_model
from categorizer.classifier import Classification
from categorizer.decoding import Decoded
from categorizer.models import ActiveModel, Prediction
from categorizer.service import build_result
from categorizer.store import ResultStore
from categorizer.taxonomy import bundled_taxonomy
from categorizer.textstore import StoredText, TextStore
from local.review_auth import DEMO_REVIEWER, reviewer_token
from local.stack import OfflineStack, StackOptions
from tests.support.read import iam_signed_headers
from tools import review

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TAXONOMY = bundled_taxonomy("demo-2")
ARTICLE = "site/2026/low-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    options = StackOptions(state_dir=tmp_path_factory.mktemp("state"), start_openai=False)
    with OfflineStack.start(options, progress=lambda _: None) as started:
        started.serve_http_apis(instances=1)
        started.record_outputs()
        yield started


def _queue_a_low_confidence_result(stack: OfflineStack) -> None:
    """A row and its text as the categorize function writes them."""
    write_active_model(
        stack.client("ssm"),
        stack.provisioned.parameters["ActiveModelParameterName"],
        ActiveModel(model_id="ft:demo", taxonomy_version=TAXONOMY.version),
    )
    s3 = stack.client("s3")
    text = StoredText(
        article_id=ARTICLE,
        revision=3,
        content_hash="h",
        title="A chip maker's quarter",
        body="The chip maker reported record revenue.",
        truncated=False,
        input_token_budget=1024,
        url="https://news.example/low-1",
    )
    TextStore(lambda: s3, stack.provisioned.ref("TextBucket")).put(text)
    predictions = [
        Prediction(label=c.label, category_id=c.id, name=c.name, probability=p)
        for c, p in ((TAXONOMY.by_id["technology"], 0.4), (TAXONOMY.by_id["business"], 0.35))
    ]
    answer = Classification(Decoded(predictions=predictions, coverage=0.9), "ft:demo", 50, 1, 1.0, 0, 0)
    resource = stack.session.resource("dynamodb", endpoint_url=stack.endpoints.aws_endpoint_url)
    rows = ResultStore(lambda: resource.Table(stack.provisioned.ref("ResultsTable")))
    assert rows.put_if_not_older(build_result(text, "ft:demo", TAXONOMY, answer, 0.5, "live", 0.0))


def test_people_need_a_pool_token_and_the_tools_a_signature(
    stack: OfflineStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a low-confidence result in the queue, and the review API on the offline gateway
    _queue_a_low_confidence_result(stack)
    base = stack.local_outputs()["ReviewApiUrl"]
    items_url = f"{base}/review/items"
    with httpx2.Client(timeout=30) as http:
        # WHEN a person calls without a token, or with a forged one, THEN the gateway answers 401
        assert http.get(items_url).status_code == 401
        assert http.get(items_url, headers={"Authorization": "Bearer e30.e30.c2ln"}).status_code == 401
        # WHEN the demo reviewer signs in to the stack's user pool and lists the queue
        token = reviewer_token(stack)
        bearer = {"Authorization": f"Bearer {token}"}
        listed = http.get(items_url, headers=bearer)
        # THEN the item is there with the text the model read
        assert listed.status_code == 200, listed.text
        [item] = listed.json()["items"]
        assert (item["article_id"], item["reason"], item["text"]) == (
            ARTICLE,
            "low_confidence",
            "The chip maker reported record revenue.",
        )
        # AND the IAM routes refuse that token, an unsigned request and a wrong signature
        admin_url = f"{base}/admin/review/items"
        assert http.get(admin_url, headers=bearer).status_code == 403
        assert http.get(admin_url).status_code == 403
        assert http.get(admin_url, headers=iam_signed_headers(admin_url, secret="wrong")).status_code == 403
        assert http.get(admin_url, headers=iam_signed_headers(admin_url)).status_code == 200

        # WHEN the reviewer corrects the category
        decision_url = f"{base}/review/items/{quote(ARTICLE, safe='')}/decision"
        decided = http.post(decision_url, headers=bearer, json={"decision": "correct", "category_id": "business"})
        # THEN the row has the person's category, recorded with their address
        assert decided.status_code == 200, decided.text
        assert decided.json()["review"]["by"] == DEMO_REVIEWER
        assert decided.json()["category_id"] == "business"

    # AND the operator CLI, signing with the offline credentials, finds the queue empty and exports one line
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoints.aws_endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "offline")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "offline")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    capsys.readouterr()
    assert review.main(["list"]) == 0
    assert capsys.readouterr().out == ""
    assert review.main(["accept", ARTICLE]) == 1  # no longer pending: 409
    assert "HTTP 409" in capsys.readouterr().err
    assert review.main(["export"]) == 0
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    expected: dict[str, Any] = {"article_id": ARTICLE, "category_id": "business", "version": 3, "body_format": "text"}
    assert {key: line[key] for key in expected} == expected
    assert line["review"]["predicted_category_id"] == "technology"
