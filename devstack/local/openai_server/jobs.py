"""Fine-tuning jobs: request checks, and a worker thread that really trains local.textmodel.

Statuses follow OpenAI: validating_files → queued → running → succeeded | failed | cancelled.
"""

from __future__ import annotations

import contextlib
import math
import queue
import secrets
import threading
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from local.openai_server.config import OpenAIServerConfig
from local.openai_server.errors import bad_request, check_metadata, invalid, not_found
from local.openai_server.store import Store, new_id
from local.openai_server.validation import Example, InvalidFile, parse_training_file
from local.textmodel import TrainConfig, fit_calibrated

# Base models that can be fine-tuned here, with the snapshot an alias resolves to.
BASE_MODELS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18": "gpt-4o-mini-2024-07-18"}
ORGANIZATION = "local"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
BASE_LEARNING_RATE = TrainConfig().learning_rate
# Cap of the "auto" batch size, resolved and reported as OpenAI does; local.textmodel's SGD
# steps once per example, so the batch size does not reach training.
MAX_AUTO_BATCH_SIZE = 64

Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: Auto | int = Field("auto")
    batch_size: Auto | int = Field("auto")
    learning_rate_multiplier: Auto | float = Field("auto")


class SupervisedMethod(BaseModel):
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class Method(BaseModel):
    type: Literal["supervised"]
    supervised: SupervisedMethod = Field(default_factory=SupervisedMethod)


class CreateJobRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None


class Cancelled(Exception):
    pass


def resolve_hyperparameters(params: Hyperparameters, n_examples: int) -> dict[str, Any]:
    """Fill in "auto" the way OpenAI does: from the size of the training set."""
    return {
        "n_epochs": params.n_epochs
        if params.n_epochs != "auto"
        else max(TrainConfig().epochs, min(25, math.ceil(3000 / n_examples))),
        "batch_size": params.batch_size
        if params.batch_size != "auto"
        else max(1, min(MAX_AUTO_BATCH_SIZE, n_examples // 50)),
        "learning_rate_multiplier": params.learning_rate_multiplier
        if params.learning_rate_multiplier != "auto"
        else 1.0,
    }


class JobRunner:
    """Creates jobs and trains them one at a time on a background thread."""

    def __init__(self, store: Store, config: OpenAIServerConfig) -> None:
        self.store = store
        self.config = config
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._thread = threading.Thread(target=self._work, name="fine-tune-worker", daemon=True)
        # A restart picks up the jobs the previous process did not finish.
        for job in store.jobs.values():
            if job["status"] not in TERMINAL:
                self._enqueue(job["id"])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        for flag in self._cancel.values():
            flag.set()
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _enqueue(self, job_id: str) -> None:
        self._cancel[job_id] = threading.Event()
        self._queue.put(job_id)

    def create(self, body: Any) -> dict[str, Any]:
        try:
            request = CreateJobRequest.model_validate(body)
        except ValidationError as exc:
            raise bad_request(exc) from None
        check_metadata(request.metadata)
        if request.model not in BASE_MODELS:
            raise invalid(
                f"Model {request.model} is not available for fine-tuning or does not exist.",
                param="model",
                code="model_not_available",
            )
        for param, file_id in (("training_file", request.training_file), ("validation_file", request.validation_file)):
            if file_id is None:
                continue
            file = self.store.files.get(file_id)
            if file is None:
                raise invalid(f"invalid {param}: {file_id}", param=param, code="invalid_" + param)
            if file["purpose"] != "fine-tune":
                raise invalid(f"File {file_id} has purpose {file['purpose']}, not fine-tune", param=param)
        params = (
            request.method.supervised.hyperparameters if request.method else request.hyperparameters
        ) or Hyperparameters()
        job_id = new_id("ftjob-")
        job: dict[str, Any] = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "hyperparameters": params.model_dump(),
            "method": {"type": "supervised", "supervised": {"hyperparameters": params.model_dump()}},
            "model": BASE_MODELS[request.model],
            "organization_id": f"org-{ORGANIZATION}",
            "result_files": [],
            "seed": request.seed if request.seed is not None else secrets.randbelow(2**31),
            "status": "validating_files",
            "trained_tokens": None,
            "training_file": request.training_file,
            "validation_file": request.validation_file,
            "estimated_finish": None,
            "integrations": [],
            "metadata": request.metadata,
            "user_provided_suffix": request.suffix,
        }
        self.store.save_job(job)
        self.store.add_event(job_id, f"Validating training file: {request.training_file}")
        self._enqueue(job_id)
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        with self.store.lock:
            job = self.get(job_id)
            if job["status"] in TERMINAL:
                raise invalid(f"Job {job_id} has already {job['status']} and cannot be cancelled.")
            job["status"] = "cancelled"
            job["finished_at"] = int(time.time())
            self.store.save_job(job)
            self.store.add_event(job_id, "Fine-tuning job cancelled")
        self._cancel.get(job_id, threading.Event()).set()
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        job = self.store.jobs.get(job_id)
        if job is None:
            raise not_found(f"Could not find fine-tune job: {job_id}", param="fine_tuning_job_id")
        return job

    # the worker
    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            with contextlib.suppress(Cancelled):
                self._run(job_id)

    def _stage(self, job_id: str, status: str | None = None, message: str | None = None) -> dict[str, Any]:
        """Move the job on, unless it was cancelled meanwhile."""
        with self.store.lock:
            job = self.store.jobs[job_id]
            if job["status"] == "cancelled" or self._cancel[job_id].is_set():
                raise Cancelled
            if status:
                job["status"] = status
                self.store.save_job(job)
            if message:
                self.store.add_event(job_id, message)
            return job

    def _pause(self, job_id: str) -> None:
        if self._cancel[job_id].wait(self.config.job_stage_delay_ms / 1000):
            raise Cancelled

    def _fail(self, job_id: str, code: str, message: str, param: str | None) -> None:
        with self.store.lock:
            job = self._stage(job_id)
            job.update(status="failed", finished_at=int(time.time()))
            job["error"] = {"code": code, "message": message, "param": param}
            self.store.save_job(job)
            self.store.add_event(job_id, message, level="error")

    def _examples(self, job_id: str, param: str, file_id: str) -> list[Example] | None:
        try:
            return parse_training_file(self.store.file_content(file_id))
        except InvalidFile as exc:
            kind = "training" if param == "training_file" else "validation"
            message = f"The job failed due to an invalid {kind} file. {exc}"
            self._fail(job_id, f"invalid_{param}", message, param)
            return None

    def _run(self, job_id: str) -> None:
        job = self._stage(job_id)
        self._pause(job_id)
        examples = self._examples(job_id, "training_file", job["training_file"])
        validation = self._examples(job_id, "validation_file", job["validation_file"]) if job["validation_file"] else []
        if examples is None or validation is None:
            return
        resolved = resolve_hyperparameters(Hyperparameters.model_validate(job["hyperparameters"]), len(examples))
        with self.store.lock:
            job = self._stage(job_id)
            job["hyperparameters"] = resolved
            job["method"]["supervised"]["hyperparameters"] = resolved
            self._stage(job_id, "queued", "Files validated, moving job to queued state")
        self._pause(job_id)
        self._stage(job_id, "running", "Fine-tuning job started")

        epochs = resolved["n_epochs"]

        def on_epoch(epoch: int, loss: float) -> None:
            self._stage(job_id)
            data = {"step": epoch, "total_steps": epochs, "train_loss": round(loss, 6)}
            self.store.add_event(job_id, f"Step {epoch}/{epochs}: training loss={loss:.4f}", data=data)

        train_config = TrainConfig(
            epochs=epochs,
            learning_rate=BASE_LEARNING_RATE * resolved["learning_rate_multiplier"],
            seed=job["seed"],
        )
        # The temperature comes from the validation file, else from a held-out slice of the training file.
        model = fit_calibrated(
            [e.text for e in examples],
            [e.label for e in examples],
            train_config,
            on_epoch,
            ([e.text for e in validation], [e.label for e in validation]) if validation else None,
        )
        self._stage(job_id)  # a cancel during the calibration model's training (it reports no epochs)
        metrics: dict[str, Any] = {}
        if validation:
            proba = model.predict_proba([e.text for e in validation])
            picked = [model.labels[i] for i in proba.argmax(axis=1)]
            accuracy = sum(p == e.label for p, e in zip(picked, validation, strict=True)) / len(validation)
            metrics["full_valid_mean_token_accuracy"] = round(accuracy, 6)
        self.store.save_model(job_id, model)
        suffix = job["user_provided_suffix"] or ""
        name = f"ft:{job['model']}:{ORGANIZATION}:{suffix}:{job_id.removeprefix('ftjob-')[:8]}"
        results = self.store.add_file(
            "step_metrics.csv",
            "fine-tune-results",
            (
                "step,train_loss\n"
                + "".join(f"{e['data']['step']},{e['data']['train_loss']}\n" for e in self._metrics(job_id))
            ).encode(),
        )
        with self.store.lock:
            job = self._stage(job_id)
            job.update(
                status="succeeded",
                fine_tuned_model=name,
                finished_at=int(time.time()),
                trained_tokens=sum(e.tokens for e in examples) * epochs,
                result_files=[results["id"]],
            )
            self.store.save_job(job)
            self.store.add_event(job_id, f"New fine-tuned model created: {name}", data=metrics or None)
            self.store.add_event(job_id, "The job has successfully completed")

    def _metrics(self, job_id: str) -> list[dict[str, Any]]:
        return [e for e in self.store.events[job_id] if e["type"] == "metrics"]
