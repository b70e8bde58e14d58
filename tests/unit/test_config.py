"""Settings refuse values that are not what their variable names: the error says which, why and what fits."""

from __future__ import annotations

import pytest

from categorizer.config import (
    OPENAI_API_BASE_URL,
    CategorizeSettings,
    ConfigurationError,
    FineTuneSettings,
    IngestSettings,
    OpenAISettings,
)

ACCOUNT = "123456789012"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:article-categorizer/openai-AbC123"
QUEUE_URL = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/article-queue"

VALID = {
    "ARTICLE_QUEUE_URL": QUEUE_URL,
    "WEBHOOK_SECRET_ARN": SECRET_ARN,
    "OPENAI_API_KEY_SECRET_ARN": SECRET_ARN,
    "RESULTS_TABLE_NAME": "article-categorizer-ResultsTable-1A2B3C",
    "DLQ_URL": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/article-dlq",
    "ACTIVE_MODEL_PARAMETER": "/article-categorizer/active-model",
    "PIPELINE_BUCKET": "article-categorizer-pipelinebucket-1a2b3c",
    "TEXT_BUCKET": "article-categorizer-textbucket-1a2b3c",
    "COST_GUARD_USD": "50",
}

# (variable, settings class, values it takes, values it refuses)
KINDS = [
    (
        "ARTICLE_QUEUE_URL",
        IngestSettings,
        [
            QUEUE_URL,
            f"http://127.0.0.1:50123/{ACCOUNT}/article-queue",  # moto's server
            f"http://host.docker.internal:50123/{ACCOUNT}/article-queue",
            f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/orders.fifo",
        ],
        [
            "ArticleQueue",  # sam local invoke without --env-vars: the logical id
            "article-queue",
            f"sqs.us-east-1.amazonaws.com/{ACCOUNT}/article-queue",
            "https://sqs.us-east-1.amazonaws.com/12345/article-queue",
            f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/",
            f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/bad name",
            f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{'q' * 81}",
            f"ftp://sqs.us-east-1.amazonaws.com/{ACCOUNT}/article-queue",
        ],
    ),
    ("DLQ_URL", CategorizeSettings, [QUEUE_URL], ["ArticleDLQ", ""]),
    (
        "WEBHOOK_SECRET_ARN",
        IngestSettings,
        [SECRET_ARN, f"arn:aws-cn:secretsmanager:cn-north-1:{ACCOUNT}:secret:webhook"],
        [
            "WebhookSecretArn",
            "article-categorizer/webhook",  # a secret name, not the ARN the variable promises
            f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/webhook",
            "arn:aws:secretsmanager:us-east-1:12345:secret:webhook",
        ],
    ),
    ("OPENAI_API_KEY_SECRET_ARN", CategorizeSettings, [SECRET_ARN], ["OpenAIApiKeySecretArn"]),
    (
        "RESULTS_TABLE_NAME",
        CategorizeSettings,
        ["results", "article-categorizer-ResultsTable-1A2B3C", "a.b_c-d"],
        ["ab", "results table", "results/2026", "x" * 256],
    ),
    (
        "ACTIVE_MODEL_PARAMETER",
        CategorizeSettings,
        ["/article-categorizer/active-model", "active-model", "/a" * 15],
        [
            "article-categorizer/active-model",  # hierarchical without the leading /
            "/article categorizer/active-model",
            "/aws/reference/x",
            "ssm-model",
            "/a" * 16,
            "/a//b",
        ],
    ),
    (
        "PIPELINE_BUCKET",
        FineTuneSettings,
        ["article-categorizer-pipelinebucket-1a2b3c", "abc", "my.bucket.2026"],
        [
            "PipelineBucket",  # upper case: the logical id
            "ab",
            "-bucket",
            "bucket-",
            "my..bucket",
            "192.168.5.4",
            "xn--bucket",
            "bucket-s3alias",
            "b" * 64,
        ],
    ),
    (
        "OPENAI_BASE_URL",
        OpenAISettings,
        ["https://api.openai.com/v1", "http://127.0.0.1:8123/v1", "http://host.docker.internal:8123/v1"],
        ["127.0.0.1:8123/v1", "file:///etc/passwd", "https://"],
    ),
]
CASES_VALID = [(variable, cls, value) for variable, cls, good, _ in KINDS for value in good]
CASES_INVALID = [(variable, cls, value) for variable, cls, _, bad in KINDS for value in bad]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize(("variable", "settings", "value"), CASES_VALID)
def test_a_value_of_the_right_kind_is_taken_as_it_is(
    environment: pytest.MonkeyPatch, variable: str, settings: type[OpenAISettings], value: str
) -> None:
    # GIVEN a valid environment with this variable set to a value of its kind
    environment.setenv(variable, value)
    # WHEN the settings load
    loaded = settings.from_env()
    # THEN the value is the field's, unchanged
    fields = {field.alias: name for name, field in type(loaded).model_fields.items()}
    assert getattr(loaded, fields[variable]) == value


@pytest.mark.parametrize(("variable", "settings", "value"), CASES_INVALID)
def test_a_value_of_another_kind_fails_at_init_naming_variable_value_and_expectation(
    environment: pytest.MonkeyPatch, variable: str, settings: type[OpenAISettings], value: str
) -> None:
    # GIVEN a valid environment but for this variable
    environment.setenv(variable, value)
    # WHEN the settings load THEN they fail, naming the variable with its value and what fits
    with pytest.raises(ConfigurationError) as raised:
        settings.from_env()
    message = str(raised.value)
    assert f"{variable}={value!r} is not " in message
    assert "(expected " in message
    assert "--env-vars" in message


def test_sam_local_logical_ids_are_all_reported_at_once(environment: pytest.MonkeyPatch) -> None:
    # GIVEN what `sam local invoke` without --env-vars gives CategorizeFunction: logical ids
    for variable, logical_id in {
        "DLQ_URL": "ArticleDLQ",
        "OPENAI_API_KEY_SECRET_ARN": "OpenAIApiKeySecretArn",
    }.items():
        environment.setenv(variable, logical_id)
    # WHEN the settings load THEN one error names both, with the remedy once
    with pytest.raises(ConfigurationError) as raised:
        CategorizeSettings.from_env()
    message = str(raised.value)
    assert message.startswith("CategorizeSettings: ")
    assert "DLQ_URL='ArticleDLQ' is not an SQS queue URL (expected http(s)://" in message
    assert "OPENAI_API_KEY_SECRET_ARN='OpenAIApiKeySecretArn' is not a Secrets Manager secret ARN" in message
    assert message.count("sam local invoke") == 1


def test_a_missing_variable_is_named_without_the_sam_hint(environment: pytest.MonkeyPatch) -> None:
    # GIVEN the queue URL is not set at all
    environment.delenv("ARTICLE_QUEUE_URL")
    # WHEN the settings load THEN the error names it as missing
    with pytest.raises(ConfigurationError, match=r"ARTICLE_QUEUE_URL: Field required$"):
        IngestSettings.from_env()


@pytest.mark.parametrize("declared", [True, False])
def test_an_empty_or_absent_openai_base_url_is_the_sdk_default(environment: pytest.MonkeyPatch, declared: bool) -> None:
    # GIVEN OPENAI_BASE_URL declared empty (the template's default) or not set at all
    if declared:
        environment.setenv("OPENAI_BASE_URL", "")
    else:
        environment.delenv("OPENAI_BASE_URL", raising=False)
    # WHEN the settings load THEN the base URL is OpenAI's, never ""
    assert OpenAISettings.from_env().openai_base_url == OPENAI_API_BASE_URL == "https://api.openai.com/v1"
