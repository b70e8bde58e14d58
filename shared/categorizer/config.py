"""Settings from the environment: the one config loader.

Each function has a settings class here; fields map to the environment variables the
template sets (the alias). Values that must change without a redeploy (the active model and
its taxonomy) are not here: they come from the active-model parameter (`active_model`).
"""

from __future__ import annotations

import os
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from categorizer.defaults import DEFAULT_INPUT_TOKEN_BUDGET, DEFAULT_TOP_K


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete or invalid."""


class EnvSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    @classmethod
    def from_env(cls) -> Self:
        try:
            return cls.model_validate(dict(os.environ))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors(include_input=False)
            )
            raise ConfigurationError(f"{cls.__name__}: {problems}") from None


class OpenAISettings(EnvSettings):
    openai_secret_arn: str = Field(alias="OPENAI_API_KEY_SECRET_ARN", min_length=1)
    openai_timeout_seconds: float = Field(default=10.0, alias="OPENAI_TIMEOUT_SECONDS", gt=0)
    openai_max_retries: int = Field(default=3, alias="OPENAI_MAX_RETRIES", ge=0, le=10)
    secret_cache_seconds: int = Field(default=300, alias="SECRET_CACHE_SECONDS", ge=0)


class CategorizeSettings(OpenAISettings):
    results_table_name: str = Field(alias="RESULTS_TABLE_NAME", min_length=1)
    dlq_url: str = Field(alias="DLQ_URL", min_length=1)
    active_model_parameter: str = Field(alias="ACTIVE_MODEL_PARAMETER", min_length=1)
    config_cache_seconds: int = Field(default=60, alias="CONFIG_CACHE_SECONDS", ge=0)
    # At least 3: Evaluate reports top-3 accuracy with the same setting.
    top_k: int = Field(default=DEFAULT_TOP_K, alias="TOP_K", ge=3, le=20)
    input_token_budget: int = Field(default=DEFAULT_INPUT_TOKEN_BUDGET, alias="INPUT_TOKEN_BUDGET", ge=16)
    low_confidence_threshold: float = Field(default=0.5, alias="LOW_CONFIDENCE_THRESHOLD", ge=0, le=1)
    label_logit_bias: int = Field(default=10, alias="LABEL_LOGIT_BIAS", ge=0, le=100)
    max_receive_count: int = Field(default=5, alias="MAX_RECEIVE_COUNT", ge=1)
    # The planner's per-instance share of the account's limits; 0 turns that limit off.
    requests_per_minute: float = Field(default=0, alias="INSTANCE_REQUESTS_PER_MINUTE", ge=0)
    tokens_per_minute: float = Field(default=0, alias="INSTANCE_TOKENS_PER_MINUTE", ge=0)
    # The claim on a row before an OpenAI call (categorizer.service): how long it holds, which must
    # stay below the queue's visibility timeout, and how long a record waits for another's claim.
    claim_seconds: float = Field(default=120, alias="CLAIM_SECONDS", gt=0, le=900)
    claim_wait_seconds: float = Field(default=10, alias="CLAIM_WAIT_SECONDS", ge=0, le=60)


class IngestSettings(EnvSettings):
    article_queue_url: str = Field(alias="ARTICLE_QUEUE_URL", min_length=1)
    webhook_secret_arn: str = Field(alias="WEBHOOK_SECRET_ARN", min_length=1)
    secret_cache_seconds: int = Field(default=300, alias="SECRET_CACHE_SECONDS", ge=0)
    # Replay window: a signed request older (or further in the future) than this is refused.
    signature_tolerance_seconds: int = Field(default=300, alias="SIGNATURE_TOLERANCE_SECONDS", ge=1, le=3600)
    # Lambda's synchronous payload limit is 6 MB; keep well below it.
    max_request_bytes: int = Field(default=4 * 1024 * 1024, alias="MAX_REQUEST_BYTES", ge=1024, le=5_000_000)
    max_batch_items: int = Field(default=100, alias="MAX_BATCH_ITEMS", ge=1, le=500)


class FineTuneSettings(OpenAISettings):
    """The fine-tuning pipeline's task functions (one settings class: they share one module)."""

    pipeline_bucket: str = Field(alias="PIPELINE_BUCKET", min_length=3)
    labels_prefix: str = Field(default="labels/", alias="LABELS_PREFIX")
    runs_prefix: str = Field(default="runs/", alias="RUNS_PREFIX")
    active_model_parameter: str = Field(alias="ACTIVE_MODEL_PARAMETER", min_length=1)
    cost_guard_usd: float = Field(alias="COST_GUARD_USD", ge=0)
    # Must equal the categorize function's values: training prompts are cut like live ones.
    input_token_budget: int = Field(default=DEFAULT_INPUT_TOKEN_BUDGET, alias="INPUT_TOKEN_BUDGET", ge=16)
    top_k: int = Field(default=DEFAULT_TOP_K, alias="TOP_K", ge=3, le=20)
    label_logit_bias: int = Field(default=10, alias="LABEL_LOGIT_BIAS", ge=0, le=100)
    eval_concurrency: int = Field(default=8, alias="EVAL_CONCURRENCY", ge=1, le=64)
    # gpt-4o-mini's training context per example; OpenAI truncates longer examples.
    max_example_tokens: int = Field(default=65_536, alias="MAX_EXAMPLE_TOKENS", ge=16)
    file_wait_seconds: float = Field(default=600, alias="FILE_WAIT_SECONDS", gt=0)
    file_poll_seconds: float = Field(default=2, alias="FILE_POLL_SECONDS", gt=0)
