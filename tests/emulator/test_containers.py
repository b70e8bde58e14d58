"""The offline stack as `sam local invoke` containers reach it: addresses, URLs, the env file's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.containers import check_container_address, reachable_from_containers, sam_env_vars
from local.provision import FunctionSpec
from local.runtime import Endpoints, function_environment


@pytest.mark.parametrize("address", ["172.17.0.1", "192.168.1.20", "10.0.0.2", "fd00::1"])
def test_a_private_address_is_a_container_address(address: str) -> None:
    assert check_container_address(address) == address


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "0.0.0.0", "::", "8.8.8.8", "docker0", "host.docker.internal"])
def test_loopback_wildcard_public_and_names_are_refused(address: str) -> None:
    # GIVEN an address where the stand-ins (any credentials accepted) must not listen, or no address
    # WHEN checked THEN refused with what to give instead
    with pytest.raises(ValueError, match=r"172\.17\.0\.1"):
        check_container_address(address)


def test_loopback_urls_move_to_the_container_host_and_nothing_else_changes() -> None:
    # GIVEN the values a function gets offline
    values = {
        "http://127.0.0.1:50123": "http://host.docker.internal:50123",
        "http://127.0.0.1:50123/123456789012/article-queue": "http://host.docker.internal:50123/123456789012/article-queue",
        "http://localhost:8123/v1": "http://host.docker.internal:8123/v1",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook-AbC123": None,
        "https://sqs.us-east-1.amazonaws.com/123456789012/article-queue": None,
        "http://127.0.0.1.example.com:80/x": None,
        "article-categorizer-ResultsTable": None,
        "": None,
    }
    # WHEN made reachable from containers THEN only loopback origins change
    for value, expected in values.items():
        assert reachable_from_containers(value, "host.docker.internal") == (expected or value)


def test_the_env_file_has_the_endpoints_for_all_and_each_functions_declared_variables() -> None:
    # GIVEN two functions and their environments in the stack (more variables than they declare)
    declared = {
        "IngestFunction": ["AWS_ENDPOINT_URL", "OPENAI_BASE_URL", "ARTICLE_QUEUE_URL"],
        "CategorizeFunction": ["AWS_ENDPOINT_URL", "OPENAI_BASE_URL", "RESULTS_TABLE_NAME"],
    }
    common = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:50123",
        "OPENAI_BASE_URL": "http://127.0.0.1:8123/v1",
        "AWS_LAMBDA_FUNCTION_NAME": "not-declared",
    }
    environments = {
        "IngestFunction": common | {"ARTICLE_QUEUE_URL": "http://127.0.0.1:50123/123456789012/article-queue"},
        "CategorizeFunction": common | {"RESULTS_TABLE_NAME": "results"},
    }
    # WHEN the env file is built for containers reaching 172.17.0.1
    env_vars = sam_env_vars(declared, environments.__getitem__, "172.17.0.1")
    # THEN SAM's shape: the endpoints under "Parameters" (every function), the rest per function,
    # declared variables only (SAM ignores the others), loopback URLs at the container address
    assert env_vars == {
        "Parameters": {"AWS_ENDPOINT_URL": "http://172.17.0.1:50123", "OPENAI_BASE_URL": "http://172.17.0.1:8123/v1"},
        "IngestFunction": {"ARTICLE_QUEUE_URL": "http://172.17.0.1:50123/123456789012/article-queue"},
        "CategorizeFunction": {"RESULTS_TABLE_NAME": "results"},
    }


def test_offline_endpoints_override_the_templates_empty_ones() -> None:
    # GIVEN a function whose template environment declares the endpoints empty (the real services)
    spec = FunctionSpec(
        logical_id="IngestFunction",
        name="ingest",
        arn="arn:aws:lambda:us-east-1:123456789012:function:ingest",
        code_dir=Path("functions/ingest"),
        handler="app.lambda_handler",
        timeout_seconds=30,
        memory_mb=512,
        environment={"AWS_ENDPOINT_URL": "", "OPENAI_BASE_URL": "", "ARTICLE_QUEUE_URL": "q"},
        layer_dirs=(),
        reserved_concurrency=None,
    )
    endpoints = Endpoints("http://127.0.0.1:50123", "us-east-1", "http://127.0.0.1:8123/v1", "/cache/tiktoken")
    # WHEN its offline environment is built
    env = function_environment(spec, endpoints, {"ARTICLE_QUEUE_URL": "override"})
    # THEN the offline endpoints and tokenizer cache win over the empty values; overrides win over all
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:50123"
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8123/v1"
    assert env["TIKTOKEN_CACHE_DIR"] == "/cache/tiktoken"
    assert env["ARTICLE_QUEUE_URL"] == "override"
