"""Helpers for the offline OpenAI-compatible server tests: a tiny synthetic training set, polling."""

from __future__ import annotations

import json
import time

import openai
from openai.types.fine_tuning import FineTuningJob

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
