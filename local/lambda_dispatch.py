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

import importlib.util
import json
import os
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.awslambda_simple.models import LambdaSimpleBackend

Route = Callable[[Any], Any]  # event → JSON-serialisable result; raise for a function error

_routes: dict[str, Route] = {}
_original_invoke = LambdaSimpleBackend.invoke
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

    The module is imported on the first call (the cold start), under a name unique to the
    function, so two functions sharing a file get separate module state, as in Lambda.
    """

    def __init__(self, name: str, code_dir: Path, handler: str, environment: Mapping[str, str]) -> None:
        self.name = name
        self._code_dir = code_dir
        self._handler = handler
        self._environment = dict(environment)
        self._function: Callable[[Any, Any], Any] | None = None

    def __call__(self, event: Any) -> Any:
        with _env_lock, self._env():
            if self._function is None:
                self._function = self._load()
            return self._function(event, _Context(self.name))

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

    def _load(self) -> Callable[[Any, Any], Any]:
        module_path, _, attribute = self._handler.rpartition(".")
        file = self._code_dir / Path(*module_path.split(".")).with_suffix(".py")
        module_name = f"_lambda_{self.name.replace('-', '_')}_{module_path.replace('.', '_')}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {self._handler} from {self._code_dir}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        function: Callable[[Any, Any], Any] = getattr(module, attribute)
        return function


class _Context:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "in-process"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000
