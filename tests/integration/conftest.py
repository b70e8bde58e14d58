"""The fine-tuning pipeline in moto with its tasks routed in-process (the emulator's Lambda shim)."""

from tests.unit.finetune.conftest import fake_openai, pipeline_stack

__all__ = ["fake_openai", "pipeline_stack"]
