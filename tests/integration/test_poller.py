"""The offline SQS event source behaves like Lambda's: batching, partial batch responses,
redelivery after the visibility timeout, redrive to the DLQ, MaximumConcurrency.

A probe function (tests/integration/fixtures/probe) records each invocation in a table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.stack import OfflineStack, StackOptions

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def probe_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OfflineStack]:
    # Parameter overrides, and "visibility": a queue visibility timeout override in seconds.
    param: dict[str, Any] = dict(getattr(request, "param", {}))
    visibility = param.pop("visibility", None)
    options = StackOptions(
        template=FIXTURES / "probe-template.yaml",
        parameter_overrides=param,
        queue_visibility_timeout=visibility,
        state_dir=tmp_path,
        start_openai=False,
    )
    with OfflineStack.start(options, progress=lambda _: None) as stack:
        yield stack


def _send(stack: OfflineStack, bodies: list[dict[str, Any]]) -> list[str]:
    sqs = stack.client("sqs")
    ids = []
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(bodies[start : start + 10])]
        response = sqs.send_message_batch(QueueUrl=stack.provisioned.ref("ProbeQueue"), Entries=entries)
        ids += [entry["MessageId"] for entry in sorted(response["Successful"], key=lambda e: int(e["Id"]))]
    return ids


def _calls(stack: OfflineStack) -> list[dict[str, Any]]:
    table = stack.session.resource("dynamodb", endpoint_url=stack.endpoints.aws_endpoint_url).Table(
        stack.provisioned.ref("Calls")
    )
    return sorted(table.scan(ConsistentRead=True)["Items"], key=lambda item: float(item["started"]))


def test_batches_every_message_and_passes_a_lambda_context(probe_stack: OfflineStack) -> None:
    # GIVEN 12 messages waiting, a mapping with BatchSize 5 and the template's visibility timeout
    ids = _send(probe_stack, [{"n": n} for n in range(12)])
    # WHEN the poller runs until the queue is empty
    probe_stack.start_pollers(warm=True)
    assert probe_stack.wait_until_drained(timeout=20)
    calls = _calls(probe_stack)
    # THEN every message was delivered once, in batches of at most 5, and some batched together
    delivered = [message_id for call in calls for message_id in call["message_ids"]]
    assert sorted(delivered) == sorted(ids)
    assert max(len(call["message_ids"]) for call in calls) == 5
    assert all(len(call["message_ids"]) <= 5 for call in calls)
    # AND the handler saw a context counting down from the template's timeout (10 s),
    # the Globals-merged environment and the event source ARN
    assert all(0 < int(call["remaining_ms"]) <= 10_000 for call in calls)
    assert {call["global_variable"] for call in calls} == {"us-east-1-globals"}
    assert all(call["task_root"].endswith("probe") for call in calls)
    assert {call["event_source_arn"] for call in calls} == {probe_stack.provisioned.attribute("ProbeQueue", "Arn")}
    assert probe_stack.pollers[0].stats.deleted == 12


@pytest.mark.parametrize("probe_stack", [{"visibility": 1}], indirect=True)
def test_reported_failures_come_back_then_go_to_the_dlq(probe_stack: OfflineStack) -> None:
    # GIVEN maxReceiveCount 2, a 1 s visibility timeout, three good and two failing messages
    good = _send(probe_stack, [{"n": n} for n in range(3)])
    bad = _send(probe_stack, [{"fail": True}, {"fail": True}])
    # WHEN the poller runs until the queue is empty
    probe_stack.start_pollers(warm=True)
    assert probe_stack.wait_until_drained(timeout=20)
    calls = _calls(probe_stack)
    receives: dict[str, list[int]] = {}
    for call in calls:
        for message_id, count in zip(call["message_ids"], call["receive_counts"], strict=True):
            receives.setdefault(message_id, []).append(int(count))
    # THEN good messages were delivered once (deleted after the partial batch response),
    # failing ones were redelivered after the visibility timeout with a growing receive count
    assert all(receives[message_id] == [1] for message_id in good)
    assert all(receives[message_id] == [1, 2] for message_id in bad)
    # AND the poller's ledger, which audits use to locate losses, saw the same: the good ones
    # received once and deleted, the failing ones received twice and never deleted
    traces = probe_stack.pollers[0].ledger.traces()
    assert sorted((t.receives, t.deleted) for t in traces) == [(1, True)] * 3 + [(2, False)] * 2
    # AND SQS moved the failing ones to the DLQ after maxReceiveCount receives
    dlq = probe_stack.client("sqs").receive_message(
        QueueUrl=probe_stack.provisioned.ref("ProbeDLQ"), MaxNumberOfMessages=10
    )
    assert sorted(m["MessageId"] for m in dlq["Messages"]) == sorted(bad)


@pytest.mark.parametrize("probe_stack", [{"BatchSize": "1"}], indirect=True)
def test_concurrent_invocations_never_exceed_maximum_concurrency(probe_stack: OfflineStack) -> None:
    # GIVEN MaximumConcurrency 2 (reserved concurrency 3) and eight slow single-record batches
    _send(probe_stack, [{"sleep": 0.3} for _ in range(8)])
    # WHEN the poller runs
    [poller] = probe_stack.start_pollers(warm=True)
    assert probe_stack.wait_until_drained(timeout=30)
    calls = _calls(probe_stack)
    # THEN at most two invocations overlapped in time, and two did
    events = sorted([(float(call["started"]), 1) for call in calls] + [(float(call["ended"]), -1) for call in calls])
    running, peak = 0, 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2
    assert poller.pool.max_in_flight == 2
    # AND they ran in two execution environments (processes), each reused after its cold start
    assert len({call["pid"] for call in calls}) == 2
