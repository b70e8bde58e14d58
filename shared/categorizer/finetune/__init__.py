"""The fine-tuning pipeline's logic (the Step Functions tasks call into it).

export → upload → start → poll → evaluate → promote; see docs/finetuning.md. Each step is
a function of its inputs and small adapters (S3 `RunStore`, the AsyncOpenAI client, SSM),
so it tests without AWS or OpenAI.
"""
