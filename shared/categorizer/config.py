"""Settings from the environment: the one config loader.

Each function has a settings class here; fields map to the environment variables the
template sets (the alias). Values that must change without a redeploy (the active model and
its taxonomy) are not here: they come from the active-model parameter (`active_model`).

A variable naming an AWS resource must look like one: `sam local invoke` without `--env-vars`
resolves `!Ref ArticleDLQ` to the logical id "ArticleDLQ", and a function that started with it
would call AWS with nonsense instead of failing at init with the reason.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from categorizer.defaults import DEFAULT_INPUT_TOKEN_BUDGET, DEFAULT_TOP_K
from categorizer.finetune.file_rules import MAX_EXAMPLE_TOKENS
from categorizer.limiter import TokenCounting

# The pydantic error type of a value that is not the kind of identifier its variable names.
IDENTIFIER_ERROR = "not_an_identifier"
SAM_LOCAL_HINT = "with `sam local invoke`, pass the resources' values with --env-vars (docs/offline.md)"
# The OpenAI SDK's own default. The SDK reads OPENAI_BASE_URL itself and takes an empty value
# for the base URL, so the settings resolve it (empty = unset) and the client gets it explicitly.
OPENAI_API_BASE_URL = "https://api.openai.com/v1"


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete or invalid."""


def _identifier(kind: str, expected: str, is_valid: Callable[[str], bool]) -> AfterValidator:
    def check(value: str) -> str:
        if not is_valid(value):
            raise PydanticCustomError(
                IDENTIFIER_ERROR, "is not {kind} (expected {expected})", {"kind": kind, "expected": expected}
            )
        return value

    return AfterValidator(check)


# moto's server answers with http://127.0.0.1:PORT/<account>/<name>; AWS with https://sqs.<region>.amazonaws.com/….
_SQS_QUEUE_URL = re.compile(r"https?://[^/?#\s]+/[0-9]{12}/(?:[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo)")
_SECRETS_MANAGER_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+")
_DYNAMODB_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_SSM_PARAMETER_NAME = re.compile(r"/?[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+){0,14}")
_S3_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_S3_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def _is_ssm_parameter_name(value: str) -> bool:
    # Names in a hierarchy start with "/"; "aws" and "ssm" are reserved first segments.
    return (
        len(value) <= 1011
        and _SSM_PARAMETER_NAME.fullmatch(value) is not None
        and ("/" not in value or value.startswith("/"))
        and not value.lstrip("/").lower().startswith(("aws", "ssm"))
    )


def _is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_s3_bucket_name(value: str) -> bool:
    return (
        _S3_BUCKET_NAME.fullmatch(value) is not None
        and ".." not in value
        and not _is_ip_address(value)
        and not value.startswith(_S3_RESERVED_PREFIXES)
        and not value.endswith(_S3_RESERVED_SUFFIXES)
    )


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


SqsQueueUrl = Annotated[
    str,
    _identifier(
        "an SQS queue URL",
        "http(s)://<host>/<12-digit account id>/<queue name>, e.g. https://sqs.us-east-1.amazonaws.com/123456789012/my-queue",
        lambda value: _SQS_QUEUE_URL.fullmatch(value) is not None,
    ),
]
SecretArn = Annotated[
    str,
    _identifier(
        "a Secrets Manager secret ARN",
        "arn:aws:secretsmanager:<region>:<12-digit account id>:secret:<name>",
        lambda value: _SECRETS_MANAGER_ARN.fullmatch(value) is not None,
    ),
]
DynamoDBTableName = Annotated[
    str,
    _identifier(
        "a DynamoDB table name",
        "3-255 characters of A-Z a-z 0-9 _ . -",
        lambda value: _DYNAMODB_TABLE_NAME.fullmatch(value) is not None,
    ),
]
SsmParameterName = Annotated[
    str,
    _identifier(
        "an SSM parameter name",
        "A-Z a-z 0-9 _ . - in at most 15 /-separated levels, starting with / when hierarchical, "
        "not starting with aws or ssm, e.g. /article-categorizer/active-model",
        _is_ssm_parameter_name,
    ),
]
S3BucketName = Annotated[
    str,
    _identifier(
        "an S3 bucket name",
        "3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit, not an IP address",
        _is_s3_bucket_name,
    ),
]
# Empty is unset: the template declares the variable with an empty default (docs/offline.md).
OpenAIBaseUrl = Annotated[
    str,
    BeforeValidator(lambda value: value or OPENAI_API_BASE_URL),
    _identifier("an http(s) URL", "e.g. https://api.openai.com/v1, or empty for that default", _is_http_url),
]


def _describe(error: Any) -> str:
    variable = ".".join(str(part) for part in error["loc"])
    if error["type"] == IDENTIFIER_ERROR:  # names, URLs and ARNs, never secrets: safe to show
        return f"{variable}={error['input']!r} {error['msg']}"
    return f"{variable}: {error['msg']}"


class EnvSettings(BaseModel):
    # Every function imports every settings class and reads one: each is built on its first
    # validation, so a function's init builds only its own (`make bench-coldstart`).
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True, defer_build=True)

    @classmethod
    def from_env(cls) -> Self:
        try:
            return cls.model_validate(dict(os.environ))
        except ValidationError as error:
            errors = error.errors()
            problems = "; ".join(_describe(e) for e in errors)
            hint = f" — {SAM_LOCAL_HINT}" if any(e["type"] == IDENTIFIER_ERROR for e in errors) else ""
            raise ConfigurationError(f"{cls.__name__}: {problems}{hint}") from None


class OpenAISettings(EnvSettings):
    openai_secret_arn: SecretArn = Field(alias="OPENAI_API_KEY_SECRET_ARN")
    openai_base_url: OpenAIBaseUrl = Field(default=OPENAI_API_BASE_URL, alias="OPENAI_BASE_URL")
    openai_timeout_seconds: float = Field(default=10.0, alias="OPENAI_TIMEOUT_SECONDS", gt=0)
    openai_max_retries: int = Field(default=3, alias="OPENAI_MAX_RETRIES", ge=0, le=10)
    secret_cache_seconds: int = Field(default=300, alias="SECRET_CACHE_SECONDS", ge=0)


class CategorizeSettings(OpenAISettings):
    results_table_name: DynamoDBTableName = Field(alias="RESULTS_TABLE_NAME")
    dlq_url: SqsQueueUrl = Field(alias="DLQ_URL")
    # The text store (categorizer.textstore): what the model read, per article revision.
    text_bucket: S3BucketName = Field(alias="TEXT_BUCKET")
    active_model_parameter: SsmParameterName = Field(alias="ACTIVE_MODEL_PARAMETER")
    config_cache_seconds: int = Field(default=60, alias="CONFIG_CACHE_SECONDS", ge=0)
    # At least 3: Evaluate reports top-3 accuracy with the same setting.
    top_k: int = Field(default=DEFAULT_TOP_K, alias="TOP_K", ge=3, le=20)
    input_token_budget: int = Field(default=DEFAULT_INPUT_TOKEN_BUDGET, alias="INPUT_TOKEN_BUDGET", ge=16)
    low_confidence_threshold: float = Field(default=0.5, alias="LOW_CONFIDENCE_THRESHOLD", ge=0, le=1)
    # The share of confident results also queued for review (categorizer.review.queue).
    review_sample_share: float = Field(default=0.0, alias="REVIEW_SAMPLE_SHARE", ge=0, le=1)
    label_logit_bias: int = Field(default=10, alias="LABEL_LOGIT_BIAS", ge=0, le=100)
    max_receive_count: int = Field(default=5, alias="MAX_RECEIVE_COUNT", ge=1)
    # The planner's per-instance share of the account's limits; 0 turns that limit off.
    requests_per_minute: float = Field(default=0, alias="INSTANCE_REQUESTS_PER_MINUTE", ge=0)
    tokens_per_minute: float = Field(default=0, alias="INSTANCE_TOKENS_PER_MINUTE", ge=0)
    # How the limiter counts a request's tokens: the unit the planner sized the shares in
    # (`python -m tools capacity --token-counting`), which should be the account's.
    token_counting: TokenCounting = Field(default="tiktoken", alias="TOKEN_COUNTING")
    # The planner divided the account by this many instances: no instance's share may grow beyond
    # 1/instances of the account's limit (categorizer.limiter; 0 = unknown: the planned share caps).
    instances: int = Field(default=0, alias="RESERVED_CONCURRENCY", ge=0)
    # The claim on a row before an OpenAI call (categorizer.service): how long it holds, which must
    # stay below the queue's visibility timeout, and how long a record waits for another's claim.
    claim_seconds: float = Field(default=120, alias="CLAIM_SECONDS", gt=0, le=900)
    claim_wait_seconds: float = Field(default=10, alias="CLAIM_WAIT_SECONDS", ge=0, le=60)
    # A shadow candidate's call (categorizer.shadow), limiter wait included; its client never retries.
    shadow_timeout_seconds: float = Field(default=5, alias="SHADOW_TIMEOUT_SECONDS", gt=0, le=60)


class IngestSettings(EnvSettings):
    article_queue_url: SqsQueueUrl = Field(alias="ARTICLE_QUEUE_URL")
    webhook_secret_arn: SecretArn = Field(alias="WEBHOOK_SECRET_ARN")
    secret_cache_seconds: int = Field(default=300, alias="SECRET_CACHE_SECONDS", ge=0)
    # Replay window: a signed request older (or further in the future) than this is refused.
    signature_tolerance_seconds: int = Field(default=300, alias="SIGNATURE_TOLERANCE_SECONDS", ge=1, le=3600)
    # Lambda's synchronous payload limit is 6 MB; keep well below it.
    max_request_bytes: int = Field(default=4 * 1024 * 1024, alias="MAX_REQUEST_BYTES", ge=1024, le=5_000_000)
    max_batch_items: int = Field(default=100, alias="MAX_BATCH_ITEMS", ge=1, le=500)


class ReadSettings(EnvSettings):
    results_table_name: DynamoDBTableName = Field(alias="RESULTS_TABLE_NAME")
    # Cache-Control max-age of 200, 304 and 410 answers (template parameter ReadCacheMaxAgeSeconds).
    cache_max_age_seconds: int = Field(default=60, alias="READ_CACHE_MAX_AGE_SECONDS", ge=0, le=86_400)


class ChangeEventsSettings(EnvSettings):
    event_bus_name: str = Field(alias="EVENT_BUS_NAME", min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._/-]+$")


class FineTuneSettings(OpenAISettings):
    """The fine-tuning pipeline's task functions (one settings class: they share one module)."""

    pipeline_bucket: S3BucketName = Field(alias="PIPELINE_BUCKET")
    labels_prefix: str = Field(default="labels/", alias="LABELS_PREFIX")
    runs_prefix: str = Field(default="runs/", alias="RUNS_PREFIX")
    # The golden set (finetune/golden.py): left out of every export, scored by every Evaluate.
    golden_prefix: str = Field(default="golden/", alias="GOLDEN_PREFIX")
    active_model_parameter: SsmParameterName = Field(alias="ACTIVE_MODEL_PARAMETER")
    cost_guard_usd: float = Field(alias="COST_GUARD_USD", ge=0)
    # Must equal the categorize function's values: training prompts are cut like live ones.
    input_token_budget: int = Field(default=DEFAULT_INPUT_TOKEN_BUDGET, alias="INPUT_TOKEN_BUDGET", ge=16)
    top_k: int = Field(default=DEFAULT_TOP_K, alias="TOP_K", ge=3, le=20)
    label_logit_bias: int = Field(default=10, alias="LABEL_LOGIT_BIAS", ge=0, le=100)
    eval_concurrency: int = Field(default=8, alias="EVAL_CONCURRENCY", ge=1, le=64)
    # The export refuses an example longer than this (OpenAI would truncate it): finetune/file_rules.py.
    max_example_tokens: int = Field(default=MAX_EXAMPLE_TOKENS, alias="MAX_EXAMPLE_TOKENS", ge=16)
    file_wait_seconds: float = Field(default=600, alias="FILE_WAIT_SECONDS", gt=0)
    file_poll_seconds: float = Field(default=2, alias="FILE_POLL_SECONDS", gt=0)
    # Promote starts it when a run asks for `backfill_after_promote` (docs/backfill.md).
    backfill_state_machine_arn: str | None = Field(default=None, alias="BACKFILL_STATE_MACHINE_ARN")
    # Promote's minimum shadow sample (categorizer.finetune.shadow) counts rows of ResultsTable.
    results_table_name: str | None = Field(default=None, alias="RESULTS_TABLE_NAME")
    min_shadow_sample: int = Field(default=0, alias="MIN_SHADOW_SAMPLE", ge=0)


class BackfillSettings(OpenAISettings):
    """BackfillStateMachine's task functions (one settings class: they share one module)."""

    pipeline_bucket: S3BucketName = Field(alias="PIPELINE_BUCKET")
    # Archive JSONL is read from here only (the functions' IAM policy grants nothing else).
    archive_prefix: str = Field(default="archive/", alias="ARCHIVE_PREFIX")
    runs_prefix: str = Field(default="backfill/", alias="BACKFILL_RUNS_PREFIX")
    text_bucket: S3BucketName = Field(alias="TEXT_BUCKET")
    results_table_name: DynamoDBTableName = Field(alias="RESULTS_TABLE_NAME")
    dlq_url: SqsQueueUrl = Field(alias="DLQ_URL")
    active_model_parameter: SsmParameterName = Field(alias="ACTIVE_MODEL_PARAMETER")
    cost_guard_usd: float = Field(alias="BACKFILL_COST_GUARD_USD", ge=0)
    # From the capacity planner's Batch API figures for the tier (python -m tools capacity).
    shard_requests: int = Field(default=50_000, alias="BACKFILL_SHARD_REQUESTS", ge=1, le=50_000)
    max_concurrency: int = Field(default=1, alias="BACKFILL_MAX_CONCURRENCY", ge=1, le=1000)
    # Must equal the categorize function's values: the batch request is the live one.
    input_token_budget: int = Field(default=DEFAULT_INPUT_TOKEN_BUDGET, alias="INPUT_TOKEN_BUDGET", ge=16)
    top_k: int = Field(default=DEFAULT_TOP_K, alias="TOP_K", ge=3, le=20)
    label_logit_bias: int = Field(default=10, alias="LABEL_LOGIT_BIAS", ge=0, le=100)
    low_confidence_threshold: float = Field(default=0.5, alias="LOW_CONFIDENCE_THRESHOLD", ge=0, le=1)
    # The share of confident results also queued for review (categorizer.review.queue).
    review_sample_share: float = Field(default=0.0, alias="REVIEW_SAMPLE_SHARE", ge=0, le=1)
    # S3 and DynamoDB calls in flight: text reads of an `--all` plan, row and text writes of a collect.
    io_concurrency: int = Field(default=16, alias="BACKFILL_IO_CONCURRENCY", ge=1, le=64)


class ReviewSettings(EnvSettings):
    """ReviewFunction: the review queue's API (docs/review.md)."""

    results_table_name: DynamoDBTableName = Field(alias="RESULTS_TABLE_NAME")
    text_bucket: S3BucketName = Field(alias="TEXT_BUCKET")
    # Label lines go to labels/reviewed/ here, where the fine-tuning export reads labels.
    pipeline_bucket: S3BucketName = Field(alias="PIPELINE_BUCKET")
    active_model_parameter: SsmParameterName = Field(alias="ACTIVE_MODEL_PARAMETER")
    config_cache_seconds: int = Field(default=60, alias="CONFIG_CACHE_SECONDS", ge=0)
    # The app client of the stack's reviewers' user pool, for the review page's sign-in form;
    # empty with an existing issuer (the page then takes a redirected or pasted token).
    review_user_pool_client_id: str = Field(default="", alias="REVIEW_USER_POOL_CLIENT_ID", max_length=128)
