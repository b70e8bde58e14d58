"""The bad-input catalogue (issue 5): every case has one expected outcome, and nothing is lost.

Ingest cases expect an HTTP status; a 202 means every accepted article is in the queue, any
other status means the queue holds nothing from the request (503: only what it lists).
Categorize cases expect where the message ends: `stored` (a row), `dlq:<reason>`, `retry`
(a batch item failure: SQS redelivers it), or `kept_newer` (the table already holds a newer
revision). In every case the article is in the table, in the DLQ with a reason, or retried
(docs/design.md invariant 4).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import httpx2
import pytest
from botocore.exceptions import ClientError

from categorizer import service as service_module
from categorizer.ingest import signature_headers
from categorizer.models import ArticleEvent
from categorizer.store import ResultStore
from categorizer.tokens import count_tokens
from tests.support.categorize import OPENAI_KEY, CategorizeStack, article, load_categorize
from tests.support.ingest import (
    INGEST_URL,
    PREVIOUS_SECRET,
    SECRET,
    IngestStack,
    call,
    http_event,
    ingest_url,
    signed_headers,
)
from tests.support.lambda_env import LambdaContext, sqs_event
from tests.support.openai_http import FakeOpenAI

# ------------------------------------------------------------------------------------ ingest

Headers = Callable[[bytes, str], dict[str, str]]  # (body, the URL the request goes to) → headers


def _signed(body: bytes, url: str) -> dict[str, str]:
    return signed_headers(body, url=url)


def _with(content_type: str | None) -> Headers:
    def headers(body: bytes, url: str) -> dict[str, str]:
        result = signed_headers(body, url=url)
        if content_type is None:
            del result["content-type"]
        else:
            result["content-type"] = content_type
        return result

    return headers


def _signed_at(offset_seconds: float) -> Headers:
    import time

    return lambda body, url: signed_headers(body, url=url, now=time.time() + offset_seconds)


def _forged(body: bytes, url: str) -> dict[str, str]:
    return signed_headers(body, url=url, secret="an-attacker-guess")


def _tampered(body: bytes, url: str) -> dict[str, str]:
    return signed_headers(body.replace(b"Chip", b"Chap"), url=url)


def _unsigned(body: bytes, url: str) -> dict[str, str]:
    return {"content-type": "application/json"}


def _bad_timestamp(body: bytes, url: str) -> dict[str, str]:
    headers = signed_headers(body, url=url)
    headers["X-Signature-Timestamp"] = headers["X-Signature-Timestamp"] + "abc"
    return headers


def _previous_secret(body: bytes, url: str) -> dict[str, str]:
    return signed_headers(body, url=url, secret=PREVIOUS_SECRET)


def _signed_for(signed_url: str, method: str = "POST") -> Headers:
    """Signed for another request than the one sent: a replay with another query, path or method."""

    def headers(body: bytes, url: str) -> dict[str, str]:
        secret = SECRET.encode()
        return {"content-type": "application/json", **signature_headers(secret, body, signed_url, method=method)}

    return headers


def _secret_deleted(app: ModuleType, stack: IngestStack) -> None:
    boto3.client("secretsmanager").delete_secret(SecretId=stack.secret_arn, ForceDeleteWithoutRecovery=True)


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class IngestCase:
    id: str
    body: bytes
    status: int
    headers: Headers = _signed
    field: str | None = None  # a field path the 400 must name
    queued: int | None = None  # messages expected in the queue (default: the accepted count)
    base64_encoded: bool = False
    query: dict[str, str] | None = None
    raw_query: str | None = None  # sent (and signed) as it is, instead of `query` encoded
    setup: Callable[[ModuleType, IngestStack], None] | None = None


WORDPRESS: dict[str, Any] = {
    "post_id": 77,
    "post": {
        "ID": 77,
        "post_title": "Derby ends in a draw",
        "post_content": "<p>Both sides scored twice.</p>",
        "post_modified_gmt": "2026-11-25 08:00:00",
    },
    "post_permalink": "https://blog.example/derby",
}

INGEST_CASES = [
    IngestCase("valid_single_object", _json(article("i-1")), 202, queued=1),
    IngestCase("valid_array_batch", _json([article(f"i-{n}") for n in range(3)]), 202, queued=3),
    IngestCase("valid_articles_wrapper", _json({"articles": [article("w-1"), article("w-2")]}), 202, queued=2),
    IngestCase("wordpress_adapter", _json(WORDPRESS), 202, query={"format": "wordpress"}, queued=1),
    IngestCase("unknown_adapter", _json(article("u-1")), 400, query={"format": "drupal9000"}),
    IngestCase("malformed_json", b'{"article_id": "m-1", "title": ', 400),
    IngestCase("trailing_garbage_json", _json(article("m-2")) + b"}", 400),
    IngestCase("empty_body", b"", 400),
    IngestCase("json_scalar", b"42", 400),
    IngestCase("empty_array", b"[]", 400),
    IngestCase("articles_not_an_array", _json({"articles": {"a": 1}}), 400),
    IngestCase("batch_over_maximum", _json([article(f"b-{n}") for n in range(21)]), 400),
    IngestCase("item_not_an_object", _json([article("n-1"), "just a string"]), 400, field="(item)"),
    IngestCase("wrong_type_version", _json(article("t-1", version="seven")), 400, field="version"),
    IngestCase("wrong_type_title_number", _json(article("t-2", title=12345)), 400, field="title"),
    IngestCase("wrong_type_body_object", _json(article("t-3", body={"text": "x"})), 400, field="body"),
    IngestCase("negative_version", _json(article("t-4", version=-1)), 400, field="version"),
    IngestCase("missing_title", _json({k: v for k, v in article("f-1").items() if k != "title"}), 400, field="title"),
    IngestCase(
        "missing_article_id",
        _json({k: v for k, v in article("f-2").items() if k != "article_id"}),
        400,
        field="article_id",
    ),
    IngestCase("empty_body_field", _json(article("f-3", body="")), 400, field="body"),
    IngestCase("whitespace_only_title", _json(article("f-4", title="   \n ")), 400, field="title"),
    IngestCase("no_version_nor_updated_at", _json(article("f-5", version=None)), 400, field="(event)"),
    IngestCase(
        "naive_updated_at",
        _json(article("f-6", version=None, updated_at="2026-11-25T08:00:00")),
        400,
        field="updated_at",
    ),
    IngestCase("url_not_http", _json(article("f-7", url="javascript:alert(1)")), 400, field="url"),
    IngestCase("article_id_path_traversal", _json(article("../../etc/passwd")), 400, field="article_id"),
    IngestCase("nul_escape_in_body", _json(article("z-1", body="before\u0000after")), 400, field="body"),
    IngestCase("raw_nul_byte_in_json", b'{"article_id": "z-2",\x00 "title": "x"}', 400),
    IngestCase("invalid_utf8", b'{"article_id": "u-8", "title": "\xff\xfe"}', 400, base64_encoded=True),
    IngestCase(
        "lone_surrogate",
        b'[{"article_id": "s-1", "url": "https://x.example/s", "title": "\\ud800", "body": "b", "version": 1}]',
        400,
        field="title",
    ),
    IngestCase("noncharacter_sqs_cannot_carry", _json(article("s-2", body="text \uffff more")), 400, field="(event)"),
    IngestCase("html_only_body", _json(article("h-1", body="<div><br/><hr/></div>")), 400, field="(event)"),
    IngestCase(
        "script_only_body",
        _json(article("h-2", body="<script>alert('x')</script><style>p{}</style>")),
        400,
        field="(event)",
    ),
    IngestCase(
        "html_with_script_and_text",
        _json(article("h-3", body="<p>Real text.</p><script>steal()</script>")),
        202,
        queued=1,
    ),
    IngestCase(
        "emoji",
        _json(article("e-1", title="Launch day 🚀🔥", body="Fans queued overnight 🎉 for the new phone 📱.")),
        202,
        queued=1,
    ),
    IngestCase(
        "right_to_left",
        _json(
            article(
                "r-1",
                title="الذكاء الاصطناعي في الطب",
                body="يستخدم الأطباء نماذج جديدة. טקסט בעברית גם כן.",
                language="ar",
            )
        ),
        202,
        queued=1,
    ),
    IngestCase(
        "japanese",
        _json(article("j-1", title="日本代表が決勝へ", body="サッカー日本代表は準決勝で勝利した。", language="ja")),
        202,
        queued=1,
    ),
    IngestCase("body_over_model_limit", _json(article("l-1", body="x" * 200_001)), 400, field="body"),
    IngestCase("request_over_size_limit", _json(article("l-2", body="y" * 1_100_000)), 413),
    IngestCase(
        "one_bad_item_rejects_the_batch",
        _json([article("a-1"), article("a-2", url="nope"), article("a-3")]),
        400,
        field="url",
    ),
    IngestCase("duplicate_events_in_one_batch", _json([article("d-1"), article("d-1")]), 202, queued=1),
    IngestCase(
        "out_of_order_versions_in_one_batch",
        _json([article("o-1", version=3), article("o-1", version=2, body="Older text.")]),
        202,
        queued=2,
    ),
    IngestCase("content_type_text_plain", _json(article("c-1")), 415, headers=_with("text/plain")),
    IngestCase("content_type_missing", _json(article("c-2")), 415, headers=_with(None)),
    IngestCase(
        "content_type_wrong_charset", _json(article("c-3")), 415, headers=_with("application/json; charset=latin-1")
    ),
    IngestCase(
        "content_type_with_utf8_charset",
        _json(article("c-4")),
        202,
        headers=_with("Application/JSON; charset=UTF-8"),
        queued=1,
    ),
    IngestCase("signature_missing", _json(article("x-1")), 401, headers=_unsigned),
    IngestCase("signature_forged", _json(article("x-2")), 401, headers=_forged),
    IngestCase("signature_over_other_body", _json(article("x-3")), 401, headers=_tampered),
    IngestCase("signature_expired", _json(article("x-4")), 401, headers=_signed_at(-301)),
    IngestCase(
        "signature_from_the_future", _json(article("x-5")), 401, headers=_signed_at(+400)
    ),  # well outside the 300 s window: int() truncation and a slow test run cost seconds
    IngestCase("signature_timestamp_malformed", _json(article("x-6")), 401, headers=_bad_timestamp),
    IngestCase(
        "signature_with_previous_secret_during_rotation", _json(article("x-7")), 202, headers=_previous_secret, queued=1
    ),
    IngestCase("webhook_secret_unavailable", _json(article("x-8")), 503, setup=_secret_deleted),
]


def _without(payload: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in names}


def _wordpress(**post: Any) -> dict[str, Any]:
    return {**_without(WORDPRESS, "post_id"), "post": {**WORDPRESS["post"], **post}}


_BASE = _json(article("big-1"))
EMOJI_TITLE = "🚀" * 1_000

# Issue 15, class by class: each root cause, several ways in.
HOSTILE_INGEST_CASES = [
    # Class 2: cheap inputs that used to raise (RecursionError, ValueError) and answer 500.
    IngestCase("nested_arrays_100k_deep", b"[" * 100_000 + b"]" * 100_000, 400),
    IngestCase("nested_objects_50k_deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400),
    IngestCase("deep_nesting_in_an_ignored_field", _BASE[:-1] + b', "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", 400),
    IngestCase("unclosed_nesting", b"[" * 200_000, 400),
    IngestCase("version_of_5000_digits", _BASE.replace(b'"version": 1', b'"version": 1' + b"0" * 5_000), 400),
    IngestCase("negative_number_of_5000_digits", _BASE.replace(b'"version": 1', b'"version": -' + b"9" * 5_000), 400),
    IngestCase("long_number_in_an_ignored_field", _BASE[:-1] + b', "n": ' + b"7" * 4_301 + b"}", 400),
    IngestCase("nan_version", _BASE.replace(b'"version": 1', b'"version": NaN'), 400),
    IngestCase("infinity_version", _BASE.replace(b'"version": 1', b'"version": -Infinity'), 400),
    IngestCase("huge_exponent_version", _BASE.replace(b'"version": 1', b'"version": 1e999999'), 400, field="version"),
    IngestCase("utf8_bom_before_json", "\ufeff".encode() + _BASE, 400),
    IngestCase("malformed_query_string", _BASE, 400, headers=_unsigned, raw_query="format"),
    IngestCase(
        "too_many_query_parameters", _BASE, 400, headers=_unsigned, raw_query="&".join(f"p{n}=1" for n in range(40))
    ),
    IngestCase("unknown_query_parameter", _BASE, 400, query={"debug": "1"}),
    IngestCase("repeated_format_parameter", _BASE, 400, raw_query="format=generic&format=wordpress"),
    # Class 3: invalid input that used to be accepted and stored.
    IngestCase("nul_in_url", _json(article("k-1", url="https://x.example/a\u0000b")), 400, field="url"),
    IngestCase("escape_character_in_url", _json(article("k-2", url="https://x.example/\u001b[31m")), 400, field="url"),
    IngestCase("tab_in_url", _json(article("k-3", url="https://x.example/a\tb")), 400, field="url"),
    IngestCase("ideographic_space_in_url", _json(article("k-4", url="https://x.example/a\u3000b")), 400, field="url"),
    IngestCase("url_without_host", _json(article("k-5", url="https:///only/a/path")), 400, field="url"),
    IngestCase("c1_next_line_in_title", _json(article("k-6", title="Breaking\u0085news")), 400, field="title"),
    IngestCase("c1_csi_in_site", _json(article("k-7", site="news\u009b.example")), 400, field="site"),
    IngestCase("c1_in_body", _json(article("k-8", body="Windows quotes \u0093like this\u0094.")), 400, field="body"),
    IngestCase("delete_in_title", _json(article("k-9", title="Chips\u007f")), 400, field="title"),
    IngestCase("version_true", _json(article("k-10", version=True)), 400, field="version"),
    IngestCase("version_false", _json(article("k-11", version=False)), 400, field="version"),
    IngestCase("version_as_string", _json(article("k-12", version="7")), 400, field="version"),
    IngestCase("version_as_float", _json(article("k-13", version=7.0)), 400, field="version"),
    IngestCase("title_as_list", _json(article("k-14", title=["a", "b"])), 400, field="title"),
    IngestCase("site_as_number", _json(article("k-15", site=42)), 400, field="site"),
    IngestCase("empty_site", _json(article("k-16", site="  ")), 400, field="site"),
    IngestCase(
        "language_of_423kb",
        _json(article("k-17", language="en-" + "-".join(["abcdefgh"] * 47_000))),
        400,
        field="language",
    ),
    IngestCase(
        "language_of_36_characters",
        _json(article("k-18", language="en-" + "-".join(["abcdefgh"] * 3) + "-abcdef")),
        400,
        field="language",
    ),
    IngestCase(
        "language_of_35_characters",
        _json(article("k-19", language="en-" + "-".join(["abcdefgh"] * 3) + "-abcde")),
        202,
        queued=1,
    ),
    IngestCase("site_over_256_characters", _json(article("k-20", site="s" * 257)), 400, field="site"),
    IngestCase(
        "wordpress_post_without_id",
        _json(_without(_wordpress(ID=None), "post_id") | {"post": _without(WORDPRESS["post"], "ID")}),
        400,
        query={"format": "wordpress"},
        field="post.ID",
    ),
    IngestCase("wordpress_post_id_zero", _json(_wordpress(ID=0)), 400, query={"format": "wordpress"}, field="post.ID"),
    IngestCase(
        "wordpress_post_id_as_string", _json(_wordpress(ID="77")), 400, query={"format": "wordpress"}, field="post.ID"
    ),
    IngestCase(
        "wordpress_post_id_true", _json(_wordpress(ID=True)), 400, query={"format": "wordpress"}, field="post.ID"
    ),
    IngestCase(
        "wordpress_rest_post_without_id",
        _json(
            {
                "link": "https://blog.example/p",
                "title": {"rendered": "T"},
                "content": {"rendered": "<p>x</p>"},
                "modified_gmt": "2026-11-25T08:00:00",
            }
        ),
        400,
        query={"format": "wordpress"},
        field="id",
    ),
    # Class 5: the signature covers method, path and query, not only the body.
    IngestCase(
        "replay_with_format_wordpress_added",
        _json(WORDPRESS),
        401,
        headers=_signed_for(INGEST_URL),
        query={"format": "wordpress"},
    ),
    IngestCase(
        "replay_with_format_removed", _json(article("g-1")), 401, headers=_signed_for(ingest_url({"format": "generic"}))
    ),
    IngestCase("signed_for_another_path", _json(article("g-2")), 401, headers=_signed_for("https://api.example/other")),
    IngestCase("signed_for_another_method", _json(article("g-3")), 401, headers=_signed_for(INGEST_URL, method="PUT")),
    IngestCase(
        "query_signed_in_another_encoding",
        _json(article("g-4")),
        202,
        headers=_signed_for(f"{INGEST_URL}?format=gener%69c"),
        raw_query="format=generic",
        queued=1,
    ),
    # Class 6: quiet surprises, each decided (docs/ingest.md, "Payload").
    IngestCase("id_with_leading_space", _json(article(" a-1")), 400, field="article_id"),
    IngestCase("id_with_trailing_ideographic_space", _json(article("a-1\u3000")), 400, field="article_id"),
    IngestCase("id_traversal_after_a_segment", _json(article("x/../../etc/passwd")), 400, field="article_id"),
    IngestCase("id_with_dot_segment", _json(article("x/./y")), 400, field="article_id"),
    IngestCase("id_with_empty_segment", _json(article("x//y")), 400, field="article_id"),
    IngestCase("id_with_trailing_slash", _json(article("x/")), 400, field="article_id"),
    IngestCase("id_with_backslash", _json(article("x\\..\\y")), 400, field="article_id"),
    IngestCase("id_over_256_characters", _json(article("a" * 257)), 400, field="article_id"),
    IngestCase("id_with_path_segments", _json(article("blog/2026/post-1.html")), 202, queued=1),
    IngestCase(
        "url_with_user_and_password", _json(article("q-1", url="https://user:pass@x.example/a")), 400, field="url"
    ),
    IngestCase("url_with_user_only", _json(article("q-2", url="http://token@x.example/a")), 400, field="url"),
    IngestCase("url_with_at_in_path", _json(article("q-3", url="https://x.example/@user/post")), 202, queued=1),
    IngestCase("url_with_surrounding_spaces", _json(article("q-4", url=" https://x.example/a ")), 400, field="url"),
    IngestCase(
        "updated_at_year_1",
        _json(article("t-10", version=None, updated_at="0001-01-01T00:00:00Z")),
        400,
        field="updated_at",
    ),
    IngestCase(
        "updated_at_before_1970",
        _json(article("t-11", version=None, updated_at="1969-12-31T23:59:59Z")),
        400,
        field="updated_at",
    ),
    IngestCase(
        "updated_at_year_10000",
        _json(article("t-12", version=None, updated_at="10000-01-01T00:00:00Z")),
        400,
        field="updated_at",
    ),
    IngestCase(
        "updated_at_bare_number", _json(article("t-13", version=None, updated_at=1764057600)), 400, field="updated_at"
    ),
    IngestCase(
        "updated_at_number_as_string",
        _json(article("t-14", version=None, updated_at="1764057600")),
        400,
        field="updated_at",
    ),
    IngestCase(
        "updated_at_date_only", _json(article("t-15", version=None, updated_at="2026-11-25")), 400, field="updated_at"
    ),
    IngestCase(
        "updated_at_impossible_date",
        _json(article("t-16", version=None, updated_at="2026-02-30T00:00:00Z")),
        400,
        field="updated_at",
    ),
    IngestCase(
        "updated_at_lower_case_rfc3339",
        _json(article("t-17", version=None, updated_at="2026-11-25t08:00:00.5z")),
        202,
        queued=1,
    ),
    IngestCase(
        "updated_at_with_offset",
        _json(article("t-18", version=None, updated_at="2026-11-25T17:00:00+09:00")),
        202,
        queued=1,
    ),
    IngestCase(
        "duplicate_key_in_an_article",
        b'{"article_id": "y-1", "article_id": "y-2", "url": "https://x.example/y", "title": "t", "body": "b", '
        b'"version": 1}',
        400,
    ),
    IngestCase("duplicate_articles_key", b'{"articles": [], "articles": [' + _json(article("y-3")) + b"]}", 400),
    IngestCase("title_of_1000_emoji", _json(article("e-2", title=EMOJI_TITLE)), 202, queued=1),
]
INGEST_CASES += HOSTILE_INGEST_CASES


@pytest.mark.parametrize("case", INGEST_CASES, ids=lambda c: c.id)
def test_ingest_bad_input(case: IngestCase, ingest: ModuleType, ingest_stack: IngestStack) -> None:
    # GIVEN the case's request (and dependency state)
    if case.setup:
        case.setup(ingest, ingest_stack)
    url = ingest_url(case.query) if case.raw_query is None else f"{INGEST_URL}?{case.raw_query}"
    event = http_event(case.body, case.headers(case.body, url), query=case.query, base64_encoded=case.base64_encoded)
    if case.raw_query is not None:
        event["rawQueryString"] = case.raw_query
    # WHEN API Gateway hands it to the function
    result = call(ingest, event)
    queued = ingest_stack.queued()
    # THEN the status is the expected one, with a message, and the queue holds exactly what was accepted
    assert result.status == case.status, result.body
    if case.status == 202:
        accepted = [(a["article_id"], a["revision"]) for a in result.body["accepted"]]
        events = [ArticleEvent.model_validate(m) for m in queued]
        assert sorted(accepted) == sorted((e.article_id, e.revision) for e in events)
        assert len(queued) == case.queued
    else:
        assert result.body["message"]
        assert queued == []
    if case.status == 401:
        assert result.body == {"message": "unauthorized"}  # which part failed is not said
    if case.field is not None:
        fields = {p["field"] for item in result.body["errors"] for p in item["errors"]}
        assert case.field in fields
    assert SECRET not in json.dumps(result.body)


# -------------------------------------------------------------------------------- categorize

Configure = Callable[[FakeOpenAI, pytest.MonkeyPatch], None]


def _status(code: int, message: str = "error", with_key: bool = False) -> Configure:
    text = f"{message}: Incorrect API key provided: {OPENAI_KEY}" if with_key else message
    response = httpx2.Response(code, json={"error": {"message": text, "type": "invalid_request_error"}})

    def configure(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
        fake.always["FAULT"] = response

    return configure


def _answer(tokens: list[tuple[str, float]]) -> Configure:
    def configure(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
        fake.answer = lambda request: tokens

    return configure


def _no_logprobs(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "3"}, "finish_reason": "length"}],
    }
    fake.always["FAULT"] = httpx2.Response(200, json=body)


def _timeout(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    def raise_timeout(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    monkeypatch.setattr(fake, "handle", raise_timeout)


def _dynamodb_throttled(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    def throttled(self: ResultStore, result: Any) -> bool:
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}}
        raise ClientError(error, "PutItem")  # type: ignore[arg-type]

    monkeypatch.setattr(ResultStore, "put_if_not_older", throttled)


def _read_before_a_newer_write(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    # The state read misses the newer row written meanwhile, so only the conditional claim and
    # write guard it.
    monkeypatch.setattr(ResultStore, "state", lambda self, article_id: None)


@dataclass(frozen=True)
class CategorizeCase:
    id: str
    messages: tuple[dict[str, Any] | str, ...]  # handled one after another; the last one is the case
    expect: str  # stored | kept_newer | retry | dlq:<reason>
    configure: Configure | None = None
    receive_count: int = 1
    openai_calls: int | None = None
    redeliver: bool = False  # the last message is the previous SQS record again, same message id
    configure_before_last: bool = False  # the fault hits only the last message


FAULTY = article("f-1", title="FAULT story about chips")
NEWER = article("n-1", version=5, body="The newest text of the story.")

CATEGORIZE_CASES = [
    CategorizeCase("valid_english", (article("c-1"),), "stored", openai_calls=1),
    CategorizeCase(
        "japanese",
        (article("c-2", title="日本代表が決勝へ", body="サッカー日本代表は準決勝で勝利した。", language="ja"),),
        "stored",
    ),
    CategorizeCase("emoji", (article("c-3", title="Launch 🚀", body="Fans 🎉 queued for the phone 📱."),), "stored"),
    CategorizeCase(
        "right_to_left",
        (article("c-4", title="الذكاء الاصطناعي", body="يستخدم الأطباء نماذج جديدة.", language="ar"),),
        "stored",
    ),
    CategorizeCase(
        "html_with_script_sent_as_text",
        (article("c-5", body="<p>Chips got faster.</p><script>steal()</script>"),),
        "stored",
    ),
    CategorizeCase("malformed_json", ("{not json",), "dlq:validation_error", openai_calls=0),
    CategorizeCase("json_array_not_event", ("[1, 2]",), "dlq:validation_error", openai_calls=0),
    CategorizeCase(
        "missing_title", ({k: v for k, v in article("v-1").items() if k != "title"},), "dlq:validation_error"
    ),
    CategorizeCase("wrong_type_version", (article("v-2", version="seven"),), "dlq:validation_error"),
    CategorizeCase("nul_in_body", (article("v-3", body="a\u0000b"),), "dlq:validation_error"),
    CategorizeCase("html_only_body", (article("v-4", body="<div><br/></div>"),), "dlq:validation_error"),
    CategorizeCase("script_only_body", (article("v-5", body="<script>alert(1)</script>"),), "dlq:validation_error"),
    CategorizeCase(
        "answer_not_a_label",
        (article("l-1"),),
        "dlq:no_valid_label",
        _answer([("The", 0.7), (" 3", 0.2), ("abc", 0.1)]),
    ),
    CategorizeCase(
        "label_outside_taxonomy", (article("l-2"),), "dlq:no_valid_label", _answer([("999", 0.8), ("704", 0.2)])
    ),
    CategorizeCase("no_logprobs_in_answer", (FAULTY,), "dlq:no_logprobs", _no_logprobs),
    CategorizeCase("openai_400", (FAULTY,), "dlq:openai_rejected_request", _status(400, "bad request"), openai_calls=1),
    CategorizeCase("openai_401", (FAULTY,), "retry", _status(401, "unauthorized", with_key=True)),
    CategorizeCase(
        "openai_401_last_receive",
        (FAULTY,),
        "dlq:retries_exhausted",
        _status(401, "unauthorized", with_key=True),
        receive_count=3,
    ),
    CategorizeCase("openai_403", (FAULTY,), "retry", _status(403, "forbidden")),
    CategorizeCase("openai_404_model_gone", (FAULTY,), "retry", _status(404, "model not found")),
    CategorizeCase(
        "openai_404_last_receive", (FAULTY,), "dlq:retries_exhausted", _status(404, "model not found"), receive_count=3
    ),
    CategorizeCase("openai_429", (FAULTY,), "retry", _status(429, "rate limited")),
    CategorizeCase(
        "openai_429_last_receive", (FAULTY,), "dlq:retries_exhausted", _status(429, "rate limited"), receive_count=3
    ),
    CategorizeCase("openai_500", (FAULTY,), "retry", _status(500, "server error")),
    CategorizeCase("openai_503", (FAULTY,), "retry", _status(503, "overloaded")),
    CategorizeCase("openai_timeout", (FAULTY,), "retry", _timeout),
    CategorizeCase("openai_timeout_last_receive", (FAULTY,), "dlq:retries_exhausted", _timeout, receive_count=3),
    CategorizeCase("dynamodb_throttled", (article("d-1"),), "retry", _dynamodb_throttled),
    CategorizeCase(
        "dynamodb_throttled_last_receive",
        (article("d-2"),),
        "dlq:retries_exhausted",
        _dynamodb_throttled,
        receive_count=3,
    ),
    CategorizeCase(
        "conditional_check_failure",
        (NEWER, {**NEWER, "version": 4, "body": "An older text."}),
        "kept_newer",
        _read_before_a_newer_write,
        configure_before_last=True,
        # The claim's condition sees the newer row before any call: the older text is never sent.
        openai_calls=1,
    ),
    CategorizeCase("duplicate_event", (article("u-1"), article("u-1")), "stored", openai_calls=1),
    CategorizeCase("sqs_redelivery_of_processed_message", (article("u-2"),), "stored", redeliver=True, openai_calls=1),
    CategorizeCase(
        "out_of_order_versions", (NEWER, {**NEWER, "version": 2, "body": "Old."}), "kept_newer", openai_calls=1
    ),
    CategorizeCase(
        "newer_version_same_content", (article("u-3", version=1), article("u-3", version=2)), "stored", openai_calls=1
    ),
]


def _row_limit(limit: int) -> Configure:
    def configure(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(service_module, "DYNAMODB_MAX_ITEM_BYTES", limit)

    return configure


# Issue 15 in the categorize function: messages that did not come through ingest's checks.
HOSTILE_CATEGORIZE_CASES = [
    CategorizeCase(
        "language_of_423kb",
        (article("k-1", language="en-" + "-".join(["abcdefgh"] * 47_000)),),
        "dlq:validation_error",
        openai_calls=0,
    ),
    CategorizeCase("c1_in_title", (article("k-2", title="Chips\u0085"),), "dlq:validation_error", openai_calls=0),
    CategorizeCase(
        "nul_in_url", (article("k-3", url="https://x.example/\u0000"),), "dlq:validation_error", openai_calls=0
    ),
    CategorizeCase("version_true", (article("k-4", version=True),), "dlq:validation_error", openai_calls=0),
    CategorizeCase("version_as_string", (article("k-5", version="7"),), "dlq:validation_error", openai_calls=0),
    CategorizeCase(
        "updated_at_bare_number", (article("k-6", version=None, updated_at=1764057600),), "dlq:validation_error"
    ),
    CategorizeCase("id_traversal", (article("x/../../etc/passwd"),), "dlq:validation_error", openai_calls=0),
    CategorizeCase("url_with_credentials", (article("k-7", url="https://u:p@x.example/"),), "dlq:validation_error"),
    CategorizeCase("deeply_nested_message", ("[" * 100_000 + "]" * 100_000,), "dlq:validation_error", openai_calls=0),
    CategorizeCase(
        "version_of_5000_digits", ('{"article_id": "k-8", "version": 1' + "0" * 5_000 + "}",), "dlq:validation_error"
    ),
    CategorizeCase(
        "unterminated_attributes_body",
        (article("k-9", body='<a b="' * 33_000, body_format="html"),),
        "dlq:validation_error",
        openai_calls=0,
    ),
    CategorizeCase("deeply_nested_html_body", (article("k-10", body="<div>x" * 33_000),), "stored", openai_calls=1),
    CategorizeCase("title_of_1000_emoji", (article("k-11", title="🚀" * 1_000),), "stored", openai_calls=1),
    # The row would not fit the (lowered) item limit: dead-lettered before any call, once.
    CategorizeCase(
        "row_over_the_item_limit", (article("k-12"),), "dlq:item_too_large", _row_limit(1_000), openai_calls=0
    ),
    CategorizeCase(
        "row_over_the_item_limit_last_receive",
        (article("k-13"),),
        "dlq:item_too_large",
        _row_limit(1_000),
        receive_count=3,
        openai_calls=0,
    ),
]
CATEGORIZE_CASES += HOSTILE_CATEGORIZE_CASES


@pytest.fixture
def categorize_app(stack: CategorizeStack, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The handler with the SDK's own retries off, so each fault is seen once (fast and countable)."""
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    return load_categorize(fake_openai.transport())


def _revision(message: dict[str, Any] | str) -> int | None:
    return message.get("version") if isinstance(message, dict) else None


@pytest.mark.parametrize("case", CATEGORIZE_CASES, ids=lambda c: c.id)
def test_categorize_bad_input(
    case: CategorizeCase,
    categorize_app: ModuleType,
    stack: CategorizeStack,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the earlier messages handled normally, then the case's fault (if any)
    if case.configure and not case.configure_before_last:
        case.configure(fake_openai, monkeypatch)
    event: dict[str, Any] = {}
    for message in case.messages[:-1]:
        event = sqs_event(message)
        assert categorize_app.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
    if case.configure and case.configure_before_last:
        case.configure(fake_openai, monkeypatch)
    last = case.messages[-1]
    if case.redeliver:
        assert categorize_app.lambda_handler(sqs_event(last), LambdaContext()) == {"batchItemFailures": []}
    event = sqs_event(last, receive_count=case.receive_count)
    # WHEN the last message is handled
    response = categorize_app.lambda_handler(event, LambdaContext())
    failures = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    dead = stack.dlq_messages()
    article_id = last.get("article_id") if isinstance(last, dict) else None
    row = stack.row(str(article_id)) if article_id else None
    # THEN it ends where the case says
    if case.expect == "retry":
        assert failures == [event["Records"][0]["messageId"]] and dead == [] and row is None
    elif case.expect.startswith("dlq:"):
        assert failures == [] and row is None
        [message] = dead
        attributes = message["MessageAttributes"]
        assert attributes["reason"]["StringValue"] == case.expect.removeprefix("dlq:")
        assert attributes["detail"]["StringValue"].strip("-")  # a clear error, not just a code
        assert message["Body"] == event["Records"][0]["body"]  # the original message, for redrive
        assert OPENAI_KEY not in json.dumps(message)
    else:
        assert failures == [] and dead == [] and row is not None
        newest = max(r for r in map(_revision, case.messages) if r is not None)
        assert int(row["revision"]) == newest
        if case.expect == "kept_newer":
            assert row["revision"] != _revision(last)
    if case.openai_calls is not None:
        assert len(fake_openai.requests) == case.openai_calls
    if case.id == "html_with_script_sent_as_text":
        assert "steal()" not in json.dumps(fake_openai.requests)
    if case.id == "title_of_1000_emoji":  # the title is cut, so the input stays within the budget
        [request] = fake_openai.requests
        assert count_tokens(request["messages"][-1]["content"]) <= stack_budget()


def test_the_catalogue_has_at_least_forty_cases_and_covers_every_class() -> None:
    assert len(INGEST_CASES) + len(CATEGORIZE_CASES) >= 40
    assert {c.status for c in INGEST_CASES} >= {202, 400, 401, 413, 415, 503}
    expected = {c.expect for c in CATEGORIZE_CASES}
    assert {"stored", "kept_newer", "retry", "dlq:validation_error", "dlq:retries_exhausted"} <= expected
    assert {"dlq:no_valid_label", "dlq:no_logprobs", "dlq:openai_rejected_request"} <= expected


def stack_budget() -> int:
    from categorizer.config import CategorizeSettings

    return CategorizeSettings.from_env().input_token_budget


# ------------------------------------------------------------- one batch: spend and neighbours

HOSTILE_BODIES = {
    "unterminated_attributes": '<a b="' * 33_000,
    "unterminated_comments": "<!--" * 50_000,
    "lt_without_gt": "<a " * 66_000,
    "cdata_run": "<![CDATA[" * 22_000,
}


def test_hostile_bodies_in_a_batch_never_take_their_neighbours_down(
    categorize_app: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN one SQS batch mixing valid articles with bodies built to make parsers slow
    valid = [article(f"ok-{n}", body=f"Story {n}: the chip doubles battery life.") for n in range(5)]
    # As HTML none of them holds text (as `auto` they hold no complete tag, so they are plain text).
    hostile = [article(f"bad-{name}", body=body, body_format="html") for name, body in HOSTILE_BODIES.items()]
    event = sqs_event(*[m for pair in zip(valid, [*hostile, None], strict=True) for m in pair if m is not None])
    # WHEN the handler takes the batch
    response = categorize_app.lambda_handler(event, LambdaContext())
    # THEN every valid article is stored, every hostile one is dead-lettered with its reason, none retried
    assert response == {"batchItemFailures": []}
    assert all(stack.row(a["article_id"]) is not None for a in valid)
    dead = [m for _ in range(2) for m in stack.dlq_messages()]
    assert sorted(json.loads(m["Body"])["article_id"] for m in dead) == sorted(a["article_id"] for a in hostile)
    assert {m["MessageAttributes"]["reason"]["StringValue"] for m in dead} == {"validation_error"}
    assert len(fake_openai.requests) == len(valid)


def test_a_record_whose_validation_overruns_is_dead_lettered_with_its_reason(
    categorize_app: ModuleType, stack: CategorizeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a validation bound of 0.2 s and one message whose validation takes 1 s
    import time

    original = ArticleEvent.model_validate_json

    def slow_for_marked(body: str) -> ArticleEvent:
        if "SLOW" in body:
            time.sleep(1.0)
        return original(body)

    monkeypatch.setattr(categorize_app, "VALIDATION_SECONDS", 0.2)
    monkeypatch.setattr(categorize_app.ArticleEvent, "model_validate_json", slow_for_marked)
    # (long enough to be validated in a thread, under the bound)
    long_body = "<p>" + "word " * categorize_app.INLINE_VALIDATION_CHARS + "</p>"
    event = sqs_event(article("n-1"), article("n-2", title="SLOW story", body=long_body), article("n-3"))
    # WHEN the batch is handled
    response = categorize_app.lambda_handler(event, LambdaContext())
    # THEN the slow one is dead-lettered as validation_timeout (not left to the redrive policy's
    # no_reason_recorded), and its neighbours are stored
    assert response == {"batchItemFailures": []}
    [message] = stack.dlq_messages()
    assert message["MessageAttributes"]["reason"]["StringValue"] == "validation_timeout"
    assert stack.row("n-1") is not None and stack.row("n-3") is not None


@dataclass(frozen=True)
class SpendCase:
    id: str
    batch: tuple[dict[str, Any], ...]
    openai_calls: int


SPEND_CASES = [
    SpendCase("identical_event_twice", (article("s-1"), article("s-1")), 1),
    SpendCase("identical_event_ten_times", tuple(article("s-2") for _ in range(10)), 1),
    SpendCase("ten_revisions_unchanged_text", tuple(article("s-3", version=v) for v in range(1, 11)), 1),
    SpendCase("revisions_in_reverse_order", tuple(article("s-4", version=v) for v in range(10, 0, -1)), 1),
    SpendCase(
        "revisions_by_updated_at",
        tuple(article("s-5", version=None, updated_at=f"2026-11-25T08:00:0{s}Z") for s in range(6)),
        1,
    ),
    SpendCase("only_site_differs", (article("s-6"), article("s-6", site="other.example", version=2)), 1),
    SpendCase(
        "same_text_after_normalisation",
        (
            article("s-7"),
            article(
                "s-7", body="  The company said the new processor doubles battery life for thin laptops.  ", version=2
            ),
        ),
        1,
    ),
    SpendCase("two_articles_same_text", (article("s-8"), article("s-9")), 2),
    # The same revision with another text (a newer revision may instead find the older one stale
    # before its call, so its count would depend on which record runs first).
    SpendCase("changed_text_is_a_new_call", (article("s-10"), article("s-10", body="A new text.")), 2),
    SpendCase("pairs_of_two_articles", (article("s-11"), article("s-12"), article("s-11"), article("s-12")), 2),
]


@pytest.mark.parametrize("case", SPEND_CASES, ids=lambda c: c.id)
def test_one_batch_spends_one_call_per_article_content_and_model(
    case: SpendCase, categorize_app: ModuleType, stack: CategorizeStack, fake_openai: FakeOpenAI
) -> None:
    # GIVEN one SQS batch of the case's events WHEN the handler takes it
    response = categorize_app.lambda_handler(sqs_event(*case.batch), LambdaContext())
    # THEN one OpenAI call per distinct (article, content, model), and each article holds its newest revision
    assert response == {"batchItemFailures": []}
    assert len(fake_openai.requests) == case.openai_calls
    for article_id in {a["article_id"] for a in case.batch}:
        revisions = [ArticleEvent.model_validate(a).revision for a in case.batch if a["article_id"] == article_id]
        row = stack.row(article_id)
        assert row is not None and int(row["revision"]) == max(revisions)
