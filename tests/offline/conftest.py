"""Fixtures for the offline OpenAI-compatible server: a tiny synthetic training set and a trained model."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from local.openai_server import OpenAIServerConfig, ServerHandle, serve_in_thread

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(__file__).resolve().parents[2] / ".tools" / "tiktoken-cache"))

TOPICS = {
    "0": ["football match goal striker", "baseball pitcher home run", "tennis final set point"],
    "1": ["movie premiere actor director", "film festival cinema award", "new drama series episode"],
    "2": ["smartphone app update android", "laptop processor benchmark", "tablet screen battery review"],
}


def training_lines(per_label: int = 6) -> list[str]:
    lines = []
    for label, phrases in TOPICS.items():
        for i in range(per_label):
            user = f"{phrases[i % len(phrases)]} report number {i}"
            messages = [
                {"role": "system", "content": "Categorise the web article."},
                {"role": "user", "content": user},
                {"role": "assistant", "content": label},
            ]
            lines.append(json.dumps({"messages": messages}))
    return lines


def wait_for_job(client: openai.OpenAI, job_id: str, timeout: float = 30.0) -> openai.types.fine_tuning.FineTuningJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def upload(client: openai.OpenAI, lines: list[str], name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, "\n".join(lines).encode()), purpose="fine-tune").id


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
