"""Fixtures for the offline OpenAI-compatible server: a running server, a client, a trained model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from local.openai_server import OpenAIServerConfig, ServerHandle, serve_in_thread
from tests.emulator.support import training_lines, upload, wait_for_job


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    with serve_in_thread(OpenAIServerConfig(state_dir=tmp_path / "state", seed=7)) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


@pytest.fixture
def model(client: openai.OpenAI) -> str:
    """GIVEN a fine-tuned model trained on the synthetic topics."""
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, training_lines()))
    job = wait_for_job(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model is not None
    return job.fine_tuned_model
