"""Fixtures for the fine-tuning pipeline in moto: the fake OpenAI on loopback and the pipeline stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.support import FakeFineTuningOpenAI, PipelineStack, pipeline_in_moto, serve_fine_tuning_openai


@pytest.fixture
def finetuning_openai() -> Iterator[FakeFineTuningOpenAI]:
    with serve_fine_tuning_openai() as fake:
        yield fake


@pytest.fixture
def pipeline_stack(finetuning_openai: FakeFineTuningOpenAI) -> Iterator[PipelineStack]:
    with pipeline_in_moto(finetuning_openai) as stack:
        yield stack
