"""Chat training examples that follow OpenAI's training format, and ones that break one rule each.

The unit tests check the rules on them (tests/unit/finetune/test_file_rules.py); the emulator's
tests check that the offline server judges each one as the export does.
"""

from __future__ import annotations

from typing import Any

from categorizer.taxonomy import bundled_taxonomy

TAXONOMY = bundled_taxonomy("demo-2")
LABELS = [c.label for c in TAXONOMY.categories]
SYSTEM = {"role": "system", "content": "Answer with the category number."}
USER = {"role": "user", "content": "Chip maker unveils a faster laptop processor"}
ANSWER = {"role": "assistant", "content": "3"}


def _example(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"messages": list(messages)}


VALID: dict[str, dict[str, Any]] = {
    "system, user, answer": _example(SYSTEM, USER, ANSWER),
    "no system message": _example(USER, ANSWER),
    "named user": _example({**USER, "name": "editor"}, ANSWER),
    "earlier answer not trained (weight 0)": _example(
        USER, {**ANSWER, "content": "5", "weight": 0}, USER, {**ANSWER, "weight": 1}
    ),
    "a tool call and its result before the answer": _example(
        USER,
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f"}}]},
        {"role": "tool", "content": "{}", "tool_call_id": "c1"},
        ANSWER,
    ),
}

# (example, the words its problem must contain); an example is any JSON value
INVALID: dict[str, tuple[Any, str]] = {
    "developer role (chat completions only)": (
        _example({"role": "developer", "content": "x"}, USER, ANSWER),
        "message 1: invalid role in message: 'developer'",
    ),
    "unknown role": (_example({"role": "narrator", "content": "x"}, ANSWER), "invalid role in message: 'narrator'"),
    "no role": (_example({"content": "x"}, ANSWER), "missing required key 'role'"),
    "weight on a user message": (
        _example({**USER, "weight": 1}, ANSWER),
        "unrecognized key in a user message: 'weight'",
    ),
    "weight other than 0 or 1": (_example(USER, {**ANSWER, "weight": 0.5}), "weight must be 0 or 1"),
    "weight given as a boolean": (_example(USER, {**ANSWER, "weight": True}), "weight must be 0 or 1"),
    "unknown key": (_example({**USER, "mood": 1}, ANSWER), "unrecognized key in a user message: 'mood'"),
    "tool result without its call id": (
        _example(USER, {"role": "tool", "content": "{}"}, ANSWER),
        "missing required key 'tool_call_id' in a tool message",
    ),
    "user message without content": (_example({"role": "user"}, ANSWER), "missing required key 'content'"),
    "content parts instead of text": (
        _example({"role": "user", "content": [{"type": "text", "text": "x"}]}, ANSWER),
        "content must be a string",
    ),
    "empty content": (_example({"role": "user", "content": ""}, ANSWER), "a user message has empty content"),
    "answer not last": (_example(ANSWER, USER), "the last message must be from the assistant"),
    "no messages": ({"messages": []}, "missing key 'messages'"),
    "not an object": (["messages"], "not a JSON object"),
}
