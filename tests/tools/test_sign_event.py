"""`python -m tools sign-event`: the committed IngestFunction event, signed afresh, is accepted."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from categorizer.ingest import verify_signature
from tests.support.ingest import PREVIOUS_SECRET, SECRET, IngestStack, call
from tools import sign_event

EVENT = Path(__file__).resolve().parents[2] / "events" / "ingest-http.json"
NOW = 1_800_000_000.0


def _load(path: Path = EVENT) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return event


def _verifies(event: dict[str, Any], secret: str, now: float) -> str | None:
    headers = event["headers"]
    return verify_signature(
        [secret.encode()],
        headers.get("x-signature-timestamp"),
        headers.get("x-signature"),
        sign_event.signed_request(event),
        now=now,
        tolerance_seconds=300,
    )


def test_the_committed_event_carries_no_working_signature() -> None:
    # GIVEN events/ingest-http.json as committed WHEN its signature is checked at any time
    # THEN it fails: the committed file holds no secret-derived value that could work
    event = _load()
    assert _verifies(event, SECRET, NOW) is not None
    assert event["headers"]["x-signature"].startswith("sha256=")


def test_signing_replaces_the_signature_headers_and_nothing_else_of_the_request() -> None:
    # GIVEN the committed event, with an extra stale signature header in another case
    event = _load()
    event["headers"]["X-Signature"] = "sha256=stale"
    # WHEN it is signed at NOW
    signed = sign_event.sign_event(event, SECRET.encode(), now=NOW)
    # THEN exactly one timestamp and one signature header are left, lower case, valid at NOW
    signature_headers = [name for name in signed["headers"] if name.lower().startswith("x-signature")]
    assert sorted(signature_headers) == ["x-signature", "x-signature-timestamp"]
    assert signed["headers"]["x-signature-timestamp"] == str(int(NOW))
    assert _verifies(signed, SECRET, NOW) is None
    # AND it stops working outside the tolerance, like any signed request
    assert _verifies(signed, SECRET, NOW + 301) == "timestamp_outside_tolerance"
    # AND the body, route and other headers are the committed ones; the request time is NOW
    assert signed["body"] == event["body"] and signed["routeKey"] == "POST /articles"
    assert signed["headers"]["content-type"] == "application/json"
    assert signed["requestContext"]["timeEpoch"] == int(NOW * 1000)
    assert event["headers"]["X-Signature"] == "sha256=stale"  # the input is left as it was


def test_the_cli_signs_with_the_secret_from_secrets_manager_and_the_function_accepts_it(
    ingest: ModuleType, ingest_stack: IngestStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the webhook secret in Secrets Manager (JSON with a current and a previous secret)
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    signed_path = tmp_path / "signed.json"
    # WHEN the CLI signs the committed event with it, into a file
    exit_code = sign_event.main([str(EVENT), "--secret-arn", ingest_stack.secret_arn, "-o", str(signed_path)])
    # THEN IngestFunction accepts the signed event: both articles queued
    assert exit_code == 0
    signed = _load(signed_path)
    assert _verifies(signed, SECRET, float(signed["headers"]["x-signature-timestamp"])) is None
    assert _verifies(signed, PREVIOUS_SECRET, float(signed["headers"]["x-signature-timestamp"])) is not None
    result = call(ingest, signed)
    assert result.status == 202, result.body
    assert [a["article_id"] for a in result.body["accepted"]] == ["evt-http-en-1", "evt-http-ja-1"]
    assert sorted(m["article_id"] for m in ingest_stack.queued()) == ["evt-http-en-1", "evt-http-ja-1"]


def test_the_cli_writes_to_stdout_with_the_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no secret ARN, the secret in WEBHOOK_SECRET
    monkeypatch.delenv("WEBHOOK_SECRET_ARN", raising=False)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    # WHEN the CLI signs without -o THEN the signed event is on stdout and verifies now
    assert sign_event.main([str(EVENT)]) == 0
    signed = json.loads(capsys.readouterr().out)
    assert _verifies(signed, SECRET, float(signed["headers"]["x-signature-timestamp"])) is None


def test_stack_offline_without_a_running_stack_says_how_to_start_one(tmp_path: Path) -> None:
    # GIVEN no state file of a running offline stack WHEN its secret is asked for
    # THEN the error says to start it
    with pytest.raises(SystemExit, match="make local-up"):
        sign_event.offline_stack_secret(tmp_path / "stack.json")
