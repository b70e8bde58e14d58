"""pydantic models of the pipeline: the execution input, labelled articles, the manifest."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from categorizer.backfill.models import BackfillConfig
from categorizer.defaults import BASE_MODEL
from categorizer.models import ArticleId, _reject_control_characters
from categorizer.text import html_to_text, looks_like_html, normalize_text


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_epochs: int = Field(default=3, ge=1, le=50)
    batch_size: int | None = Field(default=None, ge=1, le=256)
    learning_rate_multiplier: float | None = Field(default=None, gt=0, le=10)


class RunInfo(BaseModel):
    """Set by the state machine's first state from the context object."""

    execution_name: str = Field(min_length=1, max_length=80)
    started_at: str = ""


class PipelineConfig(BaseModel):
    """The execution input (what `start` sends), with its defaults filled in by ExportDataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    taxonomy_version: str = Field(min_length=1)
    base_model: str = BASE_MODEL
    hyperparameters: Hyperparameters = Hyperparameters()
    # OpenAI puts the suffix into the model name (ft:base:org:suffix:id); it is a name, not an id.
    suffix: str = Field(default="categorizer", pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    labels_prefix: str | None = Field(default=None, description="overrides the deployed LABELS_PREFIX")
    validation_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    min_examples_per_class: int = Field(default=10, ge=1)
    # Can only lower the deployed guard (COST_GUARD_USD): an operator cannot raise it per run.
    max_cost_usd: float | None = Field(default=None, ge=0)
    poll_seconds: int = Field(default=60, ge=0, le=3600)
    max_polls: int = Field(default=720, ge=1, le=10_000)
    max_eval_examples: int = Field(default=1000, ge=1, le=20_000)
    force_promote: bool = False
    # Off by default: once this run's model is promoted, Promote starts BackfillStateMachine with
    # this input (e.g. {"all": true, "max_cost_usd": 50}) to re-categorise the archive with it.
    backfill_after_promote: BackfillConfig | None = None


class LabelledArticle(BaseModel):
    """One line of a labels JSONL file: an article and the category an editor gave it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    article_id: ArticleId
    title: str = Field(min_length=1, max_length=1_000)
    body: str = Field(min_length=1, max_length=200_000)
    body_format: Literal["text", "html", "auto"] = "auto"
    category_id: str = Field(min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=0)
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _clean(self) -> LabelledArticle:
        _reject_control_characters(self.title)
        _reject_control_characters(self.body)
        return self

    @property
    def text(self) -> str:
        """The body as the categorize function sees it (same HTML and normalisation rules)."""
        is_html = self.body_format == "html" or (self.body_format == "auto" and looks_like_html(self.body))
        return html_to_text(self.body) if is_html else normalize_text(self.body)

    @property
    def revision(self) -> int:
        if self.version is not None:
            return self.version
        return int(self.updated_at.timestamp() * 1000) if self.updated_at is not None else -1


class ClassCount(BaseModel):
    label: str
    name: str
    train: int
    validation: int


class TokenEstimate(BaseModel):
    train_tokens: int
    validation_tokens: int
    max_example_tokens: int
    n_epochs: int
    billed_training_tokens: int
    price_per_million_usd: float
    estimated_cost_usd: float


class DatasetManifest(BaseModel):
    run_id: str
    created_at: datetime
    taxonomy_version: str
    source: dict[str, str | int | list[str]]
    input_token_budget: int
    seed: int
    validation_fraction: float
    counts: dict[str, int]
    class_counts: dict[str, ClassCount]
    min_examples_per_class: int
    classes_with_too_few_examples: list[str]
    taxonomy_classes_without_examples: int
    tokens: TokenEstimate
    cost_guard_usd: float
    files: dict[str, str] = Field(default_factory=dict)


class EvaluationMetrics(BaseModel):
    n: int
    top1: float
    top3: float
    macro_f1: float
    ece: float
    coverage: float
    no_valid_label: int
    eval_cost_usd: float


class DatasetRef(BaseModel):
    manifest: str
    train: str
    validation: str
    counts: dict[str, int]
    estimated_cost_usd: float
    classes_with_too_few_examples: list[str]


class FilesRef(BaseModel):
    training_file: str
    validation_file: str


class JobState(BaseModel):
    job_id: str
    status: str
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: dict[str, str | None] | None = None
    cause: str = ""  # the Fail state's cause when the job failed or was cancelled
    polls: int = 0
    reused: bool = False


class Decision(BaseModel):
    promote: bool
    reason: str
    active_model_id: str | None = None
    active_top1: float | None = None


class EvaluationRef(BaseModel):
    report: str
    model_id: str
    metrics: EvaluationMetrics
    comparison: Decision


class PipelineState(BaseModel):
    """The state machine's data as the tasks read it (each task adds its own key)."""

    model_config = ConfigDict(extra="ignore")

    run: RunInfo
    config: PipelineConfig
    dataset: DatasetRef
    files: FilesRef | None = None
    job: JobState | None = None
    evaluation: EvaluationRef | None = None
