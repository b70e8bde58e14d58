"""Lambda execution environments offline: one worker process per concurrent instance.

A worker imports the handler module once (the cold start) and then serves invocations one
at a time, like a Lambda execution environment, so module-level state (clients, the rate
limiter, caches) lives per instance. Each invocation gets a real context object whose
`get_remaining_time_in_millis()` counts down to the function's timeout; a worker that runs
past its timeout is killed and replaced, as Lambda does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from local.lambda_shapes import Handler, LambdaContext, load_handler
from local.provision import FunctionSpec

# Variables of the machine that a Lambda environment would also have (nothing AWS-specific).
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT")
_START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Endpoints:
    """Where the offline services listen; what a function gets instead of real AWS/OpenAI."""

    aws_endpoint_url: str
    region: str
    openai_base_url: str | None = None
    tiktoken_cache_dir: str | None = None


def function_environment(
    spec: FunctionSpec, endpoints: Endpoints, overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """Lambda's reserved variables, the template's variables, then the offline endpoints.

    The endpoints come after the template's variables: the template declares AWS_ENDPOINT_URL
    and OPENAI_BASE_URL empty (the real services), and offline they point at the stand-ins,
    as `sam local invoke --env-vars` does with the file `python -m local up` writes.
    """
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env |= {
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_REGION": endpoints.region,
        "AWS_DEFAULT_REGION": endpoints.region,
        # Powertools keys "running in Lambda" off this (e.g. one event loop for async batches).
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
    }
    env |= spec.environment
    env |= {
        "AWS_ENDPOINT_URL": endpoints.aws_endpoint_url,
        "AWS_ACCESS_KEY_ID": "offline",
        "AWS_SECRET_ACCESS_KEY": "offline",
        # No X-Ray daemon offline.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    if endpoints.openai_base_url:
        env["OPENAI_BASE_URL"] = endpoints.openai_base_url
    if endpoints.tiktoken_cache_dir:
        env["TIKTOKEN_CACHE_DIR"] = endpoints.tiktoken_cache_dir
    return env | (overrides or {})


def _check_layers(spec: FunctionSpec) -> None:
    """The layers' packages must be the installed ones (`pip install -e .`), so the code run is the layer's source."""
    for directory in spec.layer_dirs:
        for package in (p for p in directory.iterdir() if (p / "__init__.py").is_file()):
            found = importlib.util.find_spec(package.name)
            origin = Path(found.origin).resolve() if found and found.origin else None
            if origin is None or not origin.is_relative_to(package.resolve()):
                raise RuntimeError(
                    f"{spec.logical_id}: layer package {package.name!r} imports from {origin}, not {package}; "
                    'install the project into this environment: pip install -e ".[dev]"'
                )


def _import_handler(spec: FunctionSpec) -> Handler:
    """Import the handler module afresh from its CodeUri (its imports come from the installed layer)."""
    _check_layers(spec)
    return load_handler(spec.code_dir, spec.handler, f"offline_{spec.logical_id}")


def _error_payload(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_exception(error),
    }


def _worker_main(spec_json: str, env: dict[str, str], log_path: str | None, conn: Connection) -> None:
    """Entry point of a worker process (an execution environment)."""
    if log_path:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
    os.environ.clear()
    os.environ.update(env)
    spec = FunctionSpec.model_validate_json(spec_json)
    try:
        handler = _import_handler(spec)
    except Exception as error:
        conn.send(("init_error", _error_payload(error, "Runtime.ImportModuleError")))
        return
    conn.send(("ready", None))
    while True:
        message = conn.recv()
        if message is None:
            return
        request_id, event_json, deadline = message
        context = LambdaContext(
            spec.name,
            aws_request_id=request_id,
            invoked_function_arn=spec.arn,
            memory_limit_in_mb=spec.memory_mb,
            log_stream_name=f"offline/{os.getpid()}",
            deadline=deadline,
        )
        try:
            result = handler(json.loads(event_json), context)
            conn.send(("ok", json.dumps(result)))
        except Exception as error:
            conn.send(("error", _error_payload(error)))
        sys.stdout.flush()
        sys.stderr.flush()


@dataclass(frozen=True)
class Invocation:
    request_id: str
    payload: Any  # the handler's return value, or Lambda's error object
    error: bool
    duration_ms: float


class FunctionError(RuntimeError):
    """The function could not be initialised."""


class Worker:
    """The parent's handle on one execution environment."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], log_path: Path | None) -> None:
        self._spec = spec
        self._env = env
        self._log_path = log_path
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_worker_main,
            args=(self._spec.model_dump_json(), self._env, str(self._log_path) if self._log_path else None, child),
            daemon=True,
            name=f"lambda-{self._spec.logical_id}",
        )
        self._process.start()
        child.close()
        if not parent.poll(_START_TIMEOUT_SECONDS):
            self.stop()
            raise FunctionError(f"{self._spec.logical_id}: the worker did not start in {_START_TIMEOUT_SECONDS} s")
        status, detail = parent.recv()
        if status != "ready":
            self.stop()
            raise FunctionError(f"{self._spec.logical_id}: {detail['errorType']}: {detail['errorMessage']}")
        self._conn = parent
        return parent

    def warm(self) -> None:
        if self._conn is None:
            self._start()

    def invoke(self, event: Any) -> Invocation:
        conn = self._conn or self._start()
        request_id = str(uuid.uuid4())
        started = time.time()
        deadline = started + self._spec.timeout_seconds
        conn.send((request_id, json.dumps(event), deadline))
        if not conn.poll(self._spec.timeout_seconds + 1.0):
            self.stop()  # Lambda ends the environment; the next invocation is a cold start
            message = f"Task timed out after {self._spec.timeout_seconds:.2f} seconds"
            payload: Any = {"errorType": "Sandbox.Timedout", "errorMessage": message}
            return Invocation(request_id, payload, True, (time.time() - started) * 1000)
        try:
            status, detail = conn.recv()
        except EOFError:
            self.stop()
            payload = {"errorType": "Runtime.ExitError", "errorMessage": "the runtime exited"}
            return Invocation(request_id, payload, True, (time.time() - started) * 1000)
        duration = (time.time() - started) * 1000
        if status == "ok":
            return Invocation(request_id, json.loads(detail), False, duration)
        return Invocation(request_id, detail, True, duration)

    def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):  # the worker may be gone already
                self._conn.send(None)
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(timeout=2)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process = None


class FunctionPool:
    """Up to `size` execution environments of one function, started on demand."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], size: int, log_path: Path | None = None) -> None:
        self.spec = spec
        self._idle: queue.LifoQueue[Worker] = queue.LifoQueue()
        self._workers = [Worker(spec, env, log_path) for _ in range(size)]
        for worker in self._workers:
            self._idle.put(worker)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0

    @property
    def size(self) -> int:
        return len(self._workers)

    def warm(self) -> None:
        """Start every environment now (Lambda's provisioned concurrency), in parallel."""
        threads = [threading.Thread(target=worker.warm) for worker in self._workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def invoke(self, event: Any) -> Invocation:
        """Run one invocation; blocks while all environments are busy (the concurrency limit)."""
        worker = self._idle.get()
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return worker.invoke(event)
        finally:
            with self._lock:
                self._in_flight -= 1
            self._idle.put(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
