"""The text store: what the model read, kept per revision before the row is written."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
from botocore.exceptions import ClientError

from categorizer.classifier import chat_request_body
from categorizer.prompt import prompt_from_input
from categorizer.taxonomy import bundled_taxonomy
from categorizer.textstore import TextStore, decode_article_id, encode_article_id, text_key
from tests.support.categorize import MODEL_ID, TAXONOMY_VERSION, TEXT_BUCKET, CategorizeStack, article
from tests.support.lambda_env import LambdaContext, sqs_event
from tests.support.openai_http import FakeOpenAI


def _texts() -> TextStore:
    s3 = boto3.client("s3")
    return TextStore(lambda: s3, TEXT_BUCKET)


def test_the_text_the_model_read_is_kept_per_revision_under_an_encoded_id(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN an article whose id holds "/" and "@", and a body over the token budget
    event = article("site/2026/a@b+1", body="word " * 5000, version=7)
    # WHEN it is categorised
    response = categorize.lambda_handler(sqs_event(event), LambdaContext())
    # THEN its text is stored under texts/<base64url id>/7.json, cut exactly as the prompt was
    assert response == {"batchItemFailures": []}
    key = text_key("site/2026/a@b+1", 7)
    assert key == f"texts/{encode_article_id('site/2026/a@b+1')}/7.json"
    assert "/" not in key.split("/")[1] and decode_article_id(key.split("/")[1]) == "site/2026/a@b+1"
    stored = _texts().get("site/2026/a@b+1", 7)
    prompt = prompt_from_input(stored.model_input)
    assert stored.truncated is True
    assert prompt.messages == fake_openai.requests[0]["messages"]
    row = stack.row("site/2026/a@b+1")
    assert row is not None and row["content_hash"] == prompt.fingerprint == stored.content_hash
    assert row["source"] == "live"
    # AND the live request is the body the batch path builds from the stored text
    taxonomy = bundled_taxonomy(TAXONOMY_VERSION)
    expected = chat_request_body(prompt, MODEL_ID, taxonomy, top_k=5, label_logit_bias=10)
    assert json.loads(json.dumps(expected)) == fake_openai.requests[0]


def test_a_failed_text_write_fails_the_record_and_writes_no_row(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN a text store that refuses writes
    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "PutObject")

    categorize.s3.put_object = refuse
    # WHEN an article is handled
    event = sqs_event(article("t-1"))
    response = categorize.lambda_handler(event, LambdaContext())
    # THEN the record is a batch item failure (SQS retries it), with no row and no claim left
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [event["Records"][0]["messageId"]]
    assert stack.row("t-1") is None


def test_a_newer_revision_with_unchanged_content_keeps_its_text_without_a_call(
    categorize: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN an article categorised at version 1
    categorize.lambda_handler(sqs_event(article("t-2", version=1)), LambdaContext())
    # WHEN version 2 arrives with the same text
    categorize.lambda_handler(sqs_event(article("t-2", version=2)), LambdaContext())
    # THEN no second call was made, the row names version 2, and version 2's text is stored
    assert len(fake_openai.requests) == 1
    row = stack.row("t-2")
    assert row is not None and int(row["revision"]) == 2
    assert _texts().get("t-2", 2).content_hash == row["content_hash"]
    assert sorted(_texts().latest_revisions()) == [("t-2", 2)]
    # AND erasure removes every revision
    assert _texts().erase("t-2") == 2
    assert list(_texts().latest_revisions()) == []
