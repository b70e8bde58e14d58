"""Results out on the offline stack: the stream → ChangeEventsFunction → bus → rule → SQS path, and the read API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2
import pytest

from categorizer.store import ResultStore
from local.stack import OfflineStack, StackOptions
from local.subscriber import Subscriber
from tests.support.read import iam_signed_headers, result

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    options = StackOptions(state_dir=tmp_path_factory.mktemp("state"), queue_visibility_timeout=10)
    with OfflineStack.start(options, progress=lambda _: None) as started:
        yield started


def test_row_changes_reach_a_subscriber_and_the_read_api_answers(stack: OfflineStack) -> None:
    # GIVEN a subscriber on the results bus and the stream consumer running
    subscriber = Subscriber(stack)
    urls = stack.serve_http_apis()
    stack.start_pollers()
    table = stack.session.resource("dynamodb", endpoint_url=stack.endpoints.aws_endpoint_url).Table(
        stack.provisioned.ref("ResultsTable")
    )
    store = ResultStore(lambda: table)
    # WHEN an article is categorised, its revision advances alone, its category changes, it is unpublished
    store.put_if_not_older(result("o-1", revision=1))
    store.advance_revision("o-1", 2, "h", "ft:gpt-4o-mini:acme::m1")
    store.put_if_not_older(result("o-1", revision=3, category_id="business", category_name="Business"))
    store.unpublish("o-1", 4)
    # THEN the subscriber receives exactly the three changes, in order
    received: list[dict[str, object]] = []
    deadline = time.monotonic() + 60
    while len(received) < 3 and time.monotonic() < deadline:
        received += subscriber.received()
        time.sleep(0.5)
    assert [(e["detail-type"], e["detail"]["revision"]) for e in received] == [  # type: ignore[index]
        ("ArticleCategorized", 1),
        ("ArticleCategoryChanged", 3),
        ("ArticleRemoved", 4),
    ]
    # AND the read API answers 410 for it, to a signed caller (its routes are AWS_IAM, checked offline too)
    url = urls["IngestApi"] + "/articles/o-1"
    assert httpx2.get(url, timeout=30.0).status_code == 403
    response = httpx2.get(url, headers=iam_signed_headers(url), timeout=30.0)
    assert response.status_code == 410 and response.json()["revision"] == 4
