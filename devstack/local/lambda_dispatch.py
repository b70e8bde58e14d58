"""Route moto's Lambda Invoke to Python handlers in this process (no Docker).

Why a shim: moto runs Step Functions executions for real (`execute_state_machine`), and its
Lambda tasks call Lambda Invoke. moto's Docker-free Lambda backend (`use_docker: False`)
does not run code: it echoes the payload or replays a canned queue. Docker cannot run here,
so this module replaces that backend's `invoke` with a lookup in a routing table: a routed
function name runs its Python handler, anything else keeps moto's behaviour. It works for
`mock_aws` and for moto's ThreadedMotoServer alike, because both keep their backends in this
process.

A handler that raises becomes a function error as the Lambda Python runtime reports it:
header `X-Amz-Function-Error: Unhandled`, payload {errorType, errorMessage, stackTrace}, with
errorType the exception's class name (or its `error_type` attribute), which is what Step
Functions' Retry and Catch match.
"""

from __future__ import annotations

import json
import os
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend

from local.lambda_shapes import Handler, LambdaContext, load_handler

Route = Callable[[Any], Any]  # event → JSON-serialisable result; raise for a function error

_routes: dict[str, Route] = {}
_original_invoke = LambdaSimpleBackend.invoke
# Handlers run without the template's Timeout: give them Lambda's maximum.
_MAX_TIMEOUT_SECONDS = 900
# os.environ is process-wide: in-process handlers run one at a time with their own variables.
_env_lock = threading.RLock()


def _dispatching_invoke(
    self: LambdaSimpleBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> str | bytes | None:
    name = self.get_function(function_name, qualifier).function_name
    route = _routes.get(name)
    if route is None:
        return _original_invoke(self, function_name, qualifier, body, headers, response_headers)
    event = json.loads(body) if body else {}
    try:
        result = route(event)
    except Exception as error:
        response_headers["x-amz-function-error"] = "Unhandled"
        result = {
            "errorType": getattr(error, "error_type", None) or type(error).__name__,
            "errorMessage": str(error),
            "stackTrace": traceback.format_exception(error),
        }
    return json.dumps(result).encode("utf-8")


def route(function_name: str, handler: Route) -> None:
    """Run `handler` for Invoke calls on `function_name` (and install the shim)."""
    _routes[function_name] = handler
    LambdaSimpleBackend.invoke = _dispatching_invoke  # type: ignore[method-assign]


def clear_routes() -> None:
    _routes.clear()
    LambdaSimpleBackend.invoke = _original_invoke  # type: ignore[method-assign]


@contextmanager
def routed(routes: Mapping[str, Route]) -> Iterator[None]:
    for name, handler in routes.items():
        route(name, handler)
    try:
        yield
    finally:
        clear_routes()


class InProcessFunction:
    """A handler module imported from its code directory with the function's environment.

    The module is imported on the first call (the cold start), under a module name of its
    own, so two functions sharing a file get separate module state, as in Lambda.
    """

    def __init__(self, name: str, code_dir: Path, handler: str, environment: Mapping[str, str]) -> None:
        self.name = name
        self._code_dir = code_dir
        self._handler = handler
        self._environment = dict(environment)
        self._function: Handler | None = None

    def __call__(self, event: Any) -> Any:
        with _env_lock, self._env():
            if self._function is None:
                self._function = load_handler(self._code_dir, self._handler, self.name)
            return self._function(event, LambdaContext(self.name, timeout_seconds=_MAX_TIMEOUT_SECONDS))

    @contextmanager
    def _env(self) -> Iterator[None]:
        saved = {key: os.environ.get(key) for key in self._environment}
        os.environ.update(self._environment)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
