"""The WSGI application: OpenAI's REST routes, the limits and faults, and /_admin."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local.openai_server import chat
from local.openai_server.batches import FILE_TTL_SECONDS, BatchRunner
from local.openai_server.config import STARTUP_ONLY_FIELDS, OpenAIServerConfig
from local.openai_server.errors import ApiError, invalid, not_found, server_error
from local.openai_server.jobs import BASE_MODELS, JobRunner
from local.openai_server.limits import Admission, RateLimiter, Stats, format_duration
from local.openai_server.store import Store
from local.textmodel import TextModel

FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
DEFAULT_PAGE = 20

_ROUTES = Map(
    [
        Rule("/v1/files", methods=["POST"], endpoint="upload_file"),
        Rule("/v1/files", methods=["GET"], endpoint="list_files"),
        Rule("/v1/files/<file_id>", methods=["GET"], endpoint="get_file"),
        Rule("/v1/files/<file_id>", methods=["DELETE"], endpoint="delete_file"),
        Rule("/v1/files/<file_id>/content", methods=["GET"], endpoint="file_content"),
        Rule("/v1/fine_tuning/jobs", methods=["POST"], endpoint="create_job"),
        Rule("/v1/fine_tuning/jobs", methods=["GET"], endpoint="list_jobs"),
        Rule("/v1/fine_tuning/jobs/<job_id>", methods=["GET"], endpoint="get_job"),
        Rule("/v1/fine_tuning/jobs/<job_id>/events", methods=["GET"], endpoint="job_events"),
        Rule("/v1/fine_tuning/jobs/<job_id>/cancel", methods=["POST"], endpoint="cancel_job"),
        Rule("/v1/batches", methods=["POST"], endpoint="create_batch"),
        Rule("/v1/batches", methods=["GET"], endpoint="list_batches"),
        Rule("/v1/batches/<batch_id>", methods=["GET"], endpoint="get_batch"),
        Rule("/v1/batches/<batch_id>/cancel", methods=["POST"], endpoint="cancel_batch"),
        Rule("/v1/chat/completions", methods=["POST"], endpoint="chat_completions"),
        Rule("/v1/models", methods=["GET"], endpoint="list_models"),
        Rule("/v1/models/<path:model>", methods=["GET"], endpoint="get_model"),
        Rule("/_admin/config", methods=["GET"], endpoint="get_config"),
        Rule("/_admin/config", methods=["POST"], endpoint="set_config"),
        Rule("/_admin/stats", methods=["GET"], endpoint="get_stats"),
        Rule("/_admin/reset-stats", methods=["POST"], endpoint="reset_stats"),
    ],
    strict_slashes=False,
)


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(value, ensure_ascii=False), status, headers, mimetype="application/json")


def _page(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    """OpenAI's cursor page: newest first, `after` is the id of the last item already seen."""
    try:
        limit = int(request.args.get("limit", DEFAULT_PAGE))
    except ValueError:
        raise invalid("Invalid 'limit': expected an integer.", "limit") from None
    if not 1 <= limit <= 100:
        raise invalid("Invalid 'limit': expected a value between 1 and 100.", "limit")
    after = request.args.get("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


class OpenAIApp:
    def __init__(self, config: OpenAIServerConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.jobs = JobRunner(store, config)
        self.batches = BatchRunner(store, config, self.answer_chat)
        self.stats = Stats()
        self._lock = threading.Lock()
        self._apply(config)

    def _apply(self, config: OpenAIServerConfig) -> None:
        self.config = config
        self.jobs.config = config
        self.batches.config = config
        self.limiter = RateLimiter(config.rpm, config.tpm, config.bucket_seconds)
        self._random = random.Random(config.seed)
        self._np_random = np.random.default_rng(config.seed)

    # WSGI
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        started = time.perf_counter()
        try:
            endpoint, args = _ROUTES.bind_to_environ(environ).match()
            response: Response = getattr(self, endpoint)(request, **args)
        except ApiError as exc:
            response = _json(exc.body(), exc.status, exc.headers)
        except HTTPException as exc:
            message = f"Invalid URL ({request.method} {request.path})"
            response = _json(ApiError(exc.code or 404, message).body(), exc.code or 404)
        if request.path == "/v1/chat/completions":
            self.stats.response(response.status_code)
        response.headers["openai-processing-ms"] = str(int((time.perf_counter() - started) * 1000))
        response.headers["x-request-id"] = f"req_{self._random.getrandbits(64):016x}"
        return response(environ, start_response)

    def _body(self, request: Request) -> Any:
        try:
            return json.loads(request.get_data() or b"{}")
        except json.JSONDecodeError:
            raise invalid("We could not parse the JSON body of your request.") from None

    # files
    def upload_file(self, request: Request) -> Response:
        purpose = request.form.get("purpose")
        upload = request.files.get("file")
        if upload is None:
            raise invalid("Missing required parameter: 'file'.", "file")
        if purpose not in FILE_PURPOSES:
            raise invalid(f"Invalid value for 'purpose': {purpose!r}.", "purpose")
        filename = upload.filename or "upload"
        if purpose == "fine-tune" and not filename.endswith(".jsonl"):
            raise invalid("Invalid file format for Fine-Tuning API. Must be .jsonl", "file")
        content = upload.read()
        if purpose != "batch":
            return _json(self.store.add_file(filename, purpose, content))
        if not filename.endswith(".jsonl"):
            raise invalid("Invalid file format for Batch API. Must be .jsonl", "file")
        limit = self.config.batch_max_file_bytes
        if len(content) > limit:
            raise invalid(f"File is too large for the Batch API: {len(content)} bytes, at most {limit}.", "file")
        return _json(self.store.add_file(filename, purpose, content, FILE_TTL_SECONDS))

    def _file(self, file_id: str) -> dict[str, Any]:
        file = self.store.files.get(file_id)
        if file is None:
            raise not_found(f"No such File object: {file_id}", "id")
        return file

    def list_files(self, request: Request) -> Response:
        files = list(reversed(self.store.files.values()))
        if purpose := request.args.get("purpose"):
            files = [f for f in files if f["purpose"] == purpose]
        return _json(_page(files, request))

    def get_file(self, request: Request, file_id: str) -> Response:
        return _json(self._file(file_id))

    def delete_file(self, request: Request, file_id: str) -> Response:
        self._file(file_id)
        self.store.delete_file(file_id)
        return _json({"id": file_id, "object": "file", "deleted": True})

    def file_content(self, request: Request, file_id: str) -> Response:
        self._file(file_id)
        return Response(self.store.file_content(file_id), mimetype="application/octet-stream")

    # fine-tuning jobs
    def create_job(self, request: Request) -> Response:
        return _json(self.jobs.create(self._body(request)))

    def list_jobs(self, request: Request) -> Response:
        jobs = list(reversed(self.store.jobs.values()))
        # metadata[k]=v filters, as the SDK's `metadata={"k": "v"}` sends them.
        wanted = {
            key[len("metadata[") : -1]: value for key, value in request.args.items() if key.startswith("metadata[")
        }
        jobs = [j for j in jobs if all((j["metadata"] or {}).get(k) == v for k, v in wanted.items())]
        return _json(_page(jobs, request))

    def get_job(self, request: Request, job_id: str) -> Response:
        return _json(self.jobs.get(job_id))

    def job_events(self, request: Request, job_id: str) -> Response:
        self.jobs.get(job_id)
        with self.store.lock:
            events = list(reversed(self.store.events.get(job_id, [])))
        return _json(_page(events, request))

    def cancel_job(self, request: Request, job_id: str) -> Response:
        return _json(self.jobs.cancel(job_id))

    # batches
    def create_batch(self, request: Request) -> Response:
        return _json(self.batches.create(self._body(request)))

    def list_batches(self, request: Request) -> Response:
        page = _page(self.batches.newest_first(), request)
        data = page["data"]
        return _json({**page, "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    def get_batch(self, request: Request, batch_id: str) -> Response:
        return _json(self.batches.get(batch_id))

    def cancel_batch(self, request: Request, batch_id: str) -> Response:
        return _json(self.batches.cancel(batch_id))

    # models
    def _models(self) -> list[dict[str, Any]]:
        base = [
            {"id": name, "object": "model", "created": 1721172741, "owned_by": "system"} for name in sorted(BASE_MODELS)
        ]
        tuned = [
            {"id": j["fine_tuned_model"], "object": "model", "created": j["finished_at"], "owned_by": "user-local"}
            for j in self.store.jobs.values()
            if j["status"] == "succeeded"
        ]
        return base + tuned

    def list_models(self, request: Request) -> Response:
        return _json({"object": "list", "data": self._models()})

    def get_model(self, request: Request, model: str) -> Response:
        found = next((m for m in self._models() if m["id"] == model), None)
        if found is None:
            raise self._model_not_found(model)
        return _json(found)

    @staticmethod
    def _model_not_found(model: str) -> ApiError:
        return not_found(
            f"The model `{model}` does not exist or you do not have access to it.", "model", "model_not_found"
        )

    # chat completions: limits, then faults, then the model
    def _chat_request(self, body: Any) -> tuple[chat.ChatRequest, TextModel]:
        parsed = chat.parse_request(body)
        model = self.store.model_for(parsed.model)
        if model is None:
            raise self._model_not_found(parsed.model)
        return parsed, model

    def _complete(self, parsed: chat.ChatRequest, model: TextModel) -> dict[str, Any]:
        config = self.config
        with self._lock:
            rng = np.random.default_rng(parsed.seed) if parsed.seed is not None else self._np_random
            return chat.complete(model, parsed, config.junk_tokens, config.junk_mass, rng)

    def answer_chat(self, body: Any) -> dict[str, Any]:
        """The model's chat completion for `body`, or its ApiError: no limits, no faults (batch lines)."""
        return self._complete(*self._chat_request(body))

    def chat_completions(self, request: Request) -> Response:
        parsed, model = self._chat_request(self._body(request))
        estimate = chat.rate_limit_tokens(parsed, self.config.token_counting)
        admission = self.limiter.admit(estimate)
        self.stats.admission(admission.allowed, estimate)
        if not admission.allowed:
            raise self._rate_limited(parsed.model, admission, estimate)
        config = self.config
        with self._lock:
            draw = [self._random.random() for _ in range(4)]
            jitter = self._random.uniform(0, config.jitter_ms)
            status = self._random.choice(config.error_statuses)
        delay = config.latency_ms + jitter
        if draw[0] < config.spike_rate:
            delay += config.spike_ms
            self.stats.count(latency_spikes=1)
        if draw[1] < config.slow_rate:
            delay += config.slow_ms
            self.stats.count(slow_responses=1)
        time.sleep(delay / 1000)
        if draw[2] < config.error_rate:
            self.stats.count(injected_errors=1)
            raise server_error(status, admission.headers)
        body = self._complete(parsed, model)
        usage = body["usage"]
        self.stats.count(
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            total_tokens=usage["total_tokens"],
        )
        return _json(body, headers=admission.headers)

    @staticmethod
    def _rate_limited(model: str, admission: Admission, requested: int) -> ApiError:
        unit = "requests per min (RPM)" if admission.exhausted == "requests" else "tokens per min (TPM)"
        wait_ms = max(1, int(admission.retry_after * 1000 + 0.999))
        headers = {
            **admission.headers,
            "retry-after-ms": str(wait_ms),
            "retry-after": str(max(1, round(admission.retry_after + 0.5))),
        }
        amount = 1 if admission.exhausted == "requests" else requested
        message = (
            f"Rate limit reached for {model} in organization org-local on {unit}: Limit {admission.limit}, "
            f"Requested {amount}. Please try again in {format_duration(admission.retry_after)}."
        )
        return ApiError(429, message, type=admission.exhausted, code="rate_limit_exceeded", headers=headers)

    # admin
    def get_config(self, request: Request) -> Response:
        return _json(self.config.model_dump(mode="json"))

    def set_config(self, request: Request) -> Response:
        update = self._body(request)
        if not isinstance(update, dict) or STARTUP_ONLY_FIELDS & set(update):
            raise invalid(f"Expected an object of settings; {sorted(STARTUP_ONLY_FIELDS)} are fixed at start.")
        try:
            config = OpenAIServerConfig.model_validate({**self.config.model_dump(), **update})
        except ValidationError as exc:
            raise invalid(str(exc)) from None
        self._apply(config)
        return _json(config.model_dump(mode="json"))

    def get_stats(self, request: Request) -> Response:
        return _json(self.stats.snapshot())

    def reset_stats(self, request: Request) -> Response:
        self.stats = Stats()
        return _json(self.stats.snapshot())
