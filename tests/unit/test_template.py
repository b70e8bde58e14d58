"""template.yaml checks that hold for every resource of a kind, so new resources are covered too.

The template is read with cfn-lint's decoder (PyYAML with the CloudFormation tags), so `!Ref X`
arrives as {"Ref": "X"} and `!GetAtt A.B` as {"Fn::GetAtt": ["A", "B"]}.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.support.paths import REPO
from tests.support.template import FUNCTIONS, GLOBAL_FUNCTION, PARAMETERS, RESOURCES, STATE_MACHINES, of_type

SAMCONFIG = REPO / "samconfig.toml"

# Literal credentials that must never sit in a template: OpenAI keys, AWS access keys, PEM
# blocks, webhook signing secrets.
SECRET_VALUE = re.compile(r"sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|-----BEGIN|whsec_[A-Za-z0-9]{8,}")
SECRET_NAME = re.compile(r"api_?key|secret|password|passphrase", re.IGNORECASE)
SECRETS_MANAGER_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-AbCdEf"


QUEUES = of_type("AWS::SQS::Queue")
TABLES = of_type("AWS::DynamoDB::Table")
LAYERS = of_type("AWS::Serverless::LayerVersion")


def _prop(function: Mapping[str, Any], name: str) -> Any:
    """A function property as deployed: its own value, else the Globals one."""
    return function.get("Properties", {}).get(name, GLOBAL_FUNCTION.get(name))


def _environment(function: Mapping[str, Any]) -> dict[str, Any]:
    own = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
    return {**GLOBAL_FUNCTION.get("Environment", {}).get("Variables", {}), **own}


def _sqs_events() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, function in FUNCTIONS.items():
        for event in function.get("Properties", {}).get("Events", {}).values():
            if event["Type"] == "SQS":
                yield name, function, event["Properties"]


def _queue_of(event: Mapping[str, Any]) -> str:
    queue_arn = event["Queue"]
    assert "Fn::GetAtt" in queue_arn, f"SQS event source must be a queue of this stack: {queue_arn}"
    name: str = queue_arn["Fn::GetAtt"][0]
    assert name in QUEUES
    return name


def _ref(value: Any) -> str | None:
    return value["Ref"] if isinstance(value, Mapping) and set(value) == {"Ref"} else None


def _number(value: Any, values: Mapping[str, Any]) -> float:
    """A numeric property, resolving a parameter Ref against `values` (name → value)."""
    name = _ref(value)
    return float(values[name] if name is not None else value)


def _bounds(value: Any) -> tuple[float, float]:
    """The smallest and largest value a numeric property can take under the parameter constraints."""
    name = _ref(value)
    if name is None:
        return float(value), float(value)
    parameter = PARAMETERS[name]
    assert parameter["Type"] == "Number", f"{name} must be a Number parameter"
    return float(parameter.get("MinValue", 0)), float(parameter.get("MaxValue", float("inf")))


def _defaults() -> dict[str, Any]:
    return {name: p["Default"] for name, p in PARAMETERS.items() if "Default" in p}


def _concurrency_pairs() -> list[tuple[str, Any, Any]]:
    """(function, its reserved concurrency, an SQS event's MaximumConcurrency) for every SQS source."""
    pairs = []
    for name, function, event in _sqs_events():
        reserved = _prop(function, "ReservedConcurrentExecutions")
        maximum = event.get("ScalingConfig", {}).get("MaximumConcurrency")
        assert reserved is not None, f"{name}: an SQS consumer needs reserved concurrency (docs/design.md invariant 7)"
        assert maximum is not None, f"{name}: an SQS event source needs ScalingConfig.MaximumConcurrency"
        pairs.append((name, reserved, maximum))
    return pairs


def _samconfig_overrides() -> dict[str, dict[str, str]]:
    """Every samconfig.toml profile's deploy parameter_overrides, parsed (profile → name → value)."""
    if not SAMCONFIG.exists():
        return {}
    config = tomllib.loads(SAMCONFIG.read_text())
    profiles = {}
    for profile, commands in config.items():
        if not isinstance(commands, dict):
            continue  # the top-level `version`
        overrides = commands.get("deploy", {}).get("parameters", {}).get("parameter_overrides")
        if overrides is not None:
            words = shlex.split(overrides) if isinstance(overrides, str) else list(overrides)
            profiles[profile] = dict(word.split("=", 1) for word in words)
    return profiles


def test_the_template_has_the_resources_these_checks_iterate_over() -> None:
    # GIVEN the template  THEN every loop below has something to check (no vacuous pass)
    assert FUNCTIONS and QUEUES and TABLES and LAYERS
    assert _concurrency_pairs()


def test_default_maximum_concurrency_is_within_reserved_concurrency() -> None:
    # GIVEN every SQS event source with the parameter defaults
    for name, reserved, maximum in _concurrency_pairs():
        # THEN SQS never polls more batches than the function may run (else throttled → DLQ)
        assert _number(maximum, _defaults()) <= _number(reserved, _defaults()), name
        # AND MaximumConcurrency is within what SQS accepts (2–1000)
        assert 2 <= _number(maximum, _defaults()) <= 1000, name


def test_parameter_constraints_admit_no_maximum_concurrency_above_reserved() -> None:
    # GIVEN every SQS event source  WHEN any values the parameter constraints accept are deployed
    for name, reserved, maximum in _concurrency_pairs():
        if _ref(reserved) is not None and _ref(reserved) == _ref(maximum):
            continue  # one parameter drives both: equal by construction
        # THEN the largest MaximumConcurrency still fits the smallest reserved concurrency
        # (CloudFormation cannot compare two parameters, so only the ranges can guarantee it)
        highest_maximum = _bounds(maximum)[1]
        lowest_reserved = _bounds(reserved)[0]
        assert highest_maximum <= lowest_reserved, (
            f"{name}: the parameters accept MaximumConcurrency up to {highest_maximum} with reserved "
            f"concurrency down to {lowest_reserved}; derive both from one parameter"
        )


def test_parameter_defaults_satisfy_their_own_constraints() -> None:
    # GIVEN every parameter with a default  THEN CloudFormation accepts the default as is
    for name, parameter in PARAMETERS.items():
        if "Default" in parameter:
            _assert_accepted(name, str(parameter["Default"]))


def _assert_accepted(name: str, value: str) -> None:
    parameter = PARAMETERS[name]
    if parameter["Type"] == "Number":
        number = float(value)
        assert float(parameter.get("MinValue", number)) <= number <= float(parameter.get("MaxValue", number))
    if "AllowedValues" in parameter:
        assert value in [str(v) for v in parameter["AllowedValues"]], name
    if "AllowedPattern" in parameter:
        assert re.fullmatch(parameter["AllowedPattern"], value), name


@pytest.mark.parametrize("profile", sorted(_samconfig_overrides()))
def test_samconfig_profile_keeps_maximum_concurrency_within_reserved(profile: str) -> None:
    # GIVEN a samconfig.toml deploy profile's parameter overrides on top of the defaults
    overrides = _samconfig_overrides()[profile]
    # THEN each override names a template parameter and satisfies its constraints
    for name, value in overrides.items():
        assert name in PARAMETERS, f"{profile}: unknown parameter {name}"
        _assert_accepted(name, value)
    # AND every SQS source keeps MaximumConcurrency ≤ reserved concurrency
    values = _defaults() | overrides
    for name, reserved, maximum in _concurrency_pairs():
        assert _number(maximum, values) <= _number(reserved, values), f"{profile}: {name}"


def test_every_consumed_queue_redrives_to_a_dlq_after_the_max_receive_count_parameter() -> None:
    for name, function, event in _sqs_events():
        # GIVEN the queue an SQS event source reads
        redrive = QUEUES[_queue_of(event)]["Properties"].get("RedrivePolicy")
        assert redrive, f"{name}: its source queue has no RedrivePolicy"
        # THEN it dead-letters into a queue of this stack
        dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"]
        assert dlq[0] in QUEUES and dlq[1] == "Arn"
        # AND after the receive count set by a parameter, the same one the function reads to
        # dead-letter with a reason on the last receive
        parameter = _ref(redrive["maxReceiveCount"])
        assert parameter in PARAMETERS, f"{name}: maxReceiveCount must come from a parameter"
        if "MAX_RECEIVE_COUNT" in _environment(function):
            assert _ref(_environment(function)["MAX_RECEIVE_COUNT"]) == parameter


def test_every_queue_is_encrypted() -> None:
    for name, queue in QUEUES.items():
        properties = queue.get("Properties", {})
        assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties, name


def test_queue_visibility_timeout_covers_six_function_timeouts_plus_the_batching_window() -> None:
    for name, function, event in _sqs_events():
        # GIVEN the longest function timeout and batching window the parameters allow
        timeout = _bounds(_prop(function, "Timeout"))[1]
        window = _bounds(event.get("MaximumBatchingWindowInSeconds", 0))[1]
        # THEN the queue hides a message long enough that retries by Lambda do not overlap (AWS advice)
        visibility = _bounds(QUEUES[_queue_of(event)]["Properties"].get("VisibilityTimeout", 30))[0]
        assert visibility >= 6 * timeout + window, name


def test_every_sqs_event_reports_batch_item_failures() -> None:
    for name, _, event in _sqs_events():
        assert "ReportBatchItemFailures" in event.get("FunctionResponseTypes", []), name


def test_every_table_is_on_demand_with_point_in_time_recovery_and_encryption() -> None:
    for name, table in TABLES.items():
        properties = table["Properties"]
        assert properties.get("BillingMode") == "PAY_PER_REQUEST", name
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert properties["SSESpecification"]["SSEEnabled"] is True, name


def test_tracing_is_on_for_every_function_and_state_machine() -> None:
    for name, function in FUNCTIONS.items():
        assert _prop(function, "Tracing") == "Active", name
    for name, machine in STATE_MACHINES.items():
        assert machine["Properties"].get("Tracing", {}).get("Enabled") is True, name


def test_every_function_configures_powertools() -> None:
    for name, function in FUNCTIONS.items():
        environment = _environment(function)
        for variable in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
            assert environment.get(variable), f"{name}: {variable}"
        assert "POWERTOOLS_LOG_LEVEL" in environment or "LOG_LEVEL" in environment, name


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_no_environment_value_or_parameter_default_holds_a_secret() -> None:
    # GIVEN every function's environment and every parameter default
    for name, function in FUNCTIONS.items():
        for variable, value in _environment(function).items():
            # THEN no literal credential appears
            assert not any(SECRET_VALUE.search(text) for text in _strings(value)), f"{name}.{variable}"
            # AND a secret is passed by reference only: the ARN of a Secrets Manager secret
            if SECRET_NAME.search(variable):
                assert variable.endswith("_ARN"), f"{name}.{variable} must carry a secret's ARN"
                parameter = _ref(value)
                assert parameter in PARAMETERS or RESOURCES.get(str(parameter), {}).get("Type") == (
                    "AWS::SecretsManager::Secret"
                ), f"{name}.{variable}"
    for name, parameter in PARAMETERS.items():
        assert not any(SECRET_VALUE.search(text) for text in _strings(parameter.get("Default"))), name
        if SECRET_NAME.search(name):
            # A secret parameter is the secret's ARN, asked for at deploy time, never defaulted.
            assert name.endswith("Arn") and "Default" not in parameter, name
            assert re.fullmatch(parameter["AllowedPattern"], SECRETS_MANAGER_ARN), name


def test_every_function_and_layer_builds_with_the_repo_makefile() -> None:
    for name, resource in {**FUNCTIONS, **LAYERS}.items():
        metadata = resource.get("Metadata", {})
        assert metadata.get("BuildMethod") == "makefile", name
        # sam build looks for the Makefile in ContextPath, else in the CodeUri
        source = resource["Properties"].get("CodeUri") or resource["Properties"]["ContentUri"]
        assert (REPO / metadata.get("ContextPath", source) / "Makefile").is_file(), (
            f"{name}: add `ContextPath: .` to its Metadata (where sam build looks for the Makefile)"
        )


def test_functions_and_layers_target_python313_on_arm64() -> None:
    for name, function in FUNCTIONS.items():
        assert _prop(function, "Runtime") == "python3.13", name
        assert _prop(function, "Architectures") == ["arm64"], name
    for name, layer in LAYERS.items():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"], name
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"], name
        assert layer["Metadata"].get("BuildArchitecture") == "arm64", name
