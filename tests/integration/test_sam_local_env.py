"""The offline stack for `sam local invoke`: the env file `python -m local up` writes, the signed
IngestFunction event, and the tokenizer cache when `python -m local` runs without make."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from categorizer.config import (
    BackfillSettings,
    CategorizeSettings,
    ChangeEventsSettings,
    EnvSettings,
    FineTuneSettings,
    IngestSettings,
    ReadSettings,
    ReviewSettings,
)
from local.containers import DOCKER_DESKTOP_HOST
from local.stack import REPO_ROOT, OfflineStack, StackOptions
from tools.sign_event import offline_stack_secret, sign_event

pytestmark = pytest.mark.integration

EVENT = REPO_ROOT / "events" / "ingest-http.json"
# Each function's settings class, by its CodeUri (functions/<name>/).
SETTINGS: dict[str, type[EnvSettings]] = {
    "ingest": IngestSettings,
    "categorize": CategorizeSettings,
    "finetune": FineTuneSettings,
    "backfill": BackfillSettings,
    "review": ReviewSettings,
    "read": ReadSettings,
    "change_events": ChangeEventsSettings,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineStack]:
    options = StackOptions(state_dir=tmp_path_factory.mktemp("state"))
    with OfflineStack.start(options, progress=lambda _: None) as started:
        yield started


def test_the_env_file_points_every_function_at_the_stack_through_host_docker_internal(
    stack: OfflineStack, tmp_path: Path
) -> None:
    # GIVEN the running stack WHEN it writes the env file for `sam local invoke --env-vars`
    env_vars = json.loads(stack.write_sam_env_file(tmp_path / "sam-env.json").read_text(encoding="utf-8"))
    aws_port = stack.endpoints.aws_endpoint_url.rsplit(":", 1)[1]
    # THEN the endpoints, for every function, are the stack's at host.docker.internal
    assert env_vars["Parameters"]["AWS_ENDPOINT_URL"] == f"http://{DOCKER_DESKTOP_HOST}:{aws_port}"
    assert env_vars["Parameters"]["OPENAI_BASE_URL"].startswith(f"http://{DOCKER_DESKTOP_HOST}:")
    assert set(env_vars) == {"Parameters", *stack.provisioned.functions}
    text = json.dumps(env_vars)
    assert "127.0.0.1" not in text and "localhost" not in text
    # AND no secret is in it: the secrets stay in (offline) Secrets Manager
    secretsmanager = stack.client("secretsmanager")
    for name in ("WebhookSecretArn", "OpenAIApiKeySecretArn"):
        arn = stack.provisioned.parameters[name]
        assert arn in text
        assert secretsmanager.get_secret_value(SecretId=arn)["SecretString"] not in text
    for logical_id, spec in stack.provisioned.functions.items():
        # AND each function gets exactly the variables the template declares (SAM overrides no other)
        assert set(env_vars[logical_id]) | set(env_vars["Parameters"]) == set(spec.environment), logical_id
        # AND with them the function's settings load: every resource value is of its kind
        environment = spec.environment | env_vars["Parameters"] | env_vars[logical_id]
        SETTINGS[spec.code_dir.name].model_validate(environment)
    queue_url = env_vars["IngestFunction"]["ARTICLE_QUEUE_URL"]
    assert queue_url == stack.provisioned.ref("ArticleQueue").replace("127.0.0.1", DOCKER_DESKTOP_HOST)


def test_the_committed_ingest_event_signed_with_the_stacks_secret_is_accepted(
    stack: OfflineStack, tmp_path: Path
) -> None:
    # GIVEN the stack's state file (what `make local-up` writes) and the committed event
    state_file = tmp_path / "stack.json"
    stack.write_state(state_file)
    event = json.loads(EVENT.read_text(encoding="utf-8"))
    # WHEN the event is signed with the secret `--stack offline` finds, and IngestFunction runs on it
    invocation = stack.invoke("IngestFunction", sign_event(event, offline_stack_secret(state_file)))
    # THEN 202: both articles are in ArticleQueue
    assert not invocation.error, invocation.payload
    assert invocation.payload["statusCode"] == 202, invocation.payload
    assert json.loads(invocation.payload["body"])["count"] == 2


def _private_address() -> str | None:
    """A private, non-loopback address of this machine (the interface of its default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the interface
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    ip = ipaddress.ip_address(address)
    return address if ip.is_private and not ip.is_loopback else None


def test_with_a_container_address_the_stack_also_listens_there_and_the_file_says_so(tmp_path: Path) -> None:
    address = _private_address()
    if address is None:
        pytest.skip("this machine has no private non-loopback address to listen on")
    # GIVEN a stack started with --container-address (Linux: the Docker bridge's address)
    options = StackOptions(state_dir=tmp_path, start_openai=False, container_address=address)
    with OfflineStack.start(options, progress=lambda _: None) as started:
        env_vars = json.loads(started.write_sam_env_file(tmp_path / "sam-env.json").read_text(encoding="utf-8"))
        endpoint = env_vars["Parameters"]["AWS_ENDPOINT_URL"]
        # THEN the file points at that address, where the same moto answers with the same queues
        assert endpoint == started.endpoints.aws_endpoint_url.replace("127.0.0.1", address)
        queues = started.session.client("sqs", endpoint_url=endpoint).list_queues()["QueueUrls"]
        assert env_vars["IngestFunction"]["ARTICLE_QUEUE_URL"] in queues


def test_python_m_local_run_without_make_finds_the_tokenizer_cache(tmp_path: Path) -> None:
    # GIVEN a process without TIKTOKEN_CACHE_DIR (not started by make) in this checkout
    environment = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    script = (
        "import os\n"
        "from pathlib import Path\n"
        "from local.stack import OfflineStack, StackOptions\n"
        f"options = StackOptions(state_dir=Path({str(tmp_path)!r}), start_openai=False)\n"
        "with OfflineStack.start(options, progress=lambda _: None) as stack:\n"
        "    print(os.environ.get('TIKTOKEN_CACHE_DIR'))\n"
        "    print(stack.function_env('CategorizeFunction').get('TIKTOKEN_CACHE_DIR'))\n"
    )
    # WHEN it starts the offline stack
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    # THEN the stack and the functions it starts use .tools/tiktoken-cache (seeded as `make` does)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = str(REPO_ROOT / ".tools" / "tiktoken-cache")
    assert result.stdout.split() == [expected, expected]
