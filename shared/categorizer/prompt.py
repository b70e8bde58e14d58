"""The one prompt builder (docs/design.md invariant 1).

Training examples (fine-tuning export) and live requests (categorize function) both come
from `build_prompt`, so a change here changes both. The budget cut is part of the prompt:
the model is trained on exactly the kind of input it will see live. The title is cut to its
share of the budget and the body to the rest, so the input of a request never exceeds the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

from categorizer.text import content_hash, cut_to_token_budget, normalize_text
from categorizer.tokens import count_tokens

SYSTEM_PROMPT = "Categorise the web article. Answer with its category number only."

Role = Literal["system", "user", "assistant"]


class ChatMessage(TypedDict):
    role: Role
    content: str


# Chat formatting overhead per message and per reply, as in OpenAI's token-counting guide.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


@dataclass(frozen=True)
class Prompt:
    messages: list[ChatMessage]
    prompt_tokens: int
    truncated: bool

    @property
    def fingerprint(self) -> str:
        """Hash of exactly what the model reads: the unit of "unchanged content" (docs/design.md invariant 6)."""
        return content_hash(*(f"{m['role']}:{m['content']}" for m in self.messages))


# The title's share of the input token budget: a title (≤ 1,000 characters, one token each at
# worst) is cut to it, so title + body never exceed the budget and the cost bound holds.
TITLE_BUDGET_SHARE = 8


def title_token_budget(input_token_budget: int) -> int:
    return max(1, input_token_budget // TITLE_BUDGET_SHARE)


@dataclass(frozen=True)
class ModelInput:
    """What the model reads of an article: the normalised, cut title and the budget-cut body.

    The text store keeps exactly this per revision (categorizer.textstore), and the backfill
    rebuilds the same prompt from it (`prompt_from_input`), so its fingerprint is the live one.
    """

    title: str
    body: str
    truncated: bool


def model_input(title: str, text: str, input_token_budget: int) -> ModelInput:
    cut_title = cut_to_token_budget(normalize_text(title), title_token_budget(input_token_budget))
    body = cut_to_token_budget(text, max(0, input_token_budget - cut_title.tokens))
    return ModelInput(cut_title.text, body.text, body.truncated or cut_title.truncated)


def prompt_from_input(read: ModelInput) -> Prompt:
    user = f"{read.title}\n\n{read.body}" if read.body else read.title
    messages: list[ChatMessage] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]
    return Prompt(messages, estimate_prompt_tokens(messages), read.truncated)


def build_prompt(title: str, text: str, input_token_budget: int) -> Prompt:
    return prompt_from_input(model_input(title, text, input_token_budget))


def build_training_example(prompt: Prompt, label: str) -> dict[str, list[ChatMessage]]:
    """One line of a chat fine-tuning JSONL file: the live prompt plus the label as the answer."""
    return {"messages": [*prompt.messages, {"role": "assistant", "content": label}]}


def estimate_prompt_tokens(messages: list[ChatMessage]) -> int:
    return TOKENS_PER_REPLY + sum(TOKENS_PER_MESSAGE + count_tokens(m["content"]) for m in messages)
