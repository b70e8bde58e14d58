"""The AsyncOpenAI client: API key from Secrets Manager, created once per container."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx2
import openai
from aws_lambda_powertools.utilities import parameters

from categorizer.config import OpenAISettings

ResponseHook = Callable[[httpx2.Response], Awaitable[None]]


def api_key_from_secret(secret_value: str) -> str:
    """The secret holds the key itself or JSON {"api_key": "..."}."""
    text = secret_value.strip()
    if text.startswith("{"):
        key = json.loads(text).get("api_key")
        if not isinstance(key, str) or not key:
            raise ValueError("the OpenAI secret is JSON without a non-empty 'api_key' field")
        return key
    return text


class OpenAIClientProvider:
    """Creates the client on first use and keeps it for the container's life.

    In the Lambda runtime Powertools runs every batch on one event loop. Elsewhere (tests,
    the offline poller) each batch gets a new loop, and an async HTTP pool must not outlive
    its loop, so the client is recreated when the running loop changes.
    """

    def __init__(
        self,
        settings: OpenAISettings,
        *,
        on_response: ResponseHook | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._on_response = on_response
        self._transport = transport
        self._client: openai.AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = self._create()
            self._loop = loop
        return self._client

    def _create(self) -> openai.AsyncOpenAI:
        secret = parameters.get_secret(self._settings.openai_secret_arn, max_age=self._settings.secret_cache_seconds)
        http_client = openai.DefaultAsyncHttpx2Client(
            transport=self._transport,
            event_hooks={"response": [self._on_response]} if self._on_response else None,
        )
        return openai.AsyncOpenAI(
            api_key=api_key_from_secret(str(secret)),
            # Always given: left to the SDK, an empty OPENAI_BASE_URL would become the base URL.
            base_url=self._settings.openai_base_url,
            timeout=self._settings.openai_timeout_seconds,
            max_retries=self._settings.openai_max_retries,
            http_client=http_client,
        )
