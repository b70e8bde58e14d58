"""`python -m local invoke CategorizeFunction -e events/sqs-batch.json` end to end: the function
from template.yaml, the local OpenAI-compatible server, moto; response on stdout."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from categorizer.models import ArticleEvent
from local.__main__ import main
from local.stack import STATE_FILE
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

EVENT = REPO / "events" / "sqs-batch.json"


def test_offline_invoke_categorizes_the_sample_batch(capfd: pytest.CaptureFixture[str]) -> None:
    # GIVEN no running `make local-up` stack, and the sample batch (valid articles + one invalid)
    assert not STATE_FILE.exists(), "stop `make local-up` before running the tests"
    records = json.loads(EVENT.read_text(encoding="utf-8"))["Records"]
    valid = 0
    for record in records:
        try:
            ArticleEvent.model_validate_json(record["body"])
            valid += 1
        except ValidationError:
            pass
    # WHEN the offline invoke runs CategorizeFunction on it
    exit_code = main(["invoke", "CategorizeFunction", "-e", str(EVENT)])
    captured = capfd.readouterr()  # fd level: the function's logs come from its own process
    # THEN it prints the handler's response: nothing to retry (valid articles categorised,
    # the invalid one dead-lettered with its reason), and exits 0
    assert exit_code == 0, captured.err[-2000:]
    assert json.loads(captured.out) == {"batchItemFailures": []}
    assert "REPORT RequestId:" in captured.err
    # AND the function's logs (stderr) show each valid article categorised, the invalid one dead-lettered
    assert captured.err.count('"status":"categorized"') == valid > 0
    dead_lettered = [line for line in captured.err.splitlines() if '"message":"dead-lettered"' in line]
    assert len(dead_lettered) == len(records) - valid > 0
    assert all('"reason":"validation_error"' in line for line in dead_lettered)
