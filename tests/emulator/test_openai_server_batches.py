"""The offline server's Batch API, driven through the real `openai` SDK (shapes: local/openai_server/batches.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from openai.types import Batch, FileObject
from openai.types.chat import ChatCompletion

from categorizer.prompt import estimate_prompt_tokens
from categorizer.tokens import single_token_id
from local.openai_server import OpenAIServerConfig, ServerHandle, serve_in_thread
from local.openai_server.store import Store
from tests.emulator.support import (
    TOPICS,
    batch_line,
    configure,
    training_lines,
    upload,
    upload_batch,
    wait_for_batch,
    wait_for_job,
)

TEXTS = ["football match goal striker", "film festival cinema award", "laptop processor benchmark"]


def live_body(model: str, text: str) -> dict[str, Any]:
    """The request the categorize function sends: one token, logprobs, top_logprobs, logit_bias on labels."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "Categorise the web article."},
            {"role": "user", "content": text},
        ],
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 3,
        "logit_bias": {str(single_token_id(label)): 10 for label in TOPICS},
    }


def lines_for(model: str, count: int) -> list[str]:
    return [batch_line(f"article-{i}", live_body(model, TEXTS[i % len(TEXTS)])) for i in range(count)]


def create(client: openai.OpenAI, file_id: str, **kwargs: Any) -> Batch:
    return client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", **kwargs
    )


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def test_a_batch_answers_each_line_as_the_chat_endpoint_does(client: openai.OpenAI, model: str) -> None:
    # GIVEN a batch input file of live request bodies, uploaded with purpose batch
    lines = lines_for(model, 3)
    uploaded = client.files.create(file=("batch.jsonl", "\n".join(lines).encode()), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.expires_at == uploaded.created_at + 30 * 24 * 3600
    # WHEN a batch is created for it
    created = create(client, uploaded.id, metadata={"execution": "backfill-1"})
    # THEN it starts validating with OpenAI's fields, and completes
    assert isinstance(created, Batch) and created.status == "validating"
    assert created.expires_at == created.created_at + 24 * 3600
    assert created.request_counts and created.request_counts.total == 0
    batch = wait_for_batch(client, created.id)
    assert batch.status == "completed", batch.errors
    assert batch.request_counts and batch.request_counts.model_dump() == {"total": 3, "completed": 3, "failed": 0}
    assert batch.metadata == {"execution": "backfill-1"} and batch.model == model
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at <= batch.completed_at
    assert batch.error_file_id is None and batch.errors is None
    output = client.files.retrieve(str(batch.output_file_id))
    assert isinstance(output, FileObject) and output.purpose == "batch_output"

    # AND every output line holds what the chat endpoint answers for the same body
    answers = read_lines(client, batch.output_file_id)
    assert [a["custom_id"] for a in answers] == ["article-0", "article-1", "article-2"]
    prompt_tokens = 0
    for answer, text in zip(answers, TEXTS, strict=True):
        assert answer["id"].startswith("batch_req_") and answer["error"] is None
        assert answer["response"]["status_code"] == 200 and answer["response"]["request_id"]
        from_batch = ChatCompletion.model_validate(answer["response"]["body"])
        live = client.chat.completions.create(**live_body(model, text))
        assert from_batch.choices == live.choices and from_batch.usage == live.usage
        assert from_batch.usage is not None
        prompt_tokens += from_batch.usage.prompt_tokens
    assert batch.usage and batch.usage.input_tokens == prompt_tokens and batch.usage.output_tokens == 3


def test_batch_input_uploads_follow_the_batch_api_rules(server: ServerHandle, client: openai.OpenAI) -> None:
    # GIVEN a .txt file and, with a 10-byte limit set, an 11-byte file
    with pytest.raises(openai.BadRequestError, match=r"Must be \.jsonl"):
        client.files.create(file=("batch.txt", b"{}"), purpose="batch")
    configure(server, batch_max_file_bytes=10)
    # THEN both are refused at upload
    with pytest.raises(openai.BadRequestError, match="too large"):
        client.files.create(file=("batch.jsonl", b"x" * 11), purpose="batch")


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"endpoint": "/v1/embeddings"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
        ({"input_file_id": "file-missing"}, "input_file_id"),
        ({"metadata": {str(i): "x" for i in range(17)}}, "metadata"),
    ],
)
def test_invalid_create_requests_are_400(client: openai.OpenAI, change: dict[str, Any], param: str) -> None:
    # GIVEN a valid batch input file
    params: dict[str, Any] = {
        "input_file_id": upload_batch(client, lines_for("ft:any", 1)),
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    # WHEN one parameter is off THEN the create is refused naming it
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(**{**params, **change})
    assert refused.value.param == param


def test_a_fine_tune_file_is_no_batch_input(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="purpose 'fine-tune'"):
        create(client, upload(client, training_lines()))
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")


BODY = live_body("ft:model-a", "text")
INVALID_FILES: dict[str, tuple[list[str], str, int | None]] = {
    "duplicate custom_id": ([batch_line("a", BODY), batch_line("a", BODY)], "duplicate_custom_id", 2),
    "two models": ([batch_line("a", BODY), batch_line("b", {**BODY, "model": "ft:model-b"})], "model_mismatch", 2),
    "wrong url": ([batch_line("a", BODY), batch_line("b", BODY, url="/v1/embeddings")], "url_mismatch", 2),
    "wrong method": ([batch_line("a", BODY, method="GET")], "invalid_value", 1),
    "bad JSON line": ([batch_line("a", BODY), "{not json"], "invalid_json_line", 2),
    "no body": (
        [json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"})],
        "missing_required_parameter",
        1,
    ),
    "empty file": ([""], "empty_file", None),
}


@pytest.mark.parametrize("case", sorted(INVALID_FILES))
def test_an_invalid_input_file_fails_the_batch(client: openai.OpenAI, case: str) -> None:
    # GIVEN an input file that breaks one of OpenAI's rules
    lines, code, line = INVALID_FILES[case]
    # WHEN it is submitted
    created = create(client, upload_batch(client, lines))
    # THEN the create succeeds and the batch fails validation with OpenAI's errors object
    assert created.status == "validating"
    batch = wait_for_batch(client, created.id)
    assert batch.status == "failed" and batch.failed_at and batch.in_progress_at is None
    assert batch.errors and batch.errors.object == "list" and batch.errors.data
    assert (batch.errors.data[0].code, batch.errors.data[0].line) == (code, line)
    assert batch.output_file_id is None and batch.error_file_id is None


def test_more_requests_than_a_batch_takes_fail_it(server: ServerHandle, client: openai.OpenAI) -> None:
    # GIVEN batches of at most two requests
    configure(server, batch_max_requests=2)
    # WHEN three are submitted THEN the batch fails as too_many_tasks
    batch = wait_for_batch(client, create(client, upload_batch(client, lines_for("ft:any", 3))).id)
    assert batch.status == "failed" and batch.errors and batch.errors.data
    assert batch.errors.data[0].code == "too_many_tasks"


def test_cancel_keeps_what_ran_and_reports_the_rest(server: ServerHandle, client: openai.OpenAI, model: str) -> None:
    # GIVEN a batch of 20 requests answered at 100 ms each, seen running
    configure(server, batch_line_delay_ms=100)
    created = create(client, upload_batch(client, lines_for(model, 20)))
    running = wait_for_batch(client, created.id, lambda b: bool(b.request_counts and b.request_counts.completed >= 2))
    assert running.status == "in_progress" and running.in_progress_at
    # WHEN it is cancelled
    cancelling = client.batches.cancel(created.id)
    # THEN it goes through cancelling to cancelled, with the requests that ran in the output file
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    batch = wait_for_batch(client, created.id)
    assert batch.status == "cancelled" and batch.cancelled_at and batch.request_counts
    done = read_lines(client, batch.output_file_id)
    unrun = read_lines(client, batch.error_file_id)
    assert len(done) == batch.request_counts.completed and batch.request_counts.failed == 0
    assert 2 <= len(done) < 20 and len(done) + len(unrun) == 20
    assert {u["error"]["code"] for u in unrun} == {"batch_cancelled"} and all(u["response"] is None for u in unrun)
    # AND a second cancel returns it as it is; a finished batch cannot be cancelled
    assert client.batches.cancel(created.id).status == "cancelled"
    configure(server, batch_line_delay_ms=0)
    finished = wait_for_batch(client, create(client, upload_batch(client, lines_for(model, 1))).id)
    with pytest.raises(openai.BadRequestError, match="completed"):
        client.batches.cancel(finished.id)


def test_a_batch_cancelled_before_its_turn_never_runs(server: ServerHandle, client: openai.OpenAI, model: str) -> None:
    # GIVEN a batch behind a slow one (the worker runs one batch at a time)
    configure(server, batch_line_delay_ms=50)
    slow = create(client, upload_batch(client, lines_for(model, 20)))
    waiting = create(client, upload_batch(client, lines_for(model, 2)))
    # WHEN the waiting one is cancelled, then the slow one
    client.batches.cancel(waiting.id)
    client.batches.cancel(slow.id)
    # THEN the waiting one ends cancelled with none of its requests answered
    batch = wait_for_batch(client, waiting.id)
    assert batch.status == "cancelled" and batch.output_file_id is None
    assert batch.request_counts and batch.request_counts.completed == 0


def test_expiry_fault_expires_a_batch_part_way(server: ServerHandle, client: openai.OpenAI, model: str) -> None:
    # GIVEN batches expire after two requests ran
    configure(server, batch_expire_after_requests=2)
    # WHEN a batch of five runs
    batch = wait_for_batch(client, create(client, upload_batch(client, lines_for(model, 5))).id)
    # THEN it expires with two answers in the output file and the rest in the error file, as OpenAI documents
    assert batch.status == "expired" and batch.expired_at and batch.completed_at is None
    assert batch.request_counts and batch.request_counts.model_dump() == {"total": 5, "completed": 2, "failed": 0}
    assert [line["custom_id"] for line in read_lines(client, batch.output_file_id)] == ["article-0", "article-1"]
    expired = read_lines(client, batch.error_file_id)
    assert [line["custom_id"] for line in expired] == ["article-2", "article-3", "article-4"]
    assert all(line["response"] is None for line in expired)
    assert expired[0]["error"] == {
        "code": "batch_expired",
        "message": "This request could not be executed before the completion window expired.",
    }


def test_per_line_error_rate_answers_some_lines_with_500(
    server: ServerHandle, client: openai.OpenAI, model: str
) -> None:
    # GIVEN half of all request lines fail with a server error
    configure(server, batch_error_rate=0.5)
    # WHEN a batch of 20 runs
    batch = wait_for_batch(client, create(client, upload_batch(client, lines_for(model, 20))).id)
    # THEN it completes; each failed line is a 500 response in the error file, counted as failed
    assert batch.status == "completed" and batch.request_counts
    failed = read_lines(client, batch.error_file_id)
    answered = read_lines(client, batch.output_file_id)
    assert 0 < len(failed) < 20 and len(failed) + len(answered) == 20
    assert (batch.request_counts.completed, batch.request_counts.failed) == (len(answered), len(failed))
    for line in failed:
        assert line["error"] is None and line["response"]["status_code"] == 500
        assert line["response"]["body"]["error"]["type"] == "server_error"


def test_lines_the_chat_endpoint_refuses_carry_its_error(client: openai.OpenAI, model: str) -> None:
    # GIVEN one line with too many top_logprobs, one for a model that does not exist... in its own batch
    bad_parameter = batch_line("too-many", {**live_body(model, "x"), "top_logprobs": 21})
    unknown = [batch_line("ghost", live_body("ft:gpt-4o-mini-2024-07-18:local::nope", "x"))]
    # WHEN both batches run
    refused = wait_for_batch(client, create(client, upload_batch(client, [bad_parameter, *lines_for(model, 1)])).id)
    missing = wait_for_batch(client, create(client, upload_batch(client, unknown)).id)
    # THEN each refused line holds the chat endpoint's status and error body; nothing else changes
    assert refused.status == "completed" and refused.request_counts
    assert (refused.request_counts.completed, refused.request_counts.failed) == (1, 1)
    [too_many] = read_lines(client, refused.error_file_id)
    assert too_many["response"]["status_code"] == 400
    assert too_many["response"]["body"]["error"]["param"] == "top_logprobs"
    [ghost] = read_lines(client, missing.error_file_id)
    assert ghost["response"]["status_code"] == 404
    assert ghost["response"]["body"]["error"]["code"] == "model_not_found"
    assert missing.status == "completed" and missing.output_file_id is None


def test_the_batch_queue_limit_fails_a_batch_that_would_exceed_it(
    server: ServerHandle, client: openai.OpenAI, model: str
) -> None:
    # GIVEN a queue limit one and a half times one batch's prompt tokens, and a slow batch running
    tokens = sum(estimate_prompt_tokens(live_body(model, TEXTS[i % 3])["messages"]) for i in range(10))
    configure(server, batch_queue_tokens=tokens * 3 // 2, batch_line_delay_ms=200)
    first = create(client, upload_batch(client, lines_for(model, 10)))
    assert wait_for_batch(client, first.id, lambda b: b.status != "validating").status == "in_progress"
    # WHEN a second batch of the same size is created
    second = wait_for_batch(client, create(client, upload_batch(client, lines_for(model, 10))).id)
    # THEN it fails with OpenAI's token_limit_exceeded error and runs nothing
    assert second.status == "failed" and second.errors and second.errors.data
    error = second.errors.data[0]
    assert error.code == "token_limit_exceeded" and error.line is None
    assert error.message and error.message.startswith(f"Enqueued token limit reached for {model}")
    # AND once the first batch is done, its tokens leave the queue
    client.batches.cancel(first.id)
    wait_for_batch(client, first.id)
    third = wait_for_batch(
        client, create(client, upload_batch(client, lines_for(model, 10))).id, lambda b: b.status != "validating"
    )
    assert third.status in ("in_progress", "completed")


def test_list_pages_newest_first(server: ServerHandle, client: openai.OpenAI) -> None:
    # GIVEN three batches
    ids = [create(client, upload_batch(client, lines_for("ft:any", 1))).id for _ in range(3)]
    # WHEN listed two at a time
    first = client.batches.list(limit=2)
    # THEN pages run newest first, `after` continues, `has_more` ends them
    assert [b.id for b in first.data] == ids[:0:-1] and first.has_more
    rest = client.batches.list(limit=2, after=ids[1])
    assert [b.id for b in rest.data] == [ids[0]] and not rest.has_more
    assert [b.id for b in client.batches.list(limit=1)] == ids[::-1]  # the SDK's auto-paging
    raw = httpx2.get(f"{server.base_url}/batches", params={"limit": 2}).json()
    assert (raw["object"], raw["first_id"], raw["last_id"]) == ("list", ids[2], ids[1])


def test_batch_traffic_does_not_count_against_the_live_rpm_limit(
    server: ServerHandle, client: openai.OpenAI, model: str
) -> None:
    # GIVEN a live limit of one request in the bucket
    configure(server, rpm=60, bucket_seconds=1)
    httpx2.post(f"{server.root_url}/_admin/reset-stats")
    # WHEN a batch of ten requests completes
    batch = wait_for_batch(client, create(client, upload_batch(client, lines_for(model, 10))).id)
    assert batch.status == "completed" and batch.request_counts and batch.request_counts.completed == 10
    # THEN the live bucket is still full: one live request passes, and the live counters saw only it
    live = client.chat.completions.with_raw_response.create(**live_body(model, "football"))
    assert live.headers["x-ratelimit-remaining-requests"] == "0"
    stats = httpx2.get(f"{server.root_url}/_admin/stats").json()
    assert stats["requests"] == 1 and stats["status_429"] == 0


def test_a_running_batch_resumes_after_a_restart(tmp_path: Path) -> None:
    # GIVEN a batch part-way through when the server stops
    config = OpenAIServerConfig(state_dir=tmp_path, batch_line_delay_ms=200)
    with serve_in_thread(config) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, training_lines()))
        model = str(wait_for_job(client, job.id).fine_tuned_model)
        created = create(client, upload_batch(client, lines_for(model, 20)))
        wait_for_batch(client, created.id, lambda b: bool(b.request_counts and b.request_counts.completed >= 3))
    stopped = Store(tmp_path)
    answered_before = stopped.batch_results(created.id, "output")
    assert stopped.batches[created.id]["status"] == "in_progress"
    assert stopped.batches[created.id]["request_counts"]["completed"] == len(answered_before)
    assert 3 <= len(answered_before) < 20
    # WHEN a server starts on the same state (answering at full speed)
    with serve_in_thread(config.model_copy(update={"batch_line_delay_ms": 0})) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        batch = wait_for_batch(client, created.id)
        output = client.files.content(str(batch.output_file_id)).text.splitlines()
    # THEN it resumed where it stopped: the earlier answers kept, every request answered exactly once
    assert batch.status == "completed" and batch.request_counts and batch.request_counts.completed == 20
    assert output[: len(answered_before)] == answered_before
    assert [json.loads(line)["custom_id"] for line in output] == [f"article-{i}" for i in range(20)]
