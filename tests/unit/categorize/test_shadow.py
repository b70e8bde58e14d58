"""Shadow traffic (categorizer.shadow): the candidate beside the active model, never failing its result."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any

import boto3
import httpx2
import pytest

from categorizer.active_model import write_active_model
from categorizer.models import ActiveModel, ShadowAnswer, ShadowConfig
from categorizer.shadow import selected
from categorizer.store import ResultStore
from tests.support.categorize import ACTIVE_MODEL_PARAMETER, MODEL_ID, TAXONOMY_VERSION, CategorizeStack, article
from tests.support.categorize import load_categorize as load_with_transport
from tests.support.lambda_env import LambdaContext, sqs_event
from tests.support.openai_http import FakeOpenAI, json_response, one_token_completion

CANDIDATE = "ft:gpt-4o-mini-2024-07-18:acme::candidate"
Candidate = Callable[[dict[str, Any]], Awaitable[httpx2.Response]]


async def _answers_label_7(body: dict[str, Any]) -> httpx2.Response:
    return json_response(one_token_completion(body["model"], [("7", 0.9), ("3", 0.1)], prompt_tokens=400))


def shadow_on(stack: CategorizeStack, share: float, model_id: str = CANDIDATE) -> None:
    record = ActiveModel(
        model_id=MODEL_ID,
        taxonomy_version=TAXONOMY_VERSION,
        shadow=ShadowConfig(model_id=model_id, share=share, started_at=datetime.now(UTC)),
    )
    write_active_model(stack.ssm, ACTIVE_MODEL_PARAMETER, record)


def load(fake_openai: FakeOpenAI, candidate: Candidate = _answers_label_7) -> tuple[ModuleType, list[dict[str, Any]]]:
    """The handler whose OpenAI answers the active model as `fake_openai` and the candidate as `candidate`."""
    candidate_requests: list[dict[str, Any]] = []

    async def route(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if body["model"] == MODEL_ID:
            return fake_openai.handle(request)
        candidate_requests.append(body)
        return await candidate(body)

    return load_with_transport(httpx2.MockTransport(route)), candidate_requests


def invoke(app: ModuleType, *bodies: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = app.lambda_handler(sqs_event(*bodies), LambdaContext())
    return response


def emf(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def metric_sum(blobs: list[dict[str, Any]], name: str) -> float:
    return sum(sum(blob[name]) if isinstance(blob[name], list) else blob[name] for blob in blobs if name in blob)


def shadowed_ids(count: int, share: float, revision: int = 1) -> list[str]:
    return [f"s-{i}" for i in range(count) if selected(f"s-{i}", revision, share)]


def test_selection_is_deterministic_per_article_revision_and_converges_to_the_share() -> None:
    # GIVEN 20,000 article revisions
    ids = [f"article-{i}" for i in range(20_000)]
    # WHEN selected at share 0.1, twice
    first = [selected(article_id, 7, 0.1) for article_id in ids]
    # THEN the choice repeats, about a tenth is chosen (±1 point: 4.7 standard deviations),
    # share 1 takes all, and another revision of the same article is chosen independently
    assert first == [selected(article_id, 7, 0.1) for article_id in ids]
    assert 0.09 < sum(first) / len(ids) < 0.11
    assert all(selected(article_id, 7, 1.0) for article_id in ids[:100])
    assert [selected(a, 7, 0.1) for a in ids[:2000]] != [selected(a, 8, 0.1) for a in ids[:2000]]


def test_the_shadowed_share_gets_the_candidates_answer_on_its_row_and_the_rest_none(
    stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN a candidate at share 0.3 and 30 articles
    shadow_on(stack, 0.3)
    app, candidate_requests = load(fake_openai)
    articles = [article(f"s-{i}") for i in range(30)]
    # WHEN they are categorised
    assert invoke(app, *articles[:10])["batchItemFailures"] == []
    assert invoke(app, *articles[10:20])["batchItemFailures"] == []
    assert invoke(app, *articles[20:])["batchItemFailures"] == []
    # THEN exactly the selected revisions carry `shadow`, each with the candidate's answer next to
    # the active one, and the candidate read the very prompt the active model read
    expected = shadowed_ids(30, 0.3)
    assert 0 < len(expected) < 30
    rows = {a["article_id"]: stack.row(a["article_id"]) for a in articles}
    assert sorted(i for i, row in rows.items() if row and "shadow" in row) == sorted(expected)
    row = rows[expected[0]]
    assert row is not None
    assert row["shadow"]["model_id"] == CANDIDATE
    assert row["shadow"]["category_id"] != row["category_id"]  # the candidate answered label 7, the active 3
    assert row["shadow"]["active_category_id"] == row["category_id"]
    assert row["shadow_model_id"] == CANDIDATE
    assert len(candidate_requests) == len(expected)
    active_messages = {r["messages"][-1]["content"] for r in fake_openai.requests}
    assert all(r["messages"][-1]["content"] in active_messages for r in candidate_requests)


def test_shadow_cost_is_counted_as_a_metric_and_on_the_row(
    stack: CategorizeStack, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a candidate on every article (share 1) answering with 400 prompt tokens
    shadow_on(stack, 1.0)
    app, _ = load(fake_openai)
    capsys.readouterr()
    # WHEN two articles are categorised
    assert invoke(app, article("c-1"), article("c-2"))["batchItemFailures"] == []
    blobs = emf(capsys.readouterr().out)
    # THEN the cost (fine-tuned prices: 400 × $0.30 + 1 × $1.20 per 1M tokens) is on each row and
    # in the ShadowCostMicroUSD metric, beside the calls, comparisons and agreement counts
    per_call = (400 * 0.30 + 1 * 1.20) / 1e6
    for article_id in ("c-1", "c-2"):
        row = stack.row(article_id)
        assert row is not None
        assert float(row["shadow"]["cost_usd"]) == pytest.approx(per_call)
        assert row["shadow"]["prompt_tokens"] == Decimal(400)
    assert metric_sum(blobs, "ShadowCostMicroUSD") == pytest.approx(2 * per_call * 1e6)
    assert metric_sum(blobs, "ShadowRequests") == 2
    assert metric_sum(blobs, "ShadowCompared") == 2
    assert metric_sum(blobs, "ShadowAgreed") == 0
    assert metric_sum(blobs, "ShadowPromptTokens") == 800


async def _server_error(body: dict[str, Any]) -> httpx2.Response:
    return httpx2.Response(500, json={"error": {"message": "boom", "type": "server_error"}})


async def _unknown_model(body: dict[str, Any]) -> httpx2.Response:
    message = f"The model '{body['model']}' does not exist"
    return httpx2.Response(404, json={"error": {"message": message, "type": "invalid_request_error"}})


async def _rate_limited(body: dict[str, Any]) -> httpx2.Response:
    return httpx2.Response(429, headers={"retry-after-ms": "20"}, json={"error": {"message": "slow down"}})


async def _too_slow(body: dict[str, Any]) -> httpx2.Response:
    await asyncio.sleep(5)
    return await _answers_label_7(body)


async def _no_label(body: dict[str, Any]) -> httpx2.Response:
    return json_response(one_token_completion(body["model"], [("hello", 0.9), (" world", 0.1)]))


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (_server_error, "http_500"),
        (_unknown_model, "unknown_model"),
        (_rate_limited, "throttled"),
        (_too_slow, "timeout"),
        (_no_label, "no_valid_label"),
    ],
)
def test_a_failing_candidate_never_fails_or_changes_the_stored_result(
    stack: CategorizeStack,
    fake_openai: FakeOpenAI,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    candidate: Candidate,
    reason: str,
) -> None:
    # GIVEN a candidate on every article that fails in its own way, with a short shadow timeout
    monkeypatch.setenv("SHADOW_TIMEOUT_SECONDS", "0.3")
    shadow_on(stack, 1.0)
    app, candidate_requests = load(fake_openai, candidate)
    capsys.readouterr()
    # WHEN an article is categorised
    response = invoke(app, article("f-1"))
    out = capsys.readouterr().out
    # THEN the record succeeds with the active answer stored, no shadow on the row, nothing
    # dead-lettered, the candidate asked once (no retries), and the failure counted with its reason
    assert response == {"batchItemFailures": []}
    row = stack.row("f-1")
    assert row is not None and row["model_id"] == MODEL_ID and "shadow" not in row
    assert stack.dlq_messages() == []
    assert len(candidate_requests) == 1
    blobs = emf(out)
    assert metric_sum(blobs, "ShadowFailed") == 1
    assert metric_sum(blobs, "ArticlesCategorized") == 1
    assert [getattr(r, "shadow_failure", None) for r in caplog.records if "shadow" in r.getMessage()] == [reason]


def test_the_candidate_is_asked_only_once_the_active_answer_is_stored(
    stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN a candidate that looks at the table when it is asked
    shadow_on(stack, 1.0)
    seen: list[dict[str, Any] | None] = []

    async def looks_at_the_row(body: dict[str, Any]) -> httpx2.Response:
        seen.append(stack.row("o-1"))
        return await _answers_label_7(body)

    app, _ = load(fake_openai, looks_at_the_row)
    # WHEN an article is categorised
    assert invoke(app, article("o-1"))["batchItemFailures"] == []
    # THEN the row already held the active result when the candidate was called
    [row] = seen
    assert row is not None and row["model_id"] == MODEL_ID and "revision" in row


def test_the_candidate_waits_for_nothing_beyond_its_own_limiter_share(
    stack: CategorizeStack,
    fake_openai: FakeOpenAI,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an instance share of 60 requests a minute and a candidate at share 0.5: its own bucket
    # holds one request and refills one every two seconds
    monkeypatch.setenv("INSTANCE_REQUESTS_PER_MINUTE", "60")
    monkeypatch.setenv("SHADOW_TIMEOUT_SECONDS", "0.3")
    shadow_on(stack, 0.5)
    app, candidate_requests = load(fake_openai)
    ids = shadowed_ids(40, 0.5)[:2]
    capsys.readouterr()
    # WHEN two selected articles arrive in one batch
    assert invoke(app, *(article(article_id) for article_id in ids))["batchItemFailures"] == []
    blobs = emf(capsys.readouterr().out)
    # THEN both results are stored; the candidate got one call and the other was dropped as
    # rate_limited instead of queueing for the active path's capacity
    assert all(stack.row(article_id) is not None for article_id in ids)
    assert len(candidate_requests) == 1
    assert metric_sum(blobs, "ShadowFailed") == 1
    assert [getattr(r, "shadow_failure", None) for r in caplog.records if "shadow call" in r.getMessage()] == [
        "rate_limited"
    ]
    assert len(fake_openai.requests) == 2


def test_no_shadow_record_no_candidate_call(stack: CategorizeStack, fake_openai: FakeOpenAI) -> None:
    # GIVEN the active record without a candidate
    app, candidate_requests = load(fake_openai)
    # WHEN articles are categorised
    assert invoke(app, article("n-1"), article("n-2"))["batchItemFailures"] == []
    # THEN only the active model is asked and no row has a shadow
    assert candidate_requests == []
    assert all("shadow" not in (stack.row(i) or {}) for i in ("n-1", "n-2"))


def test_a_shadow_answer_never_lands_on_a_newer_revision(stack: CategorizeStack, fake_openai: FakeOpenAI) -> None:
    # GIVEN the row of revision 2 (categorised with no candidate)
    app, _ = load(fake_openai)
    assert invoke(app, article("r-1", version=2))["batchItemFailures"] == []
    before = stack.row("r-1")
    assert before is not None
    store = ResultStore(lambda: boto3.resource("dynamodb").Table("results"))
    answer = ShadowAnswer(
        model_id=CANDIDATE,
        category_id="x",
        probability=0.5,
        active_model_id=MODEL_ID,
        active_category_id=str(before["category_id"]),
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=0.0,
    )
    # WHEN a shadow answer for revision 1 arrives, and one for revision 2 with other content
    # THEN neither is written and the row is unchanged; the matching one is
    assert store.put_shadow("r-1", 1, str(before["content_hash"]), answer) is False
    assert store.put_shadow("r-1", 2, "other-content", answer) is False
    assert stack.row("r-1") == before
    assert store.put_shadow("r-1", 2, str(before["content_hash"]), answer) is True
    after = stack.row("r-1")
    assert after is not None and after["shadow"]["category_id"] == "x"
