"""Error classes of the pipeline tasks.

Step Functions matches a failed Lambda task by the exception's class name (the runtime's
`errorType`), so these names appear in statemachine/finetune.asl.json: `TransientError` is
retried with backoff; the others end the run in its failure state at once.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: the message is the cause shown in the execution's failure."""


class TransientError(PipelineError):
    """A network error, a throttle or a 5xx from OpenAI or AWS: retrying can help."""


class DatasetInvalid(PipelineError):
    """The labelled data cannot make a valid fine-tuning dataset (the message lists why)."""


class CostGuardExceeded(PipelineError):
    """The training cost estimate is above the guard; nothing was uploaded."""


class FileProcessingFailed(PipelineError):
    """OpenAI rejected an uploaded training file."""


class EvaluationFailed(PipelineError):
    """The new model could not be evaluated (e.g. it answered no valid label at all)."""
