"""Chat fine-tuning file checks, after OpenAI's published format rules.

A failure names the first bad example the way OpenAI's job errors do, so the pipeline's
error handling meets realistic text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from categorizer.prompt import ChatMessage, estimate_prompt_tokens

MIN_EXAMPLES = 10
ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"})


class InvalidFile(Exception):
    pass


@dataclass(frozen=True)
class Example:
    text: str  # the last user message: what the classifier reads
    label: str  # the final assistant message: what it answers
    tokens: int  # billable training tokens of the example


def _message_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "Each message must be an object"
    unknown = sorted(set(message) - MESSAGE_KEYS)
    if unknown:
        return f"Unrecognized key in message: '{unknown[0]}'"
    if "role" not in message:
        return "Missing required key 'role'"
    if message["role"] not in ROLES:
        return f"Invalid role in message: '{message['role']}'"
    if "content" not in message:
        return "Missing required key 'content'"
    if not isinstance(message["content"], str):
        return "Message content must be a string"
    return None


def _example(line_no: int, line: str) -> Example:
    where = f"Example {line_no}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidFile(f"Invalid file format. Line {line_no} is not valid JSON: {exc.msg}") from None
    if not isinstance(record, dict):
        raise InvalidFile(f"Invalid file format. {where} is not a JSON object")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidFile(f"Invalid file format. {where} is missing key 'messages'")
    for index, message in enumerate(messages, start=1):
        problem = _message_problem(message)
        if problem:
            raise InvalidFile(f"Invalid file format. {where}, message {index}: {problem}")
    if messages[-1]["role"] != "assistant":
        raise InvalidFile(f"Invalid file format. {where}: the last message must be from the assistant")
    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users:
        raise InvalidFile(f"Invalid file format. {where} has no user message")
    # Tool and developer roles count like the others in OpenAI's token formula.
    chat = [cast(ChatMessage, {"role": m["role"], "content": m["content"]}) for m in messages]
    return Example(users[-1], messages[-1]["content"], estimate_prompt_tokens(chat))


def parse_training_file(content: bytes) -> list[Example]:
    """The examples of a chat fine-tuning JSONL file, or InvalidFile with OpenAI-like wording."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFile("Invalid file format. The file must be UTF-8 encoded JSONL") from None
    examples = [_example(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(examples) < MIN_EXAMPLES:
        raise InvalidFile(
            f"Training file has {len(examples)} example(s), but must have at least {MIN_EXAMPLES} examples"
        )
    return examples
