"""What the Lambda Python runtime hands a handler, for the offline runtime, tests and benchmarks.

One home for the context object, the handler import (a module loaded from its file under a
unique name, so two loads never share module state, as two execution environments do not)
and the SQS event a mapping passes. Functions never import this: it stands in for Lambda.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:article-queue"

Handler = Callable[[Any, Any], Any]
_IDENTIFIER_UNSAFE = re.compile(r"\W")


class LambdaContext:
    """The context object: the attributes handlers and Powertools read.

    `get_remaining_time_in_millis()` counts down to `deadline` (epoch seconds), by default
    `timeout_seconds` after the context was made.
    """

    def __init__(
        self,
        function_name: str = "CategorizeFunction",
        *,
        aws_request_id: str | None = None,
        invoked_function_arn: str | None = None,
        memory_limit_in_mb: int = 512,
        log_stream_name: str = "in-process",
        timeout_seconds: float = 30.0,
        deadline: float | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            invoked_function_arn or f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        )
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = log_stream_name
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.time() + timeout_seconds if deadline is None else deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def load_module_from_file(path: Path, name_hint: str) -> ModuleType:
    """Import `path` afresh under a module name no other load uses (registered in sys.modules)."""
    module_name = f"_lambda_{_IDENTIFIER_UNSAFE.sub('_', name_hint)}_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_handler(code_dir: Path, handler: str, name_hint: str) -> Handler:
    """The function a Handler setting (`module.function`, module dotted) names in `code_dir`."""
    module_path, _, function_name = handler.rpartition(".")
    relative = Path(*module_path.split("."))
    file = code_dir / relative.with_suffix(".py")
    if not file.exists():
        file = code_dir / relative / "__init__.py"
    function: Handler = getattr(load_module_from_file(file, f"{name_hint}_{module_path}"), function_name)
    return function


def sqs_attributes(receive_count: int = 1) -> dict[str, str]:
    """The system attributes of a received message."""
    return {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": "1764000000000",
        "SenderId": "AIDAEXAMPLE",
        "ApproximateFirstReceiveTimestamp": "1764000000001",
    }


def sqs_record(
    body: str,
    *,
    message_id: str | None = None,
    receipt_handle: str = "rh",
    attributes: Mapping[str, str] | None = None,
    message_attributes: Mapping[str, Any] | None = None,
    md5_of_body: str | None = None,
    md5_of_message_attributes: str | None = None,
    queue_arn: str = QUEUE_ARN,
    region: str = REGION,
) -> dict[str, Any]:
    """One record of the event Lambda passes for an SQS batch (message attributes already in its shape)."""
    record: dict[str, Any] = {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": dict(sqs_attributes() if attributes is None else attributes),
        "messageAttributes": dict(message_attributes or {}),
        "md5OfBody": md5_of_body or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if md5_of_message_attributes is not None:
        record["md5OfMessageAttributes"] = md5_of_message_attributes
    return record


def sqs_event(*bodies: Mapping[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
    """An SQS batch event of these message bodies (a mapping is sent as JSON)."""
    return {
        "Records": [
            sqs_record(
                body if isinstance(body, str) else json.dumps(body, ensure_ascii=False),
                message_id=f"m-{index}-{uuid.uuid4().hex[:6]}",
                receipt_handle=f"rh-{index}",
                attributes=sqs_attributes(receive_count),
            )
            for index, body in enumerate(bodies)
        ]
    }
