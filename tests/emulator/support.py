"""Helpers for the offline OpenAI-compatible server tests: a tiny synthetic training set, polling, settings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
from openai.types import Batch
from openai.types.fine_tuning import FineTuningJob

from local.openai_server import ServerHandle

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


def wait_for_job(client: openai.OpenAI, job_id: str, timeout: float = 30.0) -> FineTuningJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def upload(client: openai.OpenAI, lines: list[str], name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, "\n".join(lines).encode()), purpose="fine-tune").id


def configure(server: ServerHandle, **settings: object) -> dict[str, object]:
    """Change the server's settings at runtime (POST /_admin/config)."""
    response = httpx2.post(f"{server.root_url}/_admin/config", json=settings)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


BATCH_DONE = frozenset({"completed", "failed", "expired", "cancelled"})


def batch_line(custom_id: str, body: dict[str, Any], **envelope: object) -> str:
    """One line of a batch input file; `envelope` overrides method or url."""
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body, **envelope}
    )


def upload_batch(client: openai.OpenAI, lines: list[str]) -> str:
    return client.files.create(file=("batch.jsonl", "\n".join(lines).encode()), purpose="batch").id


def wait_for_batch(
    client: openai.OpenAI,
    batch_id: str,
    until: Callable[[Batch], bool] = lambda batch: batch.status in BATCH_DONE,
    timeout: float = 30.0,
) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if until(batch) or time.monotonic() > deadline:
            return batch
        time.sleep(0.02)
