"""OpenAI at the HTTP level for unit tests: chat completions served through an httpx2 MockTransport.

Replies are built from the SDK's own typed models, so a reply the SDK could not parse cannot be
written here; the handler's real client, retries and error mapping run unchanged.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionMessage, ChatCompletionTokenLogprob
from openai.types.chat.chat_completion import Choice, ChoiceLogprobs
from openai.types.chat.chat_completion_token_logprob import TopLogprob

Answer = list[tuple[str, float]]  # (token, probability) of the one completion token, the first one chosen


def one_token_completion(model: str, answer: Answer, prompt_tokens: int = 42) -> ChatCompletion:
    """The reply to a `max_tokens=1, logprobs=True` request: one token and its top_logprobs."""
    top = [TopLogprob(token=token, logprob=math.log(p), bytes=list(token.encode())) for token, p in answer]
    chosen = ChatCompletionTokenLogprob(**top[0].model_dump(), top_logprobs=top)
    return ChatCompletion(
        id="chatcmpl-unit",
        object="chat.completion",
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                index=0,
                message=ChatCompletionMessage(role="assistant", content=chosen.token),
                logprobs=ChoiceLogprobs(content=[chosen]),
                finish_reason="length",  # cut by max_tokens=1 before the stop token
            )
        ],
        usage=CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=1, total_tokens=prompt_tokens + 1),
    )


def json_response(completion: ChatCompletion) -> httpx2.Response:
    return httpx2.Response(200, json=completion.model_dump(mode="json"))


@dataclass
class FakeOpenAI:
    """The chat completions endpoint, scripted per request.

    `answer` decides the default reply from the request body; `always` and `scripted` answer
    requests whose user message contains a marker (e.g. "FAIL-500"): always that response, or
    the queued ones in turn. `requests` records every request body.
    """

    answer: Callable[[dict[str, Any]], Answer] = lambda request: [("3", 0.80), ("7", 0.15), (" six", 0.03)]
    scripted: dict[str, list[httpx2.Response]] = field(default_factory=dict)
    always: dict[str, httpx2.Response] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        user = body["messages"][-1]["content"]
        for marker, response in self.always.items():
            if marker in user:
                return response
        for marker, queue in self.scripted.items():
            if marker in user and queue:
                return queue.pop(0)
        return json_response(one_token_completion(body["model"], self.answer(body)))

    def transport(self) -> httpx2.MockTransport:
        # Looked up per request, so a test may replace `handle` after the client was built.
        return httpx2.MockTransport(lambda request: self.handle(request))

    def calls_for(self, marker: str) -> int:
        return sum(marker in r["messages"][-1]["content"] for r in self.requests)
