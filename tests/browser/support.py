"""The offline stack with a review queue to work through, and a reviewer who may sign in.

The demo model (fine-tuned by the pipeline, as `make local-up` does) categorises held-out demo
articles published through the signed webhook; `ReviewSampleShare` 1 queues every result, so the
queue holds each of them whatever the model's confidence. The reviewer is a user of the stack's
Cognito user pool (moto) with a permanent password, so the page's own sign-in form works.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from categorizer.textstore import encode_article_id
from local.demo_run import SEED, ensure_active_model, load_corpus, publish_articles, split_corpus
from local.stack import OfflineStack, StackOptions

REVIEWER_EMAIL = "editor@news.example"
PENDING_ARTICLES = 8
DRAIN_SECONDS = 120


@dataclass(frozen=True)
class Reviewer:
    email: str
    password: str


@dataclass
class ReviewStack:
    stack: OfflineStack
    page_url: str
    reviewer: Reviewer

    def id_token(self) -> str:
        """The reviewer's ID token, from the user pool's password flow (what the page's form does)."""
        outputs = self.stack.provisioned.outputs
        result = self.stack.client("cognito-idp").initiate_auth(
            ClientId=outputs["ReviewUserPoolClientId"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": self.reviewer.email, "PASSWORD": self.reviewer.password},
        )
        return str(result["AuthenticationResult"]["IdToken"])

    def api(self, path: str) -> Any:
        """GET a review route with the reviewer's token, as the page calls it."""
        response = httpx2.get(
            f"{self.page_url}{path}", headers={"Authorization": f"Bearer {self.id_token()}"}, timeout=30.0
        )
        response.raise_for_status()
        return response.json()

    def pending(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api("/items?limit=100")["items"]
        return items

    def row(self, article_id: str) -> dict[str, Any]:
        table = self.stack.session.resource("dynamodb", endpoint_url=self.stack.endpoints.aws_endpoint_url).Table(
            self.stack.provisioned.ref("ResultsTable")
        )
        item: dict[str, Any] = table.get_item(Key={"article_id": article_id}, ConsistentRead=True)["Item"]
        return item

    def label_lines(self, article_id: str) -> list[dict[str, Any]]:
        """The reviewed label lines written for an article (labels/reviewed/<date>/<id>-r<revision>.jsonl)."""
        s3 = self.stack.client("s3")
        bucket = self.stack.provisioned.ref("PipelineBucket")
        encoded = encode_article_id(article_id)
        lines: list[dict[str, Any]] = []
        for entry in s3.list_objects_v2(Bucket=bucket, Prefix="labels/reviewed/").get("Contents", []):
            if entry["Key"].rsplit("/", 1)[-1].startswith(f"{encoded}-r"):
                body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read().decode("utf-8")
                lines += [json.loads(line) for line in body.splitlines() if line.strip()]
        return lines


def create_reviewer(stack: OfflineStack) -> Reviewer:
    """An invited reviewer whose password is already permanent (no first sign-in challenge)."""
    cognito = stack.client("cognito-idp")
    pool_id = stack.provisioned.outputs["ReviewUserPoolId"]
    password = "Rv-" + secrets.token_urlsafe(12) + "a1A"
    cognito.admin_create_user(
        UserPoolId=pool_id,
        Username=REVIEWER_EMAIL,
        UserAttributes=[{"Name": "email", "Value": REVIEWER_EMAIL}, {"Name": "email_verified", "Value": "true"}],
        MessageAction="SUPPRESS",
    )
    cognito.admin_set_user_password(UserPoolId=pool_id, Username=REVIEWER_EMAIL, Password=password, Permanent=True)
    return Reviewer(REVIEWER_EMAIL, password)


@contextmanager
def review_stack_with_pending_items(state_dir: Path) -> Iterator[ReviewStack]:
    options = StackOptions(
        state_dir=state_dir, queue_visibility_timeout=10, parameter_overrides={"ReviewSampleShare": "1"}
    )
    with OfflineStack.start(options, progress=lambda _: None) as stack:
        ensure_active_model(stack)
        urls = stack.serve_http_apis(instances=1)
        stack.start_pollers()
        _, held_out = split_corpus(load_corpus(), 0.25, SEED)
        # Spread over the categories (the held-out list is grouped by category).
        articles = held_out[:: len(held_out) // PENDING_ARTICLES][:PENDING_ARTICLES]
        assert publish_articles(stack, articles) == PENDING_ARTICLES
        assert stack.wait_until_drained(DRAIN_SECONDS), "the published articles were not all categorised"
        yield ReviewStack(stack, f"{urls['ReviewApi']}/review", create_reviewer(stack))
