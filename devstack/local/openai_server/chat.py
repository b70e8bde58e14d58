"""Chat completions from a fine-tuned TextModel: one label token with OpenAI-shaped logprobs.

The classifier's probabilities become the next-token distribution: each label gets its
probability (scaled down by the junk mass), a few non-label tokens share the junk mass,
`logit_bias` is added on the logit scale and the result renormalised.
"""

from __future__ import annotations

import math
import time
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from categorizer.limiter import TokenCounting, tokens_from_characters
from categorizer.prompt import ChatMessage, estimate_prompt_tokens
from categorizer.tokens import encoding
from local.openai_server.errors import bad_request, invalid
from local.openai_server.store import new_id
from local.textmodel import TextModel

MAX_TOP_LOGPROBS = 20
MAX_LOGIT_BIAS_KEYS = 1024


class ChatRequest(BaseModel):
    # Parameters this server does not model (stop, user, store, …) are accepted and ignored.
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    n: int = 1
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    stream: bool | None = None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def parse_request(body: Any) -> ChatRequest:
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise bad_request(exc) from None
    if not request.messages:
        raise invalid("Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages")
    for i, message in enumerate(request.messages):
        if message.get("role") not in {"system", "developer", "user", "assistant", "tool", "function"}:
            raise invalid(f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role")
    if request.stream:
        raise invalid("Streaming is not supported by the offline server.", "stream")
    for param in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, param)
        if value is not None and value < 1:
            raise invalid(
                f"Invalid '{param}': integer below minimum value. Expected >= 1.", param, "integer_below_min_value"
            )
    if request.temperature is not None and not 0 <= request.temperature <= 2:
        raise invalid("Invalid 'temperature': expected a value between 0 and 2.", "temperature")
    if not 1 <= request.n <= 128:
        raise invalid("Invalid 'n': expected a value between 1 and 128.", "n")
    if request.top_logprobs is not None:
        if not 0 <= request.top_logprobs <= MAX_TOP_LOGPROBS:
            raise invalid(
                f"Invalid 'top_logprobs': integer above maximum value. Expected a value <= {MAX_TOP_LOGPROBS}, "
                f"but got {request.top_logprobs} instead.",
                "top_logprobs",
                "integer_above_max_value",
            )
        if not request.logprobs:
            raise invalid("Invalid value for 'top_logprobs': 'logprobs' must be set to true.", "top_logprobs")
    _check_logit_bias(request.logit_bias)
    return request


def _check_logit_bias(logit_bias: dict[str, float] | None) -> None:
    if logit_bias is None:
        return
    if len(logit_bias) > MAX_LOGIT_BIAS_KEYS:
        raise invalid(
            f"Invalid 'logit_bias': too many keys. Expected at most {MAX_LOGIT_BIAS_KEYS}, got {len(logit_bias)}.",
            "logit_bias",
        )
    vocab = encoding().n_vocab
    for key, value in logit_bias.items():
        if not key.isdigit() or int(key) >= vocab:
            raise invalid(f"Invalid key in 'logit_bias': {key}. Keys must be token ids.", "logit_bias")
        if not -100 <= value <= 100:
            raise invalid(
                f"Invalid value in 'logit_bias' for key {key}: {value}. Expected a value between -100 and 100.",
                "logit_bias",
            )


def prompt_tokens(request: ChatRequest) -> int:
    # Tool and developer roles count like the others in OpenAI's token formula.
    messages = [cast(ChatMessage, {"role": m["role"], "content": _text(m.get("content"))}) for m in request.messages]
    return estimate_prompt_tokens(messages)


def rate_limit_tokens(request: ChatRequest, counting: TokenCounting) -> int:
    """What the request costs against TPM: its prompt, as `counting` says, plus the completion it
    may produce (max_tokens × n). "characters" is OpenAI's limiter's estimate
    (categorizer.limiter.tokens_from_characters, which cites what OpenAI documents); with
    "tiktoken" and "characters" the server brackets a real account for Japanese.
    """
    completion = (request.max_completion_tokens or request.max_tokens or 1) * request.n
    if counting == "tiktoken":
        return prompt_tokens(request) + completion
    return tokens_from_characters([_text(m.get("content")) for m in request.messages]) + completion


def _token_id(token: str) -> int:
    # Labels are single o200k_base tokens by design; a longer answer is keyed by its first token.
    ids = encoding().encode(token, disallowed_special=())
    return ids[0] if ids else -1


def next_token_distribution(
    model: TextModel, text: str, junk_tokens: list[str], junk_mass: float, logit_bias: dict[str, float]
) -> tuple[list[str], np.ndarray[Any, np.dtype[np.float64]]]:
    """Candidate tokens and their log-probabilities after logit_bias, renormalised."""
    proba = model.predict_proba([text])[0].astype(np.float64)
    junk = [t for t in junk_tokens if t not in model.labels] if junk_mass > 0 else []
    tokens = [*model.labels, *junk]
    mass = np.concatenate(
        [proba * (1.0 - junk_mass if junk else 1.0), np.full(len(junk), junk_mass / max(len(junk), 1))]
    )
    logits = np.log(np.maximum(mass, 1e-300))
    logits += np.array([logit_bias.get(str(_token_id(t)), 0.0) for t in tokens])
    logits -= logits.max()
    return tokens, logits - np.log(np.exp(logits).sum())


def _logprob_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def _choice(
    index: int, token: str, logprob: float, top: list[tuple[str, float]] | None, limited: bool
) -> dict[str, Any]:
    """One choice answering `token`; `top` (token, logprob) are its top_logprobs, None without logprobs."""
    choice_logprobs = None
    if top is not None:
        choice_logprobs = {
            "content": [{**_logprob_entry(token, logprob), "top_logprobs": [_logprob_entry(*t) for t in top]}],
            "refusal": None,
        }
    return {
        "index": index,
        "message": {"role": "assistant", "content": token, "refusal": None, "annotations": []},
        "logprobs": choice_logprobs,
        # The answer is one token, then the stop token; a one-token limit cuts before the stop.
        "finish_reason": "length" if limited else "stop",
    }


def _completion(model: str, choices: list[dict[str, Any]], n_prompt: int) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": n_prompt,
            "completion_tokens": len(choices),
            "total_tokens": n_prompt + len(choices),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_local",
    }


def chat_completion_json(model: str, answer: list[tuple[str, float]], prompt_tokens: int = 42) -> dict[str, Any]:
    """A one-token completion cut by max_tokens=1: `answer` lists (token, probability), the first one chosen."""
    top = [(token, math.log(probability)) for token, probability in answer]
    return _completion(model, [_choice(0, *top[0], top, limited=True)], prompt_tokens)


def complete(
    model: TextModel, request: ChatRequest, junk_tokens: list[str], junk_mass: float, rng: np.random.Generator
) -> dict[str, Any]:
    user = [m for m in request.messages if m["role"] == "user"]
    text = _text(user[-1].get("content")) if user else ""
    tokens, logprobs = next_token_distribution(model, text, junk_tokens, junk_mass, request.logit_bias or {})
    order = np.argsort(-logprobs, kind="stable")
    temperature = 1.0 if request.temperature is None else request.temperature
    limited = (request.max_completion_tokens or request.max_tokens) == 1
    top = [(tokens[i], float(logprobs[i])) for i in order[: request.top_logprobs or 0]] if request.logprobs else None
    choices = []
    for index in range(request.n):
        if temperature == 0:
            pick = int(order[0])
        else:
            scaled = np.exp((logprobs - logprobs.max()) / temperature)
            pick = int(rng.choice(len(tokens), p=scaled / scaled.sum()))
        choices.append(_choice(index, tokens[pick], float(logprobs[pick]), top, limited))
    return _completion(request.model, choices, prompt_tokens(request))
