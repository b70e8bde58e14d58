"""Who retries what when SendMessageBatch fails: botocore the whole call, ArticleQueue the entries."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from botocore.awsrequest import AWSRequest
from botocore.exceptions import EndpointConnectionError

from tests.support.categorize import article
from tests.support.ingest import IngestStack, post


class UnreachableSendMessageBatch:
    """SendMessageBatch cannot connect for the first `failures` calls, then moto answers.

    Raised from the operation's own `before-send` event, which runs before moto's catch-all one,
    so a failed call never reaches moto (an HTTP 500 returned here would not stop moto from
    also handling the request).
    """

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, request: AWSRequest, **_: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise EndpointConnectionError(endpoint_url=str(request.url))


def _unreachable(ingest: ModuleType, failures: int) -> UnreachableSendMessageBatch:
    failing = UnreachableSendMessageBatch(failures)
    ingest.sqs.meta.events.register("before-send.sqs.SendMessageBatch", failing)
    return failing


def test_botocore_retries_a_failed_call_and_the_articles_are_queued_once(
    ingest: ModuleType, ingest_stack: IngestStack
) -> None:
    # GIVEN the first two SendMessageBatch calls cannot connect to SQS
    failing = _unreachable(ingest, failures=2)
    # WHEN a batch of two articles is posted
    result = post(ingest, [article("r-1"), article("r-2")])
    # THEN botocore's retries got it through: 202, each article queued once, three calls in all
    assert result.status == 202 and result.body["count"] == 2
    assert sorted(m["article_id"] for m in ingest_stack.queued()) == ["r-1", "r-2"]
    assert failing.calls == 3


def test_a_call_that_keeps_failing_is_retried_by_botocore_alone_then_answered_503(
    ingest: ModuleType, ingest_stack: IngestStack
) -> None:
    # GIVEN no SendMessageBatch call can connect to SQS
    failing = _unreachable(ingest, failures=99)
    # WHEN a batch is posted
    result = post(ingest, [article("f-1"), article("f-2")])
    # THEN 503 lists both as failed, nothing is queued, and the call was made exactly
    # total_max_attempts (3) times: no hand-written retry loop multiplies botocore's attempts
    assert result.status == 503 and result.headers["Retry-After"] == "5"
    assert result.body["accepted"] == []
    assert [(f["article_id"], f["reason"]) for f in result.body["failed"]] == [
        ("f-1", "EndpointConnectionError"),
        ("f-2", "EndpointConnectionError"),
    ]
    assert ingest_stack.queued() == []
    assert failing.calls == 3
