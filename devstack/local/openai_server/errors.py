"""OpenAI's error shape: {"error": {"message", "type", "param", "code"}} with an HTTP status."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

MAX_METADATA_KEYS = 16


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def not_found(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(404, message, param=param, code=code)


def bad_request(exc: ValidationError) -> ApiError:
    """A request body that failed its pydantic model, named by its first bad parameter."""
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first["loc"])
    return invalid(f"Invalid '{param}': {first['msg']}", param=param)


def server_error(status: int, headers: dict[str, str] | None = None) -> ApiError:
    """OpenAI's wording for a 5xx (the injected faults use it)."""
    if status == 503:
        return ApiError(
            503, "The engine is currently overloaded, please try again later.", type="server_error", headers=headers
        )
    return ApiError(
        status,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
        headers=headers,
    )


def check_metadata(metadata: dict[str, str] | None) -> None:
    """OpenAI's metadata rules (fine-tuning jobs and batches): 16 keys, keys ≤ 64 chars, values ≤ 512."""
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA_KEYS:
        raise invalid(f"Invalid 'metadata': at most {MAX_METADATA_KEYS} keys", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise invalid("Invalid 'metadata': keys are at most 64 chars, values 512", param="metadata")
