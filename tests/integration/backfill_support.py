"""BackfillStateMachine in moto with its tasks routed in-process, and a Batch API fake on loopback.

`backfill_in_moto` creates what the template declares for the backfill (pipeline and text buckets,
results table, DLQ, secret, active-model record, the four task functions with their template
environment, the state machine from its ASL) inside `mock_aws`. `FakeBatchOpenAI` speaks the REST
shapes the SDK parses for files and batches; each created batch follows the next `BatchPlan`.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import boto3
from moto import mock_aws

from categorizer.active_model import write_active_model
from categorizer.models import ActiveModel
from local import lambda_dispatch
from local.cfn import Resolver, substitute_definition
from tests.integration.support import PARAMETER, REGION, _template, _zip
from tests.support.openai_http import one_token_completion
from tests.support.paths import REPO

BUCKET = "pipeline-test-bucket"
TEXT_BUCKET = "text-test-bucket"
TABLE = "results"
MODEL_ID = "ft:gpt-4o-mini-2024-07-18:test:backfill:abc123"
TASKS = {
    "Plan": "PlanBackfillFunction",
    "SubmitBatch": "SubmitBatchFunction",
    "CheckBatch": "CheckBatchFunction",
    "CollectBatch": "CollectBatchFunction",
}
# A line whose article text holds this is refused by the endpoint (HTTP 400 in the error file).
REJECT_MARKER = "REJECT-ME"


@dataclass
class BatchPlan:
    """What the next created batch does: checks it stays in progress, and how it ends."""

    final: str = "completed"  # completed | expired (half the lines run) | queue_full (fails at create)
    running_polls: int = 1


@dataclass
class FakeBatchOpenAI:
    plans: list[BatchPlan] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    plan_of: dict[str, BatchPlan] = field(default_factory=dict)
    retrievals: dict[str, int] = field(default_factory=dict)
    # Answer the next N creates with a 500 after making the batch (a create whose reply was lost).
    lose_create_replies: int = 0
    # Runs at every batch retrieval (e.g. a live write landing while the batch runs).
    on_retrieve: Callable[[], None] | None = None
    base_url: str = ""

    def finish(self, batch: dict[str, Any]) -> None:
        plan = self.plan_of[batch["id"]]
        lines = [json.loads(line) for line in self.files[batch["input_file_id"]].decode().splitlines()]
        ran = lines if plan.final == "completed" else lines[: len(lines) // 2]
        output, errors = [], []
        for line in ran:
            body = line["body"]
            if REJECT_MARKER in body["messages"][-1]["content"]:
                error = {"error": {"message": "bad request", "type": "invalid_request_error"}}
                errors.append(
                    {
                        "id": "r",
                        "custom_id": line["custom_id"],
                        "response": {"status_code": 400, "request_id": "q", "body": error},
                        "error": None,
                    }
                )
                continue
            completion = one_token_completion(body["model"], [("3", 0.8), ("7", 0.15)], prompt_tokens=100)
            output.append(
                {
                    "id": "r",
                    "custom_id": line["custom_id"],
                    "response": {"status_code": 200, "request_id": "q", "body": completion.model_dump(mode="json")},
                    "error": None,
                }
            )
        for line in lines[len(ran) :]:
            errors.append(
                {
                    "id": "r",
                    "custom_id": line["custom_id"],
                    "response": None,
                    "error": {"code": "batch_expired", "message": "expired"},
                }
            )
        for kind, rows in (("output_file_id", output), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self.files) + 1:04d}"
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[kind] = file_id
        batch["status"] = plan.final
        batch["request_counts"] = {
            "total": len(lines),
            "completed": len(output),
            "failed": sum(1 for e in errors if e["response"]),
        }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, document: Any, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        fake = self.server.fake
        path = urlparse(self.path).path
        if m := re.fullmatch(r"/v1/files/([\w-]+)/content", path):
            return self._send(200, None, fake.files[m.group(1)])
        if path == "/v1/batches":
            data = list(reversed(fake.batches.values()))
            return self._send(200, {"object": "list", "data": data, "has_more": False})
        if m := re.fullmatch(r"/v1/batches/([\w-]+)", path):
            batch = fake.batches[m.group(1)]
            fake.retrievals[batch["id"]] = fake.retrievals.get(batch["id"], 0) + 1
            if fake.on_retrieve is not None:
                fake.on_retrieve()
            if (
                batch["status"] == "in_progress"
                and fake.retrievals[batch["id"]] > fake.plan_of[batch["id"]].running_polls
            ):
                fake.finish(batch)
            return self._send(200, batch)
        self._send(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        fake = self.server.fake
        path = urlparse(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if path == "/v1/files":
            message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw
            )
            parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
            file_id = f"file-{len(fake.files) + 1:04d}"
            fake.files[file_id] = bytes(parts["file"].get_content())
            body = {
                "id": file_id,
                "object": "file",
                "bytes": len(fake.files[file_id]),
                "created_at": int(time.time()),
                "filename": parts["file"].get_filename(),
                "purpose": "batch",
                "status": "processed",
            }
            return self._send(200, body)
        if path == "/v1/batches":
            payload = json.loads(raw)
            plan = fake.plans.pop(0) if fake.plans else BatchPlan()
            batch_id = f"batch_{len(fake.batches) + 1:04d}"
            batch = {
                "id": batch_id,
                "object": "batch",
                "endpoint": payload["endpoint"],
                "input_file_id": payload["input_file_id"],
                "completion_window": payload["completion_window"],
                "status": "in_progress",
                "created_at": int(time.time()),
                "metadata": payload.get("metadata"),
                "errors": None,
                "output_file_id": None,
                "error_file_id": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
            if plan.final == "queue_full":
                batch["status"] = "failed"
                batch["errors"] = {
                    "object": "list",
                    "data": [
                        {
                            "code": "token_limit_exceeded",
                            "message": "Enqueued token limit reached",
                            "line": None,
                            "param": None,
                        }
                    ],
                }
            fake.batches[batch_id] = batch
            fake.plan_of[batch_id] = plan
            if fake.lose_create_replies:
                fake.lose_create_replies -= 1
                return self._send(500, {"error": {"message": "server error", "type": "server_error"}})
            return self._send(200, batch)
        self._send(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})


class _Server(ThreadingHTTPServer):
    fake: FakeBatchOpenAI


@contextmanager
def serve_batch_openai() -> Iterator[FakeBatchOpenAI]:
    fake = FakeBatchOpenAI()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class BackfillStack:
    sfn: Any
    s3: Any
    sqs: Any
    table: Any
    dlq_url: str
    state_machine_arn: str

    def put_archive(self, lines: list[str], key: str = "archive/part-1.jsonl") -> str:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body="".join(line + "\n" for line in lines).encode())
        return f"s3://{BUCKET}/{key.rsplit('/', 1)[0]}/"

    def run(self, name: str, run_input: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        arn = self.sfn.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(run_input))[
            "executionArn"
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return dict(described)
            time.sleep(0.05)
        raise AssertionError(f"execution {name} still running after {timeout}s")

    def row(self, article_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.table.get_item(Key={"article_id": article_id}).get("Item")
        return item

    def dead_letters(self) -> list[dict[str, Any]]:
        letters: list[dict[str, Any]] = []
        while True:
            page = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not page:
                return letters
            letters += page


@contextmanager
def backfill_in_moto(openai: FakeBatchOpenAI) -> Iterator[BackfillStack]:
    """The backfill's resources as the template declares them, in `mock_aws`, tasks routed in-process."""
    template = _template()
    resources = template["Resources"]
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (BUCKET, TEXT_BUCKET):
            s3.create_bucket(Bucket=bucket)
        table = boto3.resource("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "article_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "article_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName="article-dlq")["QueueUrl"]
        secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="openai", SecretString=json.dumps({"api_key": "sk-test-key"})
        )["ARN"]
        write_active_model(
            boto3.client("ssm", region_name=REGION),
            PARAMETER,
            ActiveModel(model_id=MODEL_ID, taxonomy_version="iab-3.1"),
        )
        role = boto3.client("iam", region_name=REGION).create_role(RoleName="role", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        lam = boto3.client("lambda", region_name=REGION)
        arns: dict[str, str] = {}
        refs = {"PipelineBucket": BUCKET, "TextBucket": TEXT_BUCKET, "ResultsTable": TABLE, "ArticleDLQ": dlq_url}
        params = {
            "ActiveModelParameterName": PARAMETER,
            "OpenAIApiKeySecretArn": secret_arn,
            "BackfillCostGuardUSD": "5",
            "BackfillShardRequests": "3",
            "BackfillMaxConcurrency": "2",
            "InputTokenBudget": "256",
            "TopK": "5",
            "LowConfidenceThreshold": "0.5",
        }
        resolver = Resolver(
            parameters=params,
            region=REGION,
            stack_name="test",
            resource_ref=lambda name: refs[name],
            resource_attribute=lambda name, attribute: arns[name],
        )
        functions: dict[str, lambda_dispatch.InProcessFunction] = {}
        for task, logical_id in TASKS.items():
            props = resources[logical_id]["Properties"]
            env = {k: str(v) for k, v in resolver.resolve(props["Environment"]["Variables"]).items()}
            env |= {"OPENAI_BASE_URL": openai.base_url, "OPENAI_MAX_RETRIES": "0", "CONFIG_CACHE_SECONDS": "0"}
            name = f"test-{task}"
            arns[logical_id] = lam.create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=role,
                Handler=props["Handler"],
                Code={"ZipFile": _zip()},
                Environment={"Variables": env},
            )["FunctionArn"]
            functions[task] = lambda_dispatch.InProcessFunction(name, REPO / props["CodeUri"], props["Handler"], env)
        machine = resources["BackfillStateMachine"]["Properties"]
        definition = substitute_definition(
            (REPO / machine["DefinitionUri"]).read_text(), resolver.resolve(machine["DefinitionSubstitutions"])
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(name="backfill", definition=definition, roleArn=role)["stateMachineArn"]
        with lambda_dispatch.routed({f.name: f for f in functions.values()}):
            yield BackfillStack(sfn, s3, sqs, table, dlq_url, arn)
