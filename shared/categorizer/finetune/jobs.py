"""UploadFiles, StartJob and CheckJob against the OpenAI files and fine-tuning jobs APIs."""

from __future__ import annotations

import json
from typing import IO

from openai import AsyncOpenAI
from openai.types.fine_tuning import FineTuningJob
from openai.types.fine_tuning.job_create_params import Method
from openai.types.fine_tuning.supervised_hyperparameters_param import SupervisedHyperparametersParam

from categorizer.finetune.errors import FileProcessingFailed
from categorizer.finetune.models import JobState, PipelineConfig

# Metadata key that ties a job to the Step Functions execution that started it.
RUN_METADATA_KEY = "pipeline_run"
# How many recent jobs StartJob looks through for its own before creating one.
_JOB_LOOKBACK = 100


async def upload_file(
    client: AsyncOpenAI, filename: str, stream: IO[bytes], *, max_wait_seconds: float, poll_interval: float
) -> str:
    uploaded = await client.files.create(file=(filename, stream, "application/jsonl"), purpose="fine-tune")
    processed = await client.files.wait_for_processing(
        uploaded.id, poll_interval=poll_interval, max_wait_seconds=max_wait_seconds
    )
    if processed.status == "error":
        raise FileProcessingFailed(f"{filename} ({uploaded.id}): {processed.status_details or 'rejected'}")
    return processed.id


async def find_run_job(client: AsyncOpenAI, run_id: str) -> FineTuningJob | None:
    """The job this execution already created, if any (a retried StartJob must not pay twice)."""
    page = await client.fine_tuning.jobs.list(limit=_JOB_LOOKBACK, metadata={RUN_METADATA_KEY: run_id})
    # Filtered again here: the metadata filter is recent, and a server may ignore it.
    for job in page.data:
        if (job.metadata or {}).get(RUN_METADATA_KEY) == run_id:
            return job
    return None


async def start_job(
    client: AsyncOpenAI, config: PipelineConfig, run_id: str, training_file: str, validation_file: str
) -> JobState:
    existing = await find_run_job(client, run_id)
    if existing is not None:
        return job_state(existing, polls=0, reused=True)
    hp = config.hyperparameters
    hyperparameters: SupervisedHyperparametersParam = {"n_epochs": hp.n_epochs}
    if hp.batch_size is not None:
        hyperparameters["batch_size"] = hp.batch_size
    if hp.learning_rate_multiplier is not None:
        hyperparameters["learning_rate_multiplier"] = hp.learning_rate_multiplier
    method: Method = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
    job = await client.fine_tuning.jobs.create(
        model=config.base_model,
        training_file=training_file,
        validation_file=validation_file,
        method=method,
        suffix=config.suffix,
        seed=config.seed,
        metadata={RUN_METADATA_KEY: run_id, "taxonomy_version": config.taxonomy_version},
    )
    return job_state(job, polls=0)


async def check_job(client: AsyncOpenAI, job_id: str, polls: int) -> JobState:
    job = await client.fine_tuning.jobs.retrieve(job_id)
    return job_state(job, polls=polls + 1)


def job_state(job: FineTuningJob, *, polls: int, reused: bool = False) -> JobState:
    error = None
    cause = ""
    if job.error is not None and (job.error.code or job.error.message):
        error = {"code": job.error.code, "message": job.error.message, "param": job.error.param}
    if job.status in ("failed", "cancelled"):
        # The Fail state's cause: what OpenAI said, as JSON the operator can read.
        cause = json.dumps({"job_id": job.id, "status": job.status, "error": error}, ensure_ascii=False)
    return JobState(
        job_id=job.id,
        status=job.status,
        fine_tuned_model=job.fine_tuned_model,
        trained_tokens=job.trained_tokens,
        error=error,
        cause=cause,
        polls=polls,
        reused=reused,
    )
