"""The offline stack: moto + the OpenAI-compatible server + template.yaml's resources + pollers.

`OfflineStack.start()` brings everything up in this process (servers in threads, functions
in worker processes); `OfflineStack.attach()` connects to one that `make local-up` keeps
running, through the state file it writes under .local-state/.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from pydantic import BaseModel

from local import lambda_dispatch
from local.api_auth import RouteAuthorizer
from local.cfn import load_template, resolve_parameters
from local.containers import DOCKER_DESKTOP_HOST, check_container_address, sam_env_vars
from local.gateway import HttpApiGateway
from local.motoserver import MotoServer
from local.openai_server import OpenAIServerConfig, ServerHandle, serve_in_thread
from local.poller import SqsPoller, mapping_concurrency
from local.provision import FunctionSpec, HttpRoute, ProvisionedStack, Provisioner
from local.runtime import Endpoints, FunctionPool, Invocation, function_environment
from local.stream_poller import StreamPoller
from local.tiktoken_cache import ensure_tiktoken_cache_dir
from tools.stack import default_stack_name

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
STATE_DIR = REPO_ROOT / ".local-state"
STATE_FILE = STATE_DIR / "stack.json"
# `sam local invoke --env-vars` file pointing every function at the stack (local/containers.py).
SAM_ENV_FILE = STATE_DIR / "sam-env.json"
# The name `sam deploy` gives the stack (samconfig.toml), so the operator commands' default
# --stack-name finds the offline stack too (OfflineStack.record_outputs).
STACK_NAME = default_stack_name()
REGION = "us-east-1"
# A parameter named *SecretArn without a value gets a secret created for it offline.
SECRET_ARN_SUFFIX = "SecretArn"  # noqa: S105 (a name suffix, not a secret)


@dataclass
class StackOptions:
    template: Path = TEMPLATE
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    # The template's VisibilityTimeout (200 s) suits Lambda; tests and the demo shorten it
    # so a reported failure comes back within seconds.
    queue_visibility_timeout: int | None = None
    # Extra environment for every function (after the template's), e.g. faster retries.
    function_env_overrides: dict[str, str] = field(default_factory=dict)
    # Upper bound on concurrent invocations per event source (2 cores: no use in more).
    concurrency_cap: int | None = None
    state_dir: Path = STATE_DIR
    start_openai: bool = True
    # moto's SQS as shipped scans the whole queue per message (local.motoserver.speed_up_sqs);
    # False measures moto as is (`make bench ARGS=--no-fix-moto-sqs`).
    fast_sqs: bool = True
    # The OpenAI-compatible server's settings (limits, latency, faults); it accepts any key.
    openai_config: OpenAIServerConfig = field(default_factory=OpenAIServerConfig)
    # A private address (the Docker bridge's) where moto and the OpenAI server also listen, for
    # `sam local invoke` containers on Linux (local/containers.py); None: loopback only.
    container_address: str | None = None

    def __post_init__(self) -> None:
        if self.container_address is not None:
            check_container_address(self.container_address)


class StackState(BaseModel):
    """What another process needs to use a running stack (the .local-state/stack.json file)."""

    pid: int
    endpoints: dict[str, str | None]
    openai_api_key: str
    provisioned: ProvisionedStack
    function_env_overrides: dict[str, str]
    http_api_urls: dict[str, str]


class OfflineStack:
    def __init__(
        self,
        endpoints: Endpoints,
        provisioned: ProvisionedStack,
        openai_api_key: str,
        options: StackOptions,
        stoppers: list[Callable[[], None]] | None = None,
        http_api_urls: dict[str, str] | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.provisioned = provisioned
        self.openai_api_key = openai_api_key
        self.options = options
        self.session = offline_session(endpoints.region)
        self._stoppers = stoppers or []
        self._pools: list[FunctionPool] = []
        self.pollers: list[SqsPoller] = []
        self.stream_pollers: list[StreamPoller] = []
        self._gateways: list[HttpApiGateway] = []
        # logical id → the environments that serve moto's Lambda Invoke (Step Functions tasks).
        self._invoke_pools: dict[str, FunctionPool] = {}
        # HttpApi logical id → base URL on loopback (while `serve_http_apis` runs, or attached).
        self.http_api_urls: dict[str, str] = dict(http_api_urls or {})

    # --- life cycle ----------------------------------------------------------------------

    @classmethod
    def start(cls, options: StackOptions | None = None, progress: Callable[[str], None] = print) -> OfflineStack:
        options = options or StackOptions()
        options.state_dir.mkdir(parents=True, exist_ok=True)
        # For this process (the OpenAI server counts tokens) and, through Endpoints, the functions.
        tiktoken_cache_dir = ensure_tiktoken_cache_dir(REPO_ROOT)
        stoppers: list[Callable[[], None]] = []
        moto = MotoServer(fast_sqs=options.fast_sqs)
        aws_endpoint = moto.start()
        stoppers.append(moto.stop)
        progress(f"moto server (AWS) on {aws_endpoint}")
        session = offline_session(REGION)
        openai_key = "sk-offline-" + secrets.token_hex(12)
        openai_server: ServerHandle | None = None
        try:
            if options.start_openai:
                openai_server = serve_in_thread(options.openai_config)
                stoppers.append(openai_server.stop)
                progress(f"OpenAI-compatible server on {openai_server.base_url}")
            if options.container_address:
                urls = [moto.serve_also_on(options.container_address)]
                if openai_server is not None:
                    urls.append(openai_server.serve_also_on(options.container_address))
                progress(f"for containers also on {', '.join(urls)}")
            endpoints = Endpoints(
                aws_endpoint_url=aws_endpoint,
                region=REGION,
                openai_base_url=openai_server.base_url if openai_server else None,
                tiktoken_cache_dir=tiktoken_cache_dir,
            )
            provisioned = provision_template(options, session, aws_endpoint, openai_key)
        except BaseException:
            for stop in reversed(stoppers):
                stop()
            raise
        types = sorted(set(provisioned.resource_types.values()))
        progress(f"created {len(provisioned.resources)} resources from {options.template.name}: {', '.join(types)}")
        stack = cls(endpoints, provisioned, openai_key, options, stoppers)
        stack.serve_lambda_invokes()
        return stack

    @classmethod
    def attach(cls, state_file: Path = STATE_FILE) -> OfflineStack | None:
        """The stack `make local-up` runs, if its process is alive; None otherwise."""
        if not state_file.exists():
            return None
        state = StackState.model_validate_json(state_file.read_text(encoding="utf-8"))
        try:
            os.kill(state.pid, 0)
        except OSError:
            return None
        endpoints = Endpoints(
            aws_endpoint_url=str(state.endpoints["aws_endpoint_url"]),
            region=str(state.endpoints["region"]),
            openai_base_url=state.endpoints.get("openai_base_url"),
            tiktoken_cache_dir=state.endpoints.get("tiktoken_cache_dir"),
        )
        options = StackOptions(function_env_overrides=state.function_env_overrides)
        return cls(endpoints, state.provisioned, state.openai_api_key, options, http_api_urls=state.http_api_urls)

    def write_state(self, state_file: Path = STATE_FILE) -> None:
        state = StackState(
            pid=os.getpid(),
            endpoints={
                "aws_endpoint_url": self.endpoints.aws_endpoint_url,
                "region": self.endpoints.region,
                "openai_base_url": self.endpoints.openai_base_url,
                "tiktoken_cache_dir": self.endpoints.tiktoken_cache_dir,
            },
            openai_api_key=self.openai_api_key,
            provisioned=self.provisioned,
            function_env_overrides=self.options.function_env_overrides,
            http_api_urls=self.http_api_urls,
        )
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(state.model_dump_json(indent=2), encoding="utf-8")
        state_file.chmod(0o600)

    def write_sam_env_file(self, path: Path = SAM_ENV_FILE) -> Path:
        """The `sam local invoke --env-vars` file: every function of the template pointed at this stack.

        Its values are resource names, URLs and secret ARNs (the secrets stay in moto), with the
        stack's loopback URLs at the address containers reach (local/containers.py).
        """
        container_host = self.options.container_address or DOCKER_DESKTOP_HOST
        declared = {logical_id: list(spec.environment) for logical_id, spec in self.provisioned.functions.items()}
        env_vars = sam_env_vars(declared, self.function_env, container_host)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(env_vars, indent=2) + "\n", encoding="utf-8")
        return path

    def local_outputs(self) -> dict[str, str]:
        """The template's outputs, with every execute-api URL replaced by its loopback gateway."""
        outputs = dict(self.provisioned.outputs)
        for api_logical_id, base_url in self.http_api_urls.items():
            api_id = self.provisioned.ref(api_logical_id) if api_logical_id in self.provisioned.resources else "local"
            deployed = f"https://{api_id}.execute-api.{self.endpoints.region}.amazonaws.com"
            outputs = {key: value.replace(deployed, base_url) for key, value in outputs.items()}
        return outputs

    def record_outputs(self) -> None:
        """Record the outputs as a CloudFormation stack in moto, where the operator commands read them.

        The recorded stack only carries the outputs (one placeholder resource): the resources
        themselves were created by the provisioner, not by moto's CloudFormation.
        """
        template = {
            "Resources": {"OfflineStack": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {key: {"Value": value} for key, value in self.local_outputs().items()},
        }
        self.client("cloudformation").create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(template))

    def stop(self) -> None:
        self.stop_pollers()
        for gateway in self._gateways:
            gateway.stop()
        self._gateways.clear()
        for pool in self._pools:
            pool.close()
        self._pools.clear()
        for stop in reversed(self._stoppers):
            stop()
        self._stoppers.clear()

    def __enter__(self) -> OfflineStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- clients and functions -------------------------------------------------------------

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoints.aws_endpoint_url)  # type: ignore[call-overload]

    def function(self, logical_id: str) -> FunctionSpec:
        if logical_id not in self.provisioned.functions:
            known = ", ".join(sorted(self.provisioned.functions))
            raise KeyError(f"no function {logical_id!r} in the template (functions: {known})")
        return self.provisioned.functions[logical_id]

    def function_env(self, logical_id: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
        return function_environment(
            self.function(logical_id), self.endpoints, self.options.function_env_overrides | (overrides or {})
        )

    def pool(
        self,
        logical_id: str,
        size: int,
        overrides: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> FunctionPool:
        """Execution environments for a function; their output goes to .local-state/logs/<id>.log."""
        if log_path is None:
            (self.options.state_dir / "logs").mkdir(parents=True, exist_ok=True)
            log_path = self.options.state_dir / "logs" / f"{logical_id}.log"
        pool = FunctionPool(self.function(logical_id), self.function_env(logical_id, overrides), size, log_path)
        self._pools.append(pool)
        return pool

    def invoke(
        self, logical_id: str, event: Any, overrides: dict[str, str] | None = None, log_path: Path | None = None
    ) -> Invocation:
        """One invocation in a fresh execution environment (what `sam local invoke` does)."""
        pool = self.pool(logical_id, 1, overrides, log_path)
        try:
            return pool.invoke(event)
        finally:
            pool.close()
            self._pools.remove(pool)

    # --- event source mappings -----------------------------------------------------------

    def start_pollers(self, warm: bool = False) -> list[SqsPoller]:
        """One poller per enabled SQS event of the template, each with its own instances.

        `warm` starts the instances before polling (like provisioned concurrency), so no
        cold start holds a batch in flight.
        """
        for source in self.provisioned.sqs_event_sources:
            if not source.enabled:
                continue
            spec = self.function(source.function_id)
            size = mapping_concurrency(source, spec.reserved_concurrency, self.options.concurrency_cap)
            pool = self.pool(source.function_id, size)
            if warm:
                pool.warm()
            poller = SqsPoller(source, pool, self._sqs_client, self.endpoints.region)
            poller.start()
            self.pollers.append(poller)
        for stream_source in self.provisioned.stream_event_sources:
            if not stream_source.enabled:
                continue
            stream_pool = self.pool(stream_source.function_id, 1)  # one batch per shard at a time
            if warm:
                stream_pool.warm()
            stream_poller = StreamPoller(
                stream_source,
                stream_pool,
                lambda: self.client("dynamodbstreams"),
                self._sqs_client,
                self.endpoints.region,
            )
            stream_poller.start()
            self.stream_pollers.append(stream_poller)
        return self.pollers

    def serve_http_apis(self, instances: int = 2) -> dict[str, str]:
        """Serve every HttpApi of the template on loopback; returns logical id → base URL."""
        by_api: dict[str, list[tuple[HttpRoute, FunctionPool]]] = {}
        pools: dict[str, FunctionPool] = {}
        for route in self.provisioned.http_routes:
            if route.function_id not in pools:
                spec = self.function(route.function_id)
                size = min(instances, spec.reserved_concurrency or instances)
                pools[route.function_id] = self.pool(route.function_id, size)
            by_api.setdefault(route.api_id, []).append((route, pools[route.function_id]))
        for api_logical_id, routes in by_api.items():
            api_id = self.provisioned.ref(api_logical_id) if api_logical_id in self.provisioned.resources else "local"
            gateway = HttpApiGateway(api_id, routes, RouteAuthorizer(self.endpoints.aws_endpoint_url))
            self.http_api_urls[api_logical_id] = gateway.start()
            self._gateways.append(gateway)
        return self.http_api_urls

    def serve_lambda_invokes(self) -> None:
        """Lambda Invoke in moto (Step Functions tasks) runs the template's functions offline."""
        for logical_id, spec in self.provisioned.functions.items():
            pool = self.pool(logical_id, spec.reserved_concurrency or 1)
            self._invoke_pools[logical_id] = pool
            lambda_dispatch.route(spec.name, functools.partial(_invoke_or_raise, pool))
        self._stoppers.append(lambda_dispatch.clear_routes)

    def warm_state_machine_tasks(self, logical_id: str) -> list[str]:
        """Start the environments of the functions a state machine invokes, in parallel.

        Otherwise each state pays its function's cold start in turn (seconds each on two cores);
        warm environments are what a pipeline that runs regularly mostly meets in Lambda too.
        Returns the functions' logical ids.
        """
        definition = self.client("stepfunctions").describe_state_machine(
            stateMachineArn=self.provisioned.ref(logical_id)
        )["definition"]
        tasks = [fid for fid in self._invoke_pools if self.provisioned.functions[fid].arn in definition]
        threads = [threading.Thread(target=self._invoke_pools[fid].warm) for fid in tasks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return tasks

    def _sqs_client(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    def stop_pollers(self) -> None:
        for poller in self.pollers:
            poller.stop()
        self.pollers.clear()
        for stream_poller in self.stream_pollers:
            stream_poller.stop()
        self.stream_pollers.clear()

    def queue_depth(self, queue_url: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def wait_until_drained(
        self, timeout: float, progress: Callable[[int], None] | None = None, interval: float = 0.5
    ) -> bool:
        """Wait until every polled queue is empty (nothing visible, in flight or delayed) and every stream read."""
        deadline = time.monotonic() + timeout
        sqs_urls = [poller.source.queue_url for poller in self.pollers]
        drained_at: float | None = None
        while time.monotonic() < deadline:
            depth = sum(self.queue_depth(url) for url in sqs_urls)
            if progress is not None:
                progress(depth)
            if depth == 0 and not any(poller.busy for poller in self.pollers):
                # Rows written until now reach the stream consumers: wait for a read after this moment.
                drained_at = drained_at if drained_at is not None else time.monotonic()
                if all(poller.caught_up_since(drained_at) for poller in self.stream_pollers):
                    return True
            else:
                drained_at = None
            time.sleep(interval)
        return False


class FunctionInvocationError(RuntimeError):
    """A function error, carried to moto's Lambda Invoke (Step Functions matches `error_type`)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("errorMessage", ""))
        self.error_type = str(payload.get("errorType", "Exception"))


def _invoke_or_raise(pool: FunctionPool, event: Any) -> Any:
    invocation = pool.invoke(event)
    if invocation.error:
        raise FunctionInvocationError(invocation.payload)
    return invocation.payload


def offline_session(region: str) -> boto3.Session:
    """A session with dummy credentials: the moto server accepts any."""
    return boto3.Session(region_name=region, aws_access_key_id="offline", aws_secret_access_key="offline")  # noqa: S106


def provision_template(
    options: StackOptions, session: boto3.Session, endpoint_url: str, openai_key: str
) -> ProvisionedStack:
    """Resolve the parameters (creating secrets for secret-ARN ones) and provision every resource."""
    template = load_template(options.template)
    overrides = dict(options.parameter_overrides)
    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint_url)
    for name, spec in (template.get("Parameters") or {}).items():
        if name in overrides or "Default" in spec or not name.endswith(SECRET_ARN_SUFFIX):
            continue
        value = openai_key if "OpenAI" in name else secrets.token_urlsafe(32)
        secret_name = f"{STACK_NAME}/{name.removesuffix(SECRET_ARN_SUFFIX)}"
        overrides[name] = secretsmanager.create_secret(Name=secret_name, SecretString=value)["ARN"]
    parameters = resolve_parameters(template, overrides)
    provisioner = Provisioner(
        template,
        options.template.parent,
        parameters,
        session,
        endpoint_url,
        stack_name=STACK_NAME,
        queue_visibility_timeout=options.queue_visibility_timeout,
    )
    return provisioner.provision()
