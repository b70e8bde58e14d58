"""The fine-tuning pipeline in moto with its tasks routed in-process, and OpenAI on loopback.

`pipeline_in_moto` creates what the template declares for the pipeline (bucket, secret, the six
task functions with their template environment, the state machine from its ASL with the
template's DefinitionSubstitutions) inside `mock_aws`, and routes moto's Lambda Invoke to the
handlers in functions/finetune/app.py (the emulator's local/lambda_dispatch.py). OpenAI is
`FakeFineTuningOpenAI`, an HTTP server speaking the REST shapes the SDK parses, whose jobs
follow a scripted plan.
"""

from __future__ import annotations

import email.parser
import email.policy
import functools
import hashlib
import io
import json
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
from moto import mock_aws

from local import lambda_dispatch
from local.cfn import Resolver, load_template, substitute_definition
from tests.support.openai_http import one_token_completion
from tests.support.paths import REPO

REGION = "us-east-1"
BUCKET = "pipeline-test-bucket"
PARAMETER = "/article-categorizer/active-model"
TASKS = ("ExportDataset", "UploadFiles", "StartJob", "CheckJob", "Evaluate", "Promote")
STAND_IN_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


@dataclass
class JobPlan:
    """What the next created job does: how many checks it stays running, how it ends."""

    final: str = "succeeded"  # succeeded | failed | cancelled
    running_polls: int = 1
    accuracy: float = 1.0  # share of validation prompts the fine-tuned model answers right


@dataclass
class FakeJob:
    body: dict[str, Any]
    plan: JobPlan
    retrievals: int = 0


@dataclass
class FakeFineTuningOpenAI:
    """Files, fine-tuning jobs that follow their `JobPlan`, and chat completions from the fine-tuned models."""

    plans: list[JobPlan] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    chat_requests: int = 0
    base_url: str = ""

    def answer_key(self, job: FakeJob) -> dict[str, str]:
        """prompt user text → label, from the job's files (so the fake 'knows' the truth)."""
        key: dict[str, str] = {}
        for file_id in (job.body["training_file"], job.body["validation_file"]):
            for line in self.contents[file_id].decode().splitlines():
                messages = json.loads(line)["messages"]
                key[messages[1]["content"]] = messages[-1]["content"]
        return key

    def model_job(self, model: str) -> FakeJob:
        return next(j for j in self.jobs.values() if j.body.get("fine_tuned_model") == model)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, document: Any) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urlparse(self.path)
        if m := re.fullmatch(r"/v1/files/([\w-]+)", url.path):
            return self._send(200, fake.files[m.group(1)])
        if url.path == "/v1/fine_tuning/jobs":
            query = parse_qs(url.query)
            wanted = {k[9:-1]: v[0] for k, v in query.items() if k.startswith("metadata[")}
            data = [
                j.body
                for j in reversed(fake.jobs.values())
                if all((j.body["metadata"] or {}).get(k) == v for k, v in wanted.items())
            ]
            return self._send(200, {"object": "list", "data": data, "has_more": False})
        if m := re.fullmatch(r"/v1/fine_tuning/jobs/([\w-]+)", url.path):
            job = fake.jobs[m.group(1)]
            job.retrievals += 1
            if job.retrievals > job.plan.running_polls and job.body["status"] == "running":
                job.body["status"] = job.plan.final
                job.body["finished_at"] = int(time.time())
                if job.plan.final == "succeeded":
                    job.body["fine_tuned_model"] = (
                        f"ft:{job.body['model']}:test:{job.body['suffix']}:{job.body['id'][-6:]}"
                    )
                    job.body["trained_tokens"] = 1234
                elif job.plan.final == "failed":
                    job.body["error"] = {
                        "code": "invalid_training_file",
                        "message": "bad file",
                        "param": "training_file",
                    }
            elif job.body["status"] == "queued":
                job.body["status"] = "running"
            return self._send(200, job.body)
        self._send(404, {"error": {"message": f"no route {url.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        fake = self.server.fake
        url = urlparse(self.path)
        raw = self._body()
        if url.path == "/v1/files":
            message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw
            )
            parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
            content = bytes(parts["file"].get_content())
            file_id = f"file-{len(fake.files) + 1:04d}"
            fake.contents[file_id] = content
            fake.files[file_id] = {
                "id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": parts["file"].get_filename(), "purpose": "fine-tune", "status": "processed",
            }  # fmt: skip
            return self._send(200, fake.files[file_id])
        payload = json.loads(raw or b"{}")
        if url.path == "/v1/fine_tuning/jobs":
            job_id = f"ftjob-{len(fake.jobs) + 1:06d}"
            body = {
                "id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
                "fine_tuned_model": None, "finished_at": None, "hyperparameters": {"n_epochs": 3},
                "model": payload["model"], "organization_id": "org-test", "result_files": [], "seed": payload["seed"],
                "status": "queued", "trained_tokens": None, "training_file": payload["training_file"],
                "validation_file": payload["validation_file"], "metadata": payload.get("metadata"),
                "suffix": payload.get("suffix"), "method": payload.get("method"),
            }  # fmt: skip
            fake.jobs[job_id] = FakeJob(body, fake.plans.pop(0) if fake.plans else JobPlan())
            return self._send(200, body)
        if url.path == "/v1/chat/completions":
            fake.chat_requests += 1
            job = fake.model_job(payload["model"])
            user = payload["messages"][1]["content"]
            truth = fake.answer_key(job)[user]
            labels = sorted(set(fake.answer_key(job).values()), key=int)
            right = int(hashlib.sha256(user.encode()).hexdigest(), 16) % 1000 < job.plan.accuracy * 1000
            wrong = labels[(labels.index(truth) + 1) % len(labels)]
            first, second = (truth, wrong) if right else (wrong, truth)
            top = [(first, 0.8), (second, 0.15), (" x", 0.05)][: payload["top_logprobs"]]
            return self._send(
                200, one_token_completion(payload["model"], top, prompt_tokens=50).model_dump(mode="json")
            )
        self._send(404, {"error": {"message": f"no route {url.path}", "type": "invalid_request_error"}})


class _Server(ThreadingHTTPServer):
    fake: FakeFineTuningOpenAI


@contextmanager
def serve_fine_tuning_openai() -> Iterator[FakeFineTuningOpenAI]:
    """A `FakeFineTuningOpenAI` on a loopback port (the task functions build their own clients)."""
    fake = FakeFineTuningOpenAI()
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
class PipelineStack:
    sfn: Any
    s3: Any
    ssm: Any
    state_machine_arn: str
    functions: dict[str, lambda_dispatch.InProcessFunction]
    backfill_state_machine_arn: str

    def put_labels(self, rows: list[dict[str, Any]], key: str = "labels/test.jsonl") -> None:
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())

    def run(self, name: str, run_input: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Start an execution and wait for its end; returns describe_execution."""
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

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return list(self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"])

    def json_object(self, uri: str) -> Any:
        key = uri.split(f"s3://{BUCKET}/", 1)[1]
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "")
    return buffer.getvalue()


@functools.cache
def _template() -> dict[str, Any]:
    return load_template(REPO / "template.yaml")


@contextmanager
def pipeline_in_moto(openai: FakeFineTuningOpenAI) -> Iterator[PipelineStack]:
    """The pipeline's resources as the template declares them, in `mock_aws`, tasks routed in-process."""
    template = _template()
    resources = template["Resources"]
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="openai", SecretString=json.dumps({"api_key": "sk-test-key"})
        )["ARN"]
        role = boto3.client("iam", region_name=REGION).create_role(RoleName="role", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        lam = boto3.client("lambda", region_name=REGION)
        arns: dict[str, str] = {}
        sfn = boto3.client("stepfunctions", region_name=REGION)
        # A stand-in for BackfillStateMachine (its own tests run it): Promote only starts it.
        backfill_arn = sfn.create_state_machine(name="backfill", definition=STAND_IN_DEFINITION, roleArn=role)[
            "stateMachineArn"
        ]
        refs = {"PipelineBucket": BUCKET, "BackfillStateMachine": backfill_arn}
        params = {
            "ActiveModelParameterName": PARAMETER,
            "OpenAIApiKeySecretArn": secret_arn,
            "CostGuardUSD": "50",
            "InputTokenBudget": str(template["Parameters"]["InputTokenBudget"]["Default"]),
            "TopK": "5",
        }
        resolver = Resolver(
            parameters=params,
            region=REGION,
            stack_name="test",
            resource_ref=lambda name: refs[name],
            resource_attribute=lambda name, attribute: arns[name],
        )
        functions: dict[str, lambda_dispatch.InProcessFunction] = {}
        for task in TASKS:
            props = resources[f"{task}Function"]["Properties"]
            env = {k: str(v) for k, v in resolver.resolve(props["Environment"]["Variables"]).items()}
            env |= {"OPENAI_BASE_URL": openai.base_url, "FILE_POLL_SECONDS": "0.05", "OPENAI_MAX_RETRIES": "0"}
            name = f"test-{task}"
            arns[f"{task}Function"] = lam.create_function(
                FunctionName=name, Runtime="python3.13", Role=role, Handler=props["Handler"],
                Code={"ZipFile": _zip()}, Environment={"Variables": env},
            )["FunctionArn"]  # fmt: skip
            functions[task] = lambda_dispatch.InProcessFunction(name, REPO / props["CodeUri"], props["Handler"], env)
        machine = resources["FineTuneStateMachine"]["Properties"]
        definition = substitute_definition(
            (REPO / machine["DefinitionUri"]).read_text(),
            resolver.resolve(machine["DefinitionSubstitutions"]),
        )
        arn = sfn.create_state_machine(name="finetune", definition=definition, roleArn=role)["stateMachineArn"]
        with lambda_dispatch.routed({f.name: f for f in functions.values()}):
            yield PipelineStack(sfn, s3, boto3.client("ssm", region_name=REGION), arn, functions, backfill_arn)
