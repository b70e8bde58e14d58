"""A change-event subscriber on the offline stack: a rule on the results bus → an SQS queue.

Subscribers are outside the product (a CMS, a warehouse), so this rule is not in template.yaml;
the demo and the chaos audit add it to see what a subscriber receives (docs/events.md).
"""

from __future__ import annotations

import json
from typing import Any

from categorizer.change_events import SOURCE
from local.stack import OfflineStack

RULE_NAME = "offline-subscriber"
QUEUE_NAME = "offline-subscriber"


class Subscriber:
    def __init__(self, stack: OfflineStack) -> None:
        self._sqs = stack.client("sqs")
        events = stack.client("events")
        bus = stack.provisioned.ref("ResultsEventBus")
        self.queue_url: str = self._sqs.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name=RULE_NAME, EventBusName=bus, EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(Rule=RULE_NAME, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])

    def received(self) -> list[dict[str, Any]]:
        """Every event delivered since the last call (EventBridge envelopes), oldest first as received."""
        events: list[dict[str, Any]] = []
        while True:
            batch = self._sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return events
            events += [json.loads(message["Body"]) for message in batch]
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
