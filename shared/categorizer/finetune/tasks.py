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
from categorizer.errors import PermanentError, TaxonomyError
from categorizer.finetune import dataset as ds
from categorizer.finetune import evaluation, golden, jobs, promotion, report, shadow
from categorizer.finetune.errors import CostGuardExceeded, DatasetInvalid, EvaluationFailed, TransientError
from categorizer.finetune.models import (
    DatasetManifest,
    DatasetRef,
    EvaluationRef,
    EvaluationReport,
    FilesRef,
    GoldenEvaluation,
    JobState,
    PipelineConfig,
    PipelineState,
    RunInfo,
    SetEvaluation,
    ValidationEvaluation,
)
from categorizer.finetune.storage import RunStore
from categorizer.models import ActiveModel
from categorizer.pricing import Prices
from categorizer.taxonomy import Taxonomy, bundled_taxonomy

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
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
        results_table: Table | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._ssm = ssm
        self._sfn = sfn
        self._openai = openai_client
        self._prices = prices
        self._results_table = results_table

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
            golden_manifest = golden.current_manifest(self._store, self._settings.golden_prefix)
            golden_ref = golden_manifest.ref() if golden_manifest is not None else None
            golden_articles = golden.load_articles(self._store, golden_ref) if golden_ref is not None else []
        dataset = ds.build_dataset(
            articles,
            taxonomy,
            input_token_budget=self._settings.input_token_budget,
            validation_fraction=config.validation_fraction,
            seed=config.seed,
            min_examples_per_class=config.min_examples_per_class,
            held_out_articles=frozenset(a.article_id for a in golden_articles),
            held_out_prompts=golden.prompt_fingerprints(golden_articles, self._settings.input_token_budget),
        )
        if golden_ref is not None:
            golden_ref = golden_ref.model_copy(
                update={
                    "excluded_articles": dataset.counts["golden_articles_excluded"],
                    "excluded_prompts": dataset.counts["golden_prompts_excluded"],
                }
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
            golden=golden_ref,
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
            golden=golden_ref,
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
        """The candidate and the active model on the validation set and the golden set, in one run."""
        job = _succeeded_job(state)
        assert job.fine_tuned_model is not None  # checked by _succeeded_job
        candidate_id = job.fine_tuned_model
        taxonomy = bundled_taxonomy(state.config.taxonomy_version)
        golden_ref = state.dataset.golden
        classifier = OpenAIClassifier(
            self._openai,
            top_k=self._settings.top_k,
            label_logit_bias=self._settings.label_logit_bias,
            prices=self._prices,
        )
        with transient_errors():
            lines = self._store.lines([self._store.key_of(state.dataset.validation)])
            validation: list[ds.Example] = [json.loads(line.text) for line in lines if line.text.strip()]
            validation = validation[: state.config.max_eval_examples]
            golden_examples: list[ds.Example] = []
            golden_skipped = 0
            if golden_ref is not None:
                golden_examples, golden_skipped = golden.examples(
                    golden.load_articles(self._store, golden_ref), taxonomy, self._settings.input_token_budget
                )
            active = promotion.current_active_model(self._ssm, self._settings.active_model_parameter)
            candidate_validation = await self._score(classifier, validation, candidate_id, taxonomy)
            candidate_golden = await self._score(classifier, golden_examples, candidate_id, taxonomy)
            active_validation, active_golden, active_unavailable = await self._score_active(
                classifier, active, taxonomy, validation, golden_examples
            )
        metrics = evaluation.compute_metrics(candidate_validation)
        if metrics.no_valid_label == metrics.n:
            raise EvaluationFailed(f"{candidate_id} answered no valid label on {metrics.n} examples")
        paired = None
        if golden_ref is None:
            paired_unavailable: str | None = "no golden set yet"
        elif not golden_examples:
            paired_unavailable = f"golden v{golden_ref.version} has no article in taxonomy {taxonomy.version}"
        elif active_golden is None:
            paired_unavailable = active_unavailable
        else:
            assert active is not None  # active_golden is only scored for a record
            paired_unavailable = None
            paired = promotion.paired_comparison(
                evaluation.top1_correct(candidate_golden),
                evaluation.top1_correct(active_golden),
                golden_version=golden_ref.version,
                active_model_id=active.model_id,
            )
        comparison = promotion.decide(
            metrics.model_dump(),
            active,
            force=state.config.force_promote,
            paired=paired,
            paired_unavailable=paired_unavailable or "",
        )
        document = EvaluationReport(
            run_id=state.run.execution_name,
            evaluated_at=datetime.now(UTC),
            model_id=candidate_id,
            job_id=job.job_id,
            trained_tokens=job.trained_tokens,
            taxonomy_version=taxonomy.version,
            validation_file=state.dataset.validation,
            dataset_manifest=state.dataset.manifest,
            metrics=metrics,
            per_class=evaluation.per_class(candidate_validation, taxonomy),
            active_model={"model_id": comparison.active_model_id, "top1": comparison.active_top1},
            comparison=comparison,
            promotion_rule=promotion.PROMOTION_RULE,
            validation=ValidationEvaluation(
                candidate=evaluation.set_evaluation(candidate_validation, candidate_id, taxonomy),
                active=_set_evaluation(active_validation, active, taxonomy),
            ),
            golden=GoldenEvaluation(
                version=golden_ref.version,
                key=golden_ref.key,
                skipped=golden_skipped,
                candidate=evaluation.set_evaluation(candidate_golden, candidate_id, taxonomy),
                active=_set_evaluation(active_golden, active, taxonomy),
            )
            if golden_ref is not None and candidate_golden
            else None,
            paired_unavailable=paired_unavailable,
        )
        with transient_errors():
            run_id = state.run.execution_name
            uri = self._store.put_json(self._store.run_key(run_id, "evaluation.json"), document.model_dump(mode="json"))
            html_uri = self._store.put_bytes(
                self._store.run_key(run_id, "report.html"), report.render(document).encode("utf-8"), "text/html"
            )
        ref = EvaluationRef(
            report=uri,
            model_id=candidate_id,
            metrics=metrics,
            comparison=comparison,
            paired=paired,
            paired_unavailable=paired_unavailable,
            html_report=html_uri,
        )
        return ref.model_dump(mode="json")

    async def _score(
        self, classifier: OpenAIClassifier, examples: list[ds.Example], model_id: str, taxonomy: Taxonomy
    ) -> list[evaluation.Scored]:
        if not examples:
            return []
        concurrency = self._settings.eval_concurrency
        return await evaluation.score_examples(classifier, examples, model_id, taxonomy, concurrency)

    async def _score_active(
        self,
        classifier: OpenAIClassifier,
        active: ActiveModel | None,
        taxonomy: Taxonomy,
        validation: list[ds.Example],
        golden_examples: list[ds.Example],
    ) -> tuple[list[evaluation.Scored] | None, list[evaluation.Scored] | None, str]:
        """The active model on the same examples: (validation, golden, why not when it cannot be scored)."""
        if active is None:
            return None, None, "no active model"
        if active.taxonomy_version != taxonomy.version:
            return None, None, f"the active model answers taxonomy {active.taxonomy_version}, not {taxonomy.version}"
        try:
            scored_validation = await self._score(classifier, validation, active.model_id, taxonomy)
            scored_golden = await self._score(classifier, golden_examples, active.model_id, taxonomy)
        # OpenAI no longer serves it (deleted, another organisation's): the candidate is still judged.
        except (PermanentError, openai.NotFoundError, openai.PermissionDeniedError) as error:
            return None, None, f"the active model {active.model_id} could not be scored: {error}"
        return scored_validation, scored_golden or None, ""

    def promote(self, state: PipelineState) -> dict[str, Any]:
        job = _succeeded_job(state)
        if state.evaluation is None:
            raise ValueError("Promote needs the evaluation ($.evaluation)")
        with transient_errors():
            held = shadow.hold_for_shadow_sample(
                self._ssm,
                self._settings.active_model_parameter,
                self._results_table,
                self._settings.min_shadow_sample,
                state,
            )
        if held is not None:
            return held
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
                paired=state.evaluation.paired,
                paired_unavailable=state.evaluation.paired_unavailable or "",
            )
        backfill = state.config.backfill_after_promote
        return {
            "promoted": decision.promote,
            "reason": decision.reason,
            "rule": decision.rule,
            "promotion_rule": promotion.PROMOTION_RULE,
            "paired": decision.paired.model_dump() if decision.paired is not None else None,
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


def _set_evaluation(
    scored: list[evaluation.Scored] | None, active: ActiveModel | None, taxonomy: Taxonomy
) -> SetEvaluation | None:
    if not scored or active is None:
        return None
    return evaluation.set_evaluation(scored, active.model_id, taxonomy)
