"""BackfillStateMachine executed by moto from its ASL, tasks in-process, a Batch API fake on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from categorizer.prompt import model_input, prompt_from_input
from categorizer.textstore import StoredText, TextStore
from tests.integration.backfill_support import (
    MODEL_ID,
    REJECT_MARKER,
    TEXT_BUCKET,
    BackfillStack,
    BatchPlan,
    FakeBatchOpenAI,
    backfill_in_moto,
    serve_batch_openai,
)

RUN = {"poll_seconds": 0, "max_rounds": 2}


@pytest.fixture
def batch_openai() -> Iterator[FakeBatchOpenAI]:
    with serve_batch_openai() as fake:
        yield fake


@pytest.fixture
def backfill(batch_openai: FakeBatchOpenAI) -> Iterator[BackfillStack]:
    with backfill_in_moto(batch_openai) as stack:
        yield stack


def _article(article_id: str, version: int = 1, body: str = "A chip maker unveils a faster laptop processor.") -> str:
    event = {
        "article_id": article_id,
        "url": f"https://news.example/{article_id}",
        "title": "Chips",
        "body": body,
        "version": version,
    }
    return json.dumps(event)


def _shard_totals(run: dict[str, Any]) -> list[dict[str, Any]]:
    assert run["status"] == "SUCCEEDED", run
    shards: list[dict[str, Any]] = json.loads(run["output"])["shards"]
    return shards


def test_happy_path_writes_batch_rows_and_reports_invalid_lines(
    backfill: BackfillStack, batch_openai: FakeBatchOpenAI
) -> None:
    # GIVEN five valid archive lines (two shards of ≤ 3), one refused by the endpoint, and two invalid lines
    lines = [_article(f"a/{i}") for i in range(4)] + [_article("bad-1", body=f"text {REJECT_MARKER}")]
    prefix = backfill.put_archive([*lines, "{not json", json.dumps({"article_id": "x", "title": "t"})])
    # WHEN the backfill runs
    run = backfill.run("bf-happy", {"prefix": prefix, **RUN})
    # THEN every valid line is a batch-priced row or a dead letter with its reason
    totals = _shard_totals(run)
    assert sum(t["written"] for t in totals) == 4
    assert sum(t["dead_lettered"] for t in totals) == 1
    row = backfill.row("a/0")
    assert row is not None and row["source"] == "batch" and row["model_id"] == MODEL_ID
    assert row["cost_usd"] == Decimal(str((100 * 0.30 + 1 * 1.20) / 1e6 * 0.5))
    (letter,) = backfill.dead_letters()
    assert letter["MessageAttributes"]["reason"]["StringValue"] == "openai_rejected_request"
    assert json.loads(letter["Body"])["article_id"] == "bad-1"
    # AND the invalid lines are counted with reasons, never silently dropped
    plan = json.loads(run["output"])["plan"]
    assert plan["invalid"] == 2
    assert {e["line"].rsplit(":", 1)[1] for e in plan["invalid_examples"]} == {"6", "7"}
    assert all(e["errors"][0]["reason"] for e in plan["invalid_examples"])
    # AND each batch names the execution and its shard, for the live request body
    assert len(batch_openai.batches) == 2
    assert {b["metadata"]["backfill_run"] for b in batch_openai.batches.values()} == {"bf-happy"}
    # (shards upload concurrently, so which input file came first is not fixed)
    requests = {
        line["custom_id"]: line
        for content in batch_openai.files.values()
        for line in map(json.loads, content.decode().splitlines())
        if "method" in line
    }
    request = requests["a/0@1"]
    assert request["url"] == "/v1/chat/completions" and request["body"]["max_tokens"] == 1
    assert request["body"]["logprobs"] is True and request["body"]["top_logprobs"] == 5


def test_a_second_run_skips_what_is_stored_for_the_same_content_and_model(backfill: BackfillStack) -> None:
    # GIVEN an archive already backfilled
    prefix = backfill.put_archive([_article("s-1"), _article("s-2")])
    _shard_totals(backfill.run("bf-first", {"prefix": prefix, **RUN}))
    # WHEN it runs again, THEN nothing is planned
    run = backfill.run("bf-again", {"prefix": prefix, **RUN})
    plan = json.loads(run["output"])["plan"]
    assert plan["requests"] == 0 and plan["skipped"] == {"already_categorized_with_model": 2}


def test_expired_batch_lines_are_resubmitted_in_a_follow_up_round(
    backfill: BackfillStack, batch_openai: FakeBatchOpenAI
) -> None:
    # GIVEN a batch that expires with half its lines unrun, then batches that complete
    batch_openai.plans.append(BatchPlan(final="expired"))
    prefix = backfill.put_archive([_article(f"e-{i}") for i in range(3)])
    # WHEN the backfill runs
    totals = _shard_totals(backfill.run("bf-expired", {"prefix": prefix, **RUN}))
    # THEN the unrun lines went into a second round and every article has a row
    (shard,) = totals
    assert shard["written"] == 3 and shard["resubmitted"] == 2 and shard["rounds"] == 2
    assert [b["status"] for b in shard["batches"]] == ["expired", "completed"]
    assert all(backfill.row(f"e-{i}") is not None for i in range(3))


def test_rounds_are_bounded_and_what_is_left_is_dead_lettered(
    backfill: BackfillStack, batch_openai: FakeBatchOpenAI
) -> None:
    # GIVEN batches that always expire half done, and one follow-up round allowed
    batch_openai.plans += [BatchPlan(final="expired")] * 3
    prefix = backfill.put_archive([_article(f"x-{i}") for i in range(2)])
    # WHEN the backfill runs
    (shard,) = _shard_totals(backfill.run("bf-bounded", {"prefix": prefix, "poll_seconds": 0, "max_rounds": 1}))
    # THEN after two rounds the unrun line is dead-lettered with its reason
    assert shard["written"] == 1 and shard["dlq_by_reason"] == {"batch_rounds_exhausted": 1}
    assert [m["MessageAttributes"]["reason"]["StringValue"] for m in backfill.dead_letters()] == [
        "batch_rounds_exhausted"
    ]


def test_cost_guard_stops_before_any_upload(backfill: BackfillStack, batch_openai: FakeBatchOpenAI) -> None:
    # GIVEN a guard below the estimate
    prefix = backfill.put_archive([_article(f"c-{i}") for i in range(3)])
    # WHEN the backfill runs with max_cost_usd 0
    run = backfill.run("bf-guard", {"prefix": prefix, "max_cost_usd": 0, **RUN})
    # THEN it fails on the guard with nothing uploaded to OpenAI
    assert run["status"] == "FAILED" and run["error"] == "CostGuardExceeded", run
    assert "nothing was uploaded" in run["cause"]
    assert batch_openai.files == {} and batch_openai.batches == {}


def test_a_retried_create_makes_one_batch(backfill: BackfillStack, batch_openai: FakeBatchOpenAI) -> None:
    # GIVEN a create whose reply is lost (the batch exists, the task sees a 500 and is retried)
    batch_openai.lose_create_replies = 1
    prefix = backfill.put_archive([_article("r-1")])
    # WHEN the backfill runs
    (shard,) = _shard_totals(backfill.run("bf-retry", {"prefix": prefix, **RUN}))
    # THEN the retry found that batch instead of making a second one
    assert len(batch_openai.batches) == 1
    assert shard["written"] == 1


def test_a_full_batch_queue_is_waited_out_and_resubmitted(
    backfill: BackfillStack, batch_openai: FakeBatchOpenAI
) -> None:
    # GIVEN an enqueued-token pool that is full at the first create
    batch_openai.plans.append(BatchPlan(final="queue_full"))
    prefix = backfill.put_archive([_article("q-1")])
    # WHEN the backfill runs, THEN it waits, submits again and completes
    (shard,) = _shard_totals(backfill.run("bf-queue", {"prefix": prefix, **RUN}))
    assert [b["status"] for b in batch_openai.batches.values()] == ["failed", "completed"]
    assert shard["written"] == 1


def test_a_newer_live_result_is_kept(backfill: BackfillStack, batch_openai: FakeBatchOpenAI) -> None:
    # GIVEN an archive line at version 1, and a live result for version 2 written while its batch runs
    prefix = backfill.put_archive([_article("n-1", version=1)])
    live = {"article_id": "n-1", "revision": 2, "content_hash": "live", "model_id": "ft:live", "source": "live"}
    batch_openai.on_retrieve = lambda: backfill.table.put_item(Item=live)
    # WHEN the backfill runs
    (shard,) = _shard_totals(backfill.run("bf-newer", {"prefix": prefix, **RUN}))
    # THEN the conditional write refused the older batch result: the live row stays
    assert shard["written"] == 0 and shard["stale"] == 1
    assert backfill.row("n-1") == {**live, "revision": Decimal(2)}


def test_cli_start_prints_the_estimate_then_progress_and_totals(backfill: BackfillStack) -> None:
    from tools import backfill as cli

    # GIVEN an archive of two articles
    prefix = backfill.put_archive([_article("cli-1"), _article("cli-2")])
    lines: list[str] = []
    # WHEN the operator starts a run and follows it
    code = cli.main(
        ["--state-machine-arn", backfill.state_machine_arn, "start", "--prefix", prefix, "--poll-seconds", "0",
         "--name", "bf-cli"],
        emit=lines.append,
    )  # fmt: skip
    # THEN the estimate comes first, then batch progress, then the totals
    assert code == 0, lines
    assert lines[1].startswith("estimate: 2 requests")
    assert any(" done, 0 failed of 2" in line for line in lines)
    assert json.loads(lines[-1])["written"] == 2
    # AND status and list name the run
    status: list[str] = []
    cli.main(["--state-machine-arn", backfill.state_machine_arn, "status", "bf-cli"], emit=status.append)
    assert json.loads(status[0])["status"] == "SUCCEEDED"
    listed: list[str] = []
    cli.main(["--state-machine-arn", backfill.state_machine_arn, "list"], emit=listed.append)
    assert listed[0].startswith("bf-cli\tSUCCEEDED")


def _stored(article_id: str, revision: int) -> StoredText:
    read = model_input("Chips", f"A chip maker unveils laptop processor number {revision}.", 256)
    return StoredText(
        article_id=article_id,
        revision=revision,
        content_hash=prompt_from_input(read).fingerprint,
        title=read.title,
        body=read.body,
        truncated=read.truncated,
        input_token_budget=256,
        url=f"https://news.example/{article_id}",
    )


def test_all_replans_the_newest_stored_text_of_every_article(backfill: BackfillStack) -> None:
    # GIVEN the text store holds five articles, one of them at two revisions, and the table nothing
    texts = TextStore(lambda: backfill.s3, TEXT_BUCKET)
    for i in range(5):
        texts.put(_stored(f"t/{i}", 1))
    texts.put(_stored("t/0", 2))
    # WHEN the backfill runs over every stored article
    run = backfill.run("bf-all", {"all": True, **RUN})
    # THEN each article's newest revision became a batch row
    totals = _shard_totals(run)
    assert json.loads(run["output"])["plan"]["requests"] == 5
    assert sum(t["written"] for t in totals) == 5
    rows = {f"t/{i}": backfill.row(f"t/{i}") for i in range(5)}
    assert all(row is not None and row["source"] == "batch" for row in rows.values())
    assert rows["t/0"] is not None and rows["t/0"]["revision"] == 2
