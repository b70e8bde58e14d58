"""The template declares AWS_ENDPOINT_URL and OPENAI_BASE_URL empty (so `sam local invoke --env-vars`
can set them): empty must mean the real AWS and OpenAI endpoints, as if the variables were unset."""

from __future__ import annotations

import asyncio

import boto3
import httpx2
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from categorizer.config import OpenAISettings
from categorizer.openai_client import OpenAIClientProvider


@pytest.mark.parametrize("service", ["sqs", "dynamodb", "secretsmanager", "ssm", "s3"])
def test_an_empty_aws_endpoint_url_leaves_botocore_on_the_aws_endpoint(
    monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    # GIVEN AWS_ENDPOINT_URL declared but empty
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    # WHEN a client is created as the functions create theirs
    client = boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]
    # THEN it talks to AWS itself, not to "" or a relative URL
    assert client.meta.endpoint_url.startswith("https://") and client.meta.endpoint_url.endswith(".amazonaws.com")


def test_a_set_aws_endpoint_url_is_what_botocore_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN AWS_ENDPOINT_URL pointing at the offline stack (the other side of the test above)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:50123")
    # WHEN a client is created THEN it uses it
    assert boto3.client("sqs", region_name="us-east-1").meta.endpoint_url == "http://127.0.0.1:50123"


def _request_url(monkeypatch: pytest.MonkeyPatch, base_url: str) -> str:
    """The URL the product's OpenAI client sends a request to, with OPENAI_BASE_URL=base_url."""
    sent: list[str] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(str(request.url))
        return httpx2.Response(200, json={"object": "list", "data": []})

    async def list_models() -> None:
        client = OpenAIClientProvider(OpenAISettings.from_env(), transport=httpx2.MockTransport(answer))()
        await client.models.list()

    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="openai", SecretString="sk-test")["ARN"]
        monkeypatch.setenv("OPENAI_API_KEY_SECRET_ARN", arn)
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
        parameters.clear_caches()
        asyncio.run(list_models())
    [url] = sent
    return url


def test_an_empty_openai_base_url_sends_requests_to_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN OPENAI_BASE_URL declared but empty (the SDK alone would take "" as its base URL)
    # WHEN the product's client sends a request THEN it goes to api.openai.com
    assert _request_url(monkeypatch, "") == "https://api.openai.com/v1/models"


def test_a_set_openai_base_url_is_where_requests_go(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN OPENAI_BASE_URL pointing at the offline OpenAI-compatible server
    # WHEN the product's client sends a request THEN it goes there
    assert _request_url(monkeypatch, "http://127.0.0.1:8123/v1") == "http://127.0.0.1:8123/v1/models"
