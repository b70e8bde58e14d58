"""The rules of a chat fine-tuning file (supervised method): the export checks its files with them,
and the offline OpenAI server (devstack/local/openai_server/validation.py) judges uploads by them.

After OpenAI's documentation (looked up December 2026):
- API reference, "Training format for chat models using the supervised method"
  (https://platform.openai.com/docs/api-reference/fine-tuning/chat-input, generated from the
  schema FineTuneChatRequestInput of github.com/openai/openai-openapi): each line is a JSON
  object whose `messages` list (at least one) holds system, user, assistant, tool or function
  messages, each with its role's own keys. There is no `developer` role: chat completions
  requests take it, training files do not. `weight` belongs to assistant messages alone: 0 or 1
  (train on that message or not).
- Supervised fine-tuning guide (the page titled "Supervised fine-tuning", read at
  https://developers.openai.com/docs/guides/distillation): "The minimum number of examples you
  can provide for fine-tuning is 10".
- The fine-tuning guide's token limits (also in Azure OpenAI's model table): gpt-4o-mini-2024-07-18
  trains on at most 65,536 tokens of an example; a longer one is truncated, and billed as trained.

Two rules of this project come on top, and say so in their wording: content is text (the
categorizer's examples are, and the offline server's classifier reads text; OpenAI also takes
content-part arrays), and an example ends with the assistant's answer (the label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from categorizer.prompt import ChatMessage, estimate_prompt_tokens

MIN_EXAMPLES = 10
# gpt-4o-mini-2024-07-18, the base model this project fine-tunes (docs/finetuning.md).
MAX_EXAMPLE_TOKENS = 65_536
ASSISTANT_WEIGHTS = (0, 1)
# Each role's keys, from its message schema in the API reference.
MESSAGE_KEYS: Mapping[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "refusal", "name", "audio", "tool_calls", "function_call", "weight"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
ROLES = frozenset(MESSAGE_KEYS)
_REQUIRED_KEYS: Mapping[str, tuple[str, ...]] = {"tool": ("tool_call_id",), "function": ("name",)}
# An assistant message may call a tool instead of answering in text.
_ASSISTANT_CONTENT_ALTERNATIVES = ("tool_calls", "function_call")


def message_problem(message: object) -> str | None:
    """What is wrong with one message of an example, or None."""
    if not isinstance(message, Mapping):
        return "each message must be an object"
    role = message.get("role")
    if role is None:
        return "missing required key 'role'"
    if role not in ROLES:
        return f"invalid role in message: {role!r} (a training file takes {', '.join(sorted(ROLES))})"
    unknown = sorted(set(message) - MESSAGE_KEYS[role])
    if unknown:
        return f"unrecognized key in a {role} message: {unknown[0]!r}"
    for key in _REQUIRED_KEYS.get(role, ()):
        if key not in message:
            return f"missing required key {key!r} in a {role} message"
    if "weight" in message and (type(message["weight"]) is not int or message["weight"] not in ASSISTANT_WEIGHTS):
        return f"weight must be 0 or 1, not {message['weight']!r}"
    if "content" not in message:
        if role == "assistant" and any(key in message for key in _ASSISTANT_CONTENT_ALTERNATIVES):
            return None
        return f"missing required key 'content' in a {role} message"
    if not isinstance(message["content"], str):
        return f"content must be a string (this project's examples are text) in a {role} message"
    if not message["content"]:
        return f"a {role} message has empty content"
    return None


def example_problem(example: object) -> str | None:
    """What is wrong with one line (parsed JSON) of a training file, or None."""
    if not isinstance(example, Mapping):
        return "not a JSON object"
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return "missing key 'messages' (a non-empty list)"
    for index, message in enumerate(messages, start=1):
        problem = message_problem(message)
        if problem:
            return f"message {index}: {problem}"
    if messages[-1]["role"] != "assistant" or not isinstance(messages[-1].get("content"), str):
        return "the last message must be from the assistant, with its answer as text (this project's rule)"
    return None


def example_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Tokens of a valid example in OpenAI's chat formula, every role alike (o200k_base)."""
    return estimate_prompt_tokens(
        [cast(ChatMessage, {"role": m["role"], "content": m.get("content") or ""}) for m in messages]
    )


def billed_tokens(tokens: int, max_example_tokens: int = MAX_EXAMPLE_TOKENS) -> int:
    """An example's training tokens: OpenAI truncates it at the limit, and bills what it trains on."""
    return min(tokens, max_example_tokens)
