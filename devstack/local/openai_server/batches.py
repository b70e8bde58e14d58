"""The Batch API: input-file checks, and worker threads that answer each request line with the chat logic.

Shapes and behaviour follow OpenAI's reference and guide, checked on these pages:
- API reference, https://platform.openai.com/docs/api-reference/batch (its source, openai/openai-openapi
  `openapi.yaml`: Batch, BatchError, BatchRequestCounts, CreateBatchRequest, ListBatchesResponse, and the
  per-line BatchRequestInput / BatchRequestOutput objects as of 2025-04);
- guide, https://platform.openai.com/docs/guides/batch: the statuses, the output and error files, "Batch
  expiration" (unrun requests go to the error file with code `batch_expired`), the limits (50,000 requests
  and 200 MB per batch; enqueued prompt tokens per model, a pool apart from the per-minute limits);
- a request that the endpoint answered with an HTTP error is written to the error file as its response
  (status_code, body.error) with "error": null: https://github.com/openai/openai-openapi/issues/302;
- the enqueued-token failure, BatchError(code="token_limit_exceeded", line=None, message="Enqueued token
  limit reached for …"): https://github.com/openai/openai-python/issues/2084;
- input-file failure codes as the real API reports them (invalid_json_line, duplicate_custom_id,
  url_mismatch, model_mismatch, empty_file, too_many_tasks): https://github.com/stdapi-ai/stdapi.ai/issues/240,
  the duplicate wording from https://community.openai.com/t/723696;
- request_counts.failed counts requests that ran and failed, not those an expiry or a cancel left unrun
  (observed: https://github.com/warmbly/warmbly/pull/333, https://github.com/BerriAI/litellm/pull/36034);
  a cancelled batch has an error file although nothing failed (the latter), which here holds the unrun
  requests as `batch_cancelled` lines, shaped like the documented `batch_expired` ones.

Not documented by OpenAI, chosen here: the wording of messages other than the ones quoted above, the
codes for a malformed line envelope (missing_required_parameter, invalid_value, invalid_request, after
the synchronous API's), the cap on reported input-file errors, the 400 for cancelling a finished batch,
and a batch whose input file was deleted before it ran (it fails, code null).

Statuses: validating → failed | in_progress → finalizing → completed; in_progress → expired;
validating | in_progress → cancelling → cancelled. One thread validates (so a batch meets the queue limit
while others run), another answers request lines one batch at a time, outside the rpm/tpm limits.
"""

from __future__ import annotations

import copy
import json
import queue
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from local.openai_server import chat
from local.openai_server.config import OpenAIServerConfig
from local.openai_server.errors import ApiError, bad_request, check_metadata, invalid, not_found, server_error
from local.openai_server.jobs import ORGANIZATION
from local.openai_server.store import Store, new_id

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
COMPLETION_WINDOW_SECONDS = 24 * 3600
# Batch input files expire 30 days after upload by default, output files 30 days after the batch ends.
FILE_TTL_SECONDS = 30 * 24 * 3600
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
CANCELLABLE = frozenset({"validating", "in_progress"})
QUEUED = frozenset({"in_progress", "finalizing", "cancelling"})
# A file with thousands of bad lines keeps its batch object small (OpenAI's own cap is not documented).
MAX_REPORTED_ERRORS = 100
# How often a running batch's progress is written to disk; retrieve reads it from memory.
SAVE_EVERY_SECONDS = 0.25
UNRUN_MESSAGES = {
    "batch_expired": "This request could not be executed before the completion window expired.",
    "batch_cancelled": "This request could not be executed before the batch was cancelled.",
}
DUPLICATE_MESSAGE = (
    "The custom_id for this request is a duplicate of another request. "
    "The custom_id parameter must be unique for each request in a batch."
)

Answer = Callable[[Any], dict[str, Any]]


class CreateBatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None


class RequestLine(BaseModel):
    """One line of a batch input file: OpenAI's request input object."""

    model_config = ConfigDict(extra="ignore")
    custom_id: str
    method: str
    url: str
    body: dict[str, Any]


@dataclass(frozen=True)
class InputFile:
    requests: list[RequestLine]
    model: str | None
    errors: list[dict[str, Any]]


def batch_error(code: str | None, message: str, line: int | None = None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _envelope_error(exc: ValidationError, line: int) -> dict[str, Any]:
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "missing":
        return batch_error("missing_required_parameter", f"Missing required parameter: '{param}'.", line, param)
    return batch_error("invalid_request", f"Invalid '{param or 'line'}': {first['msg']}", line, param)


def _request_line(number: int, raw: bytes, endpoint: str) -> RequestLine | dict[str, Any]:
    """The line's request, or the BatchError that fails the batch."""
    try:
        record = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8
        return batch_error("invalid_json_line", "This line is not parseable as valid JSON.", number)
    try:
        request = RequestLine.model_validate(record)
    except ValidationError as exc:
        return _envelope_error(exc, number)
    if request.method != "POST":
        return batch_error(
            "invalid_value", f"Invalid value: '{request.method}'. Supported values are: 'POST'.", number, "method"
        )
    if request.url != endpoint:
        return batch_error(
            "url_mismatch", f"The url '{request.url}' does not match the batch's endpoint '{endpoint}'.", number, "url"
        )
    return request


def parse_input_file(content: bytes, endpoint: str, max_requests: int | None) -> InputFile:
    """The requests of a batch input file (JSONL), its one model, and the errors that fail it."""
    numbered = [(n, raw) for n, raw in enumerate(content.split(b"\n"), start=1) if raw.strip()]
    if not numbered:
        return InputFile([], None, [batch_error("empty_file", "The batch input file is empty.")])
    errors = []
    if max_requests is not None and len(numbered) > max_requests:
        message = f"The batch input file has {len(numbered)} requests; a batch takes at most {max_requests}."
        errors.append(batch_error("too_many_tasks", message))
    requests: list[RequestLine] = []
    seen: set[str] = set()
    model: str | None = None
    for number, raw in numbered:
        request = _request_line(number, raw, endpoint)
        if isinstance(request, dict):
            errors.append(request)
            continue
        if request.custom_id in seen:
            errors.append(batch_error("duplicate_custom_id", DUPLICATE_MESSAGE, number, "custom_id"))
            continue
        seen.add(request.custom_id)
        line_model = request.body.get("model")
        if isinstance(line_model, str):
            if model is None:
                model = line_model
            elif line_model != model:
                message = f"The model '{line_model}' differs from the batch's model '{model}': a batch uses one model."
                errors.append(batch_error("model_mismatch", message, number, "body.model"))
                continue
        requests.append(request)
    return InputFile(requests, model, errors[:MAX_REPORTED_ERRORS])


def prompt_tokens(body: dict[str, Any]) -> int:
    """What a request puts in its model's queue; a body the chat endpoint refuses puts nothing."""
    try:
        return chat.prompt_tokens(chat.parse_request(body))
    except ApiError:
        return 0


def _usage(output_lines: list[str]) -> dict[str, Any]:
    usages = [json.loads(line)["response"]["body"]["usage"] for line in output_lines]
    input_tokens = sum(u["prompt_tokens"] for u in usages)
    output_tokens = sum(u["completion_tokens"] for u in usages)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


class BatchRunner:
    """Creates batches; one thread validates them, another answers their request lines with `answer`."""

    def __init__(self, store: Store, config: OpenAIServerConfig, answer: Answer) -> None:
        self.store = store
        self.config = config
        self._answer = answer
        self._random = random.Random(config.seed)
        self._stopping = threading.Event()
        self._validating: queue.Queue[str | None] = queue.Queue()
        self._running: queue.Queue[str | None] = queue.Queue()
        self._threads = [
            threading.Thread(
                target=self._drain, args=(self._validating, self._validate), name="batch-validator", daemon=True
            ),
            threading.Thread(target=self._drain, args=(self._running, self._run), name="batch-worker", daemon=True),
        ]
        # A restart picks up the batches the previous process did not finish, where they stopped.
        for batch in store.batches.values():
            if batch["status"] == "validating":
                self._validating.put(batch["id"])
            elif batch["status"] not in TERMINAL:
                self._running.put(batch["id"])

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop between two request lines; unfinished batches stay as they are for the next start."""
        self._stopping.set()
        self._validating.put(None)
        self._running.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def _drain(self, tasks: queue.Queue[str | None], handle: Callable[[str], None]) -> None:
        while (batch_id := tasks.get()) is not None and not self._stopping.is_set():
            handle(batch_id)

    # the API
    def create(self, body: Any) -> dict[str, Any]:
        try:
            request = CreateBatchRequest.model_validate(body)
        except ValidationError as exc:
            raise bad_request(exc) from None
        for param, value, supported in (
            ("endpoint", request.endpoint, ENDPOINT),
            ("completion_window", request.completion_window, COMPLETION_WINDOW),
        ):
            if value != supported:
                raise invalid(f"Invalid value: '{value}'. Supported values are: '{supported}'.", param, "invalid_value")
        check_metadata(request.metadata)
        file = self.store.files.get(request.input_file_id)
        if file is None:
            raise invalid(f"No such File object: {request.input_file_id}", "input_file_id")
        if file["purpose"] != "batch":
            message = f"File {request.input_file_id} has purpose '{file['purpose']}'; a batch input needs 'batch'."
            raise invalid(message, "input_file_id")
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": new_id("batch_"),
            "object": "batch",
            "endpoint": request.endpoint,
            "model": None,
            "errors": None,
            "input_file_id": request.input_file_id,
            "completion_window": request.completion_window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + COMPLETION_WINDOW_SECONDS,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "usage": None,
            "metadata": request.metadata,
        }
        with self.store.lock:
            self.store.save_batch(batch, queued_tokens=0)
            created = copy.deepcopy(batch)
        self._validating.put(batch["id"])
        return created

    def _batch(self, batch_id: str) -> dict[str, Any]:
        batch = self.store.batches.get(batch_id)
        if batch is None:
            raise not_found(f"No batch found with id '{batch_id}'.", "batch_id")
        return batch

    def get(self, batch_id: str) -> dict[str, Any]:
        # Copies, taken under the lock: the worker changes a running batch's counts meanwhile.
        with self.store.lock:
            return copy.deepcopy(self._batch(batch_id))

    def newest_first(self) -> list[dict[str, Any]]:
        with self.store.lock:
            return [copy.deepcopy(b) for b in reversed(self.store.batches.values())]

    def cancel(self, batch_id: str) -> dict[str, Any]:
        with self.store.lock:
            batch = self._batch(batch_id)
            if batch["status"] in CANCELLABLE:
                self._update(batch, status="cancelling", cancelling_at=int(time.time()))
            elif batch["status"] not in ("cancelling", "cancelled"):
                raise invalid(f"Cannot cancel a batch with status '{batch['status']}'.", "batch_id")
            return copy.deepcopy(batch)

    # the workers
    def _update(self, batch: dict[str, Any], queued_tokens: int | None = None, **fields: Any) -> None:
        with self.store.lock:
            batch.update(fields)
            self.store.save_batch(batch, queued_tokens)

    def _fail(self, batch: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        self.store.drop_batch_results(batch["id"])
        self._update(batch, status="failed", failed_at=int(time.time()), errors={"object": "list", "data": errors})

    def _input(self, batch: dict[str, Any], max_requests: int | None) -> InputFile:
        try:
            content = self.store.file_content(batch["input_file_id"])
        except FileNotFoundError:  # deleted since the create
            return InputFile([], None, [batch_error(None, f"No such File object: {batch['input_file_id']}")])
        return parse_input_file(content, batch["endpoint"], max_requests)

    def _queued_tokens(self, model: str) -> int:
        return sum(
            self.store.batch_tokens.get(b["id"], 0)
            for b in self.store.batches.values()
            if b["model"] == model and b["status"] in QUEUED
        )

    def _validate(self, batch_id: str) -> None:
        batch = self.store.batches[batch_id]
        parsed = self._input(batch, self.config.batch_max_requests)
        tokens = sum(prompt_tokens(request.body) for request in parsed.requests)
        limit = self.config.batch_queue_tokens
        with self.store.lock:
            if batch["status"] == "cancelling":
                self._update(batch, status="cancelled", cancelled_at=int(time.time()))
                return
            if parsed.errors:
                self._fail(batch, parsed.errors)
                return
            if limit and parsed.model is not None and self._queued_tokens(parsed.model) + tokens > limit:
                message = (
                    f"Enqueued token limit reached for {parsed.model} in organization org-{ORGANIZATION}. "
                    f"Limit: {limit:,} enqueued tokens. Please try again once some in_progress batches have been "
                    "completed."
                )
                self._fail(batch, [batch_error("token_limit_exceeded", message)])
                return
            counts = {"total": len(parsed.requests), "completed": 0, "failed": 0}
            self._update(
                batch,
                queued_tokens=tokens,
                status="in_progress",
                in_progress_at=int(time.time()),
                model=parsed.model,
                request_counts=counts,
            )
        self._running.put(batch_id)

    def _respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The chat endpoint's answer to one request line: its status code and JSON body."""
        if self._random.random() < self.config.batch_error_rate:
            error = server_error(500)
        else:
            try:
                return 200, self._answer(body)
            except ApiError as exc:
                error = exc
        return error.status, error.body()

    def _stop_reason(self, batch: dict[str, Any], ran: int) -> str | None:
        """Why the batch stops before its next request: cancelled, expired, or None to go on."""
        if batch["status"] == "cancelling":
            return "batch_cancelled"
        expire_after = self.config.batch_expire_after_requests
        if (expire_after is not None and ran >= expire_after) or time.time() >= batch["expires_at"]:
            return "batch_expired"
        return None

    def _run(self, batch_id: str) -> None:
        batch = self.store.batches[batch_id]
        parsed = self._input(batch, None)  # validated already; a limit changed since does not apply
        if parsed.errors:
            self._fail(batch, parsed.errors)
            return
        requests = parsed.requests
        # Lines are answered in order, so the partial results say where a restarted batch resumes.
        completed = len(self.store.batch_results(batch_id, "output"))
        failed = len(self.store.batch_results(batch_id, "error"))
        done = completed + failed
        with self.store.lock:
            counts = batch["request_counts"]
            counts.update(completed=completed, failed=failed)
        saved = time.monotonic()
        reason: str | None = None
        for ran in range(done, len(requests)):
            if (reason := self._stop_reason(batch, ran)) is not None:
                break
            if self._stopping.wait(self.config.batch_line_delay_ms / 1000):
                self._update(batch)  # the progress so far, for the next start
                return
            request = requests[ran]
            status, body = self._respond(request.body)
            kind = "output" if 200 <= status < 300 else "error"
            response = {"status_code": status, "request_id": f"req_{secrets.token_hex(16)}", "body": body}
            line = {"id": new_id("batch_req_"), "custom_id": request.custom_id, "response": response, "error": None}
            self.store.append_batch_result(batch_id, kind, line)
            with self.store.lock:
                counts["completed" if kind == "output" else "failed"] += 1
                if time.monotonic() - saved >= SAVE_EVERY_SECONDS:
                    self.store.save_batch(batch)
                    saved = time.monotonic()
        else:
            ran = len(requests)
        self._finish(batch, reason, requests[ran:] if reason else [])

    def _unrun(self, request: RequestLine, reason: str) -> str:
        error = {"code": reason, "message": UNRUN_MESSAGES[reason]}
        line = {"id": new_id("batch_req_"), "custom_id": request.custom_id, "response": None, "error": error}
        return json.dumps(line, ensure_ascii=False)

    def _result_file(self, batch_id: str, kind: str, lines: list[str]) -> str | None:
        if not lines:
            return None
        content = ("\n".join(lines) + "\n").encode()
        return str(self.store.add_file(f"{batch_id}_{kind}.jsonl", "batch_output", content, FILE_TTL_SECONDS)["id"])

    def _finish(self, batch: dict[str, Any], reason: str | None, unrun: list[RequestLine]) -> None:
        with self.store.lock:
            if reason is None and batch["status"] == "cancelling":
                reason = "batch_cancelled"  # cancelled after its last request ran
            if reason is None:
                self._update(batch, status="finalizing", finalizing_at=int(time.time()))
        batch_id = batch["id"]
        outputs = self.store.batch_results(batch_id, "output")
        errors = self.store.batch_results(batch_id, "error") + [self._unrun(r, str(reason)) for r in unrun]
        status, stamp = {
            None: ("completed", "completed_at"),
            "batch_expired": ("expired", "expired_at"),
            "batch_cancelled": ("cancelled", "cancelled_at"),
        }[reason]
        self._update(
            batch,
            status=status,
            usage=_usage(outputs),
            output_file_id=self._result_file(batch_id, "output", outputs),
            error_file_id=self._result_file(batch_id, "error", errors),
            **{stamp: int(time.time())},
        )
        self.store.drop_batch_results(batch_id)
