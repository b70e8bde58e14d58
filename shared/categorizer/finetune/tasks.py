"""The state machine's tasks: each takes the state data and returns what it adds to it.

The Lambda handlers in functions/finetune/app.py only parse the event and call these.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import openai
from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError
from openai import AsyncOpenAI

from categorizer.backfill.models import BackfillConfig
from categorizer.classifier import OpenAIClassifier
from categorizer.config import FineTuneSettings
from categorizer.errors import TaxonomyError
from categorizer.finetune import dataset as ds
from categorizer.finetune import evaluation, jobs, promotion
from categorizer.finetune.errors import CostGuardExceeded, DatasetInvalid, EvaluationFailed, TransientError
from categorizer.finetune.models import (
    DatasetManifest,
    DatasetRef,
    EvaluationRef,
    FilesRef,
    JobState,
    PipelineConfig,
    PipelineState,
    RunInfo,
)
from categorizer.finetune.storage import RunStore
from categorizer.pricing import Prices
from categorizer.taxonomy import bundled_taxonomy

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient

_THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "SlowDown", "RequestLimitExceeded", "InternalError", "ServiceUnavailable"}
)
# Training files up to this size stay in memory while uploading; larger ones spill to /tmp.
_SPOOL_BYTES = 64 * 1024 * 1024


@contextmanager
def transient_errors() -> Iterator[None]:
    """Re-raise errors that a retry can fix as `TransientError`, the name the ASL retries."""
    try:
        yield
    except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as error:
        raise TransientError(f"OpenAI: {type(error).__name__}: {error}") from error
    except (ConnectionError, ReadTimeoutError) as error:
        raise TransientError(f"AWS: {type(error).__name__}: {error}") from error
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in _THROTTLING_CODES:
            raise TransientError(f"AWS: {error}") from error
        raise


class Pipeline:
    def __init__(
        self,
        settings: FineTuneSettings,
        store: RunStore,
        ssm: SSMClient,
        openai_client: Callable[[], AsyncOpenAI],
        prices: Prices,
        sfn: SFNClient | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._ssm = ssm
        self._sfn = sfn
        self._openai = openai_client
        self._prices = prices

    def export_dataset(self, event: dict[str, Any]) -> dict[str, Any]:
        """Execution input → train/validation JSONL + manifest in S3; the new state data."""
        run = RunInfo.model_validate(event.get("run"))
        try:
            config = PipelineConfig.model_validate({k: v for k, v in event.items() if k != "run"})
            taxonomy = bundled_taxonomy(config.taxonomy_version)
        except (ValueError, TaxonomyError) as error:  # pydantic's ValidationError is a ValueError
            raise DatasetInvalid(f"invalid run input: {error}") from error
        prefix = config.labels_prefix or self._settings.labels_prefix
        if not prefix.startswith(self._settings.labels_prefix):  # the functions may read nothing else
            raise DatasetInvalid(f"labels_prefix {prefix!r} is not under {self._settings.labels_prefix!r}")
        with transient_errors():
            keys = self._store.label_keys(prefix)
            if not keys:
                raise DatasetInvalid(f"no labelled .jsonl files under {self._store.uri(prefix)}")
            articles, _ = ds.parse_labelled(self._store.lines(keys))
        dataset = ds.build_dataset(
            articles,
            taxonomy,
            input_token_budget=self._settings.input_token_budget,
            validation_fraction=config.validation_fraction,
            seed=config.seed,
            min_examples_per_class=config.min_examples_per_class,
        )
        ds.validate_dataset(dataset, taxonomy, self._settings.max_example_tokens)
        tokens = ds.estimate_tokens(
            dataset, config.hyperparameters.n_epochs, self._prices, self._settings.max_example_tokens
        )
        guard = min(self._settings.cost_guard_usd, math.inf if config.max_cost_usd is None else config.max_cost_usd)
        if tokens.estimated_cost_usd > guard:
            raise CostGuardExceeded(
                f"estimated training cost ${tokens.estimated_cost_usd:.4f} "
                f"({tokens.train_tokens} tokens × {tokens.n_epochs} epochs × ${tokens.price_per_million_usd}/1M) "
                f"exceeds the guard ${guard:.4f}; nothing was uploaded"
            )
        manifest = DatasetManifest(
            run_id=run.execution_name,
            created_at=datetime.now(UTC),
            taxonomy_version=taxonomy.version,
            source={"bucket": self._store.bucket, "prefix": prefix, "files": keys, "records": len(articles)},
            input_token_budget=self._settings.input_token_budget,
            seed=config.seed,
            validation_fraction=config.validation_fraction,
            counts=dataset.counts,
            class_counts=dataset.class_counts,
            min_examples_per_class=config.min_examples_per_class,
            classes_with_too_few_examples=dataset.too_few,
            taxonomy_classes_without_examples=dataset.classes_without_examples,
            tokens=tokens,
            cost_guard_usd=guard,
        )
        with transient_errors():
            for name, examples in (("train", dataset.train), ("validation", dataset.validation)):
                key = self._store.run_key(run.execution_name, f"{name}.jsonl")
                manifest.files[name] = self._store.put_bytes(key, ds.to_jsonl(examples), "application/jsonl")
            manifest_uri = self._store.put_json(
                self._store.run_key(run.execution_name, "manifest.json"), manifest.model_dump(mode="json")
            )
        ref = DatasetRef(
            manifest=manifest_uri,
            train=manifest.files["train"],
            validation=manifest.files["validation"],
            counts={k: dataset.counts[k] for k in ("train", "validation", "classes")},
            estimated_cost_usd=tokens.estimated_cost_usd,
            classes_with_too_few_examples=dataset.too_few,
        )
        return {
            "run": run.model_dump(),
            "config": config.model_dump(mode="json"),
            "dataset": ref.model_dump(mode="json"),
        }

    async def upload_files(self, state: PipelineState) -> dict[str, Any]:
        ids: dict[str, str] = {}
        with transient_errors():
            for name, uri in (("training_file", state.dataset.train), ("validation_file", state.dataset.validation)):
                filename = f"{state.run.execution_name}-{uri.rsplit('/', 1)[-1]}"
                # S3 → a spooled file (memory up to a bound, then /tmp): streamed, and seekable so
                # the SDK's own retry re-sends the whole file instead of an exhausted stream.
                with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
                    shutil.copyfileobj(self._store.open(self._store.key_of(uri))["Body"], spool)
                    spool.seek(0)
                    ids[name] = await jobs.upload_file(
                        self._openai(),
                        filename,
                        spool,
                        max_wait_seconds=self._settings.file_wait_seconds,
                        poll_interval=self._settings.file_poll_seconds,
                    )
        return FilesRef.model_validate(ids).model_dump()

    async def start_job(self, state: PipelineState) -> dict[str, Any]:
        if state.files is None:
            raise ValueError("StartJob needs the uploaded file ids ($.files)")
        with transient_errors():
            job = await jobs.start_job(
                self._openai(),
                state.config,
                state.run.execution_name,
                state.files.training_file,
                state.files.validation_file,
            )
        return job.model_dump()

    async def check_job(self, state: PipelineState) -> dict[str, Any]:
        if state.job is None:
            raise ValueError("CheckJob needs the job ($.job)")
        with transient_errors():
            job = await jobs.check_job(self._openai(), state.job.job_id, state.job.polls)
        return job.model_dump()

    async def evaluate(self, state: PipelineState) -> dict[str, Any]:
        job = _succeeded_job(state)
        assert job.fine_tuned_model is not None  # checked by _succeeded_job
        taxonomy = bundled_taxonomy(state.config.taxonomy_version)
        with transient_errors():
            lines = self._store.lines([self._store.key_of(state.dataset.validation)])
            examples: list[ds.Example] = [json.loads(line.text) for line in lines if line.text.strip()]
            examples = examples[: state.config.max_eval_examples]
            classifier = OpenAIClassifier(
                self._openai,
                top_k=self._settings.top_k,
                label_logit_bias=self._settings.label_logit_bias,
                prices=self._prices,
            )
            scored = await evaluation.score_examples(
                classifier, examples, job.fine_tuned_model, taxonomy, self._settings.eval_concurrency
            )
            active = promotion.current_active_model(self._ssm, self._settings.active_model_parameter)
        metrics = evaluation.compute_metrics(scored)
        if metrics.no_valid_label == metrics.n:
            raise EvaluationFailed(f"{job.fine_tuned_model} answered no valid label on {metrics.n} examples")
        comparison = promotion.decide(metrics.model_dump(), active, force=state.config.force_promote)
        report = {
            "run_id": state.run.execution_name,
            "evaluated_at": datetime.now(UTC).isoformat(),
            "model_id": job.fine_tuned_model,
            "job_id": job.job_id,
            "trained_tokens": job.trained_tokens,
            "taxonomy_version": taxonomy.version,
            "validation_file": state.dataset.validation,
            "dataset_manifest": state.dataset.manifest,
            "metrics": metrics.model_dump(),
            "active_model": {"model_id": comparison.active_model_id, "top1": comparison.active_top1},
            "comparison": comparison.model_dump(),
            "per_class": evaluation.per_class(scored, taxonomy),
        }
        with transient_errors():
            uri = self._store.put_json(self._store.run_key(state.run.execution_name, "evaluation.json"), report)
        ref = EvaluationRef(report=uri, model_id=job.fine_tuned_model, metrics=metrics, comparison=comparison)
        return ref.model_dump(mode="json")

    def promote(self, state: PipelineState) -> dict[str, Any]:
        job = _succeeded_job(state)
        if state.evaluation is None:
            raise ValueError("Promote needs the evaluation ($.evaluation)")
        with transient_errors():
            decision, version = promotion.promote(
                self._ssm,
                self._settings.active_model_parameter,
                model_id=state.evaluation.model_id,
                taxonomy_version=state.config.taxonomy_version,
                metrics=state.evaluation.metrics.model_dump(),
                job_id=job.job_id,
                dataset_manifest=state.dataset.manifest,
                force=state.config.force_promote,
            )
        backfill = state.config.backfill_after_promote
        return {
            "promoted": decision.promote,
            "reason": decision.reason,
            "model_id": state.evaluation.model_id,
            "previous_model_id": decision.active_model_id,
            "parameter_version": version,
            "backfill_execution_arn": self._start_backfill(state.run, backfill)
            if decision.promote and backfill is not None
            else None,
        }

    def _start_backfill(self, run: RunInfo, backfill: BackfillConfig) -> str:
        """BackfillStateMachine with the run's input, once: the name derives from this run's name.

        A retried Promote starts it again under the same name and input, which Step Functions
        answers with the running execution, or with ExecutionAlreadyExists once it has ended:
        either way that one execution is the answer, never a second re-categorisation.
        """
        arn = self._settings.backfill_state_machine_arn
        if self._sfn is None or arn is None:
            raise ValueError("backfill_after_promote needs BACKFILL_STATE_MACHINE_ARN (the template sets it)")
        name = f"{run.execution_name[:71]}-backfill"
        document = backfill.model_dump(mode="json", exclude_defaults=True)
        with transient_errors():
            try:
                started = self._sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(document))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                    raise
                return arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
        return started["executionArn"]


def _succeeded_job(state: PipelineState) -> JobState:
    if state.job is None or state.job.status != "succeeded" or not state.job.fine_tuned_model:
        raise ValueError("this task needs a succeeded job with a fine-tuned model ($.job)")
    return state.job
