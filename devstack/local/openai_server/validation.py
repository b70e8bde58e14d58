"""Chat fine-tuning file checks: the rules of `categorizer.finetune.file_rules`, OpenAI-style errors.

The rules are the export's own, so the emulator cannot accept a file the export would refuse or
the reverse. A failure names the first bad example the way OpenAI's job errors do, so the
pipeline's error handling meets realistic text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from categorizer.finetune import file_rules


class InvalidFile(Exception):
    pass


@dataclass(frozen=True)
class Example:
    text: str  # the last user message: what the classifier reads
    label: str  # the final assistant message: what it answers
    tokens: int  # billable training tokens of the example


def _example(line_no: int, line: str) -> Example:
    where = f"Example {line_no}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidFile(f"Invalid file format. Line {line_no} is not valid JSON: {exc.msg}") from None
    problem = file_rules.example_problem(record)
    if problem:
        raise InvalidFile(f"Invalid file format. {where}: {problem}")
    messages = record["messages"]
    # The local classifier learns text → label, so it needs a user message to read.
    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users:
        raise InvalidFile(f"Invalid file format. {where} has no user message")
    tokens = file_rules.billed_tokens(file_rules.example_tokens(messages))
    return Example(users[-1], messages[-1]["content"], tokens)


def parse_training_file(content: bytes) -> list[Example]:
    """The examples of a chat fine-tuning JSONL file, or InvalidFile with OpenAI-like wording."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFile("Invalid file format. The file must be UTF-8 encoded JSONL") from None
    examples = [_example(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(examples) < file_rules.MIN_EXAMPLES:
        raise InvalidFile(
            f"Training file has {len(examples)} example(s), but must have at least {file_rules.MIN_EXAMPLES} examples"
        )
    return examples
