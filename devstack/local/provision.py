"""Create template.yaml's resources in the moto server, one provisioner per resource type.

Every resource type the template uses must have a provisioner here (a test enforces it), so
adding a resource to the template either works offline or fails loudly. Functions are also
recorded as `FunctionSpec`s (handler path, layers, environment exactly as the template
computes it with Globals merged) and their SQS events as `SqsEventSource`s for the poller;
moto's own event source mapping is deliberately not created (it ignores batching and
partial batch responses).
"""

from __future__ import annotations

import copy
import io
import json
import secrets
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import boto3
from pydantic import BaseModel, ConfigDict, Field

from local.cfn import ACCOUNT_ID, Resolver, TemplateError, substitute_definition

LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
STATES_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
SCHEDULER_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Provisioned(_Frozen):
    ref: str
    attributes: dict[str, Any] = Field(default_factory=dict)


class SqsEventSource(_Frozen):
    function_id: str
    event_name: str
    queue_arn: str
    queue_url: str
    batch_size: int
    batching_window_seconds: float
    maximum_concurrency: int | None
    report_batch_item_failures: bool
    enabled: bool


class RouteAuth(_Frozen):
    """Who a route lets in, as the template says: a JWT authorizer's issuer and audience, or AWS_IAM."""

    kind: Literal["jwt", "iam"]
    issuer: str | None = None
    audience: tuple[str, ...] = ()


class StreamEventSource(_Frozen):
    """A DynamoDB stream event source mapping (Lambda's semantics: devstack/local/stream_poller.py)."""

    function_id: str
    event_name: str
    stream_arn: str
    starting_position: str
    batch_size: int
    report_batch_item_failures: bool
    bisect_on_error: bool
    maximum_retry_attempts: int  # -1: until the record expires
    on_failure_arn: str | None
    enabled: bool


class HttpRoute(_Frozen):
    function_id: str
    api_id: str  # logical id of the HttpApi (ServerlessHttpApi when implicit)
    method: str
    path: str
    auth: RouteAuth | None = None  # None: no authorizer (the function checks, e.g. the webhook's HMAC)


class FunctionSpec(_Frozen):
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...]
    reserved_concurrency: int | None


class ProvisionedStack(_Frozen):
    """What the template became in moto, by logical id."""

    parameters: dict[str, str]
    resource_types: dict[str, str]
    resources: dict[str, Provisioned]
    functions: dict[str, FunctionSpec]
    sqs_event_sources: list[SqsEventSource]
    stream_event_sources: list[StreamEventSource]
    http_routes: list[HttpRoute]
    outputs: dict[str, str]

    def ref(self, logical_id: str) -> str:
        return self.resources[logical_id].ref

    def attribute(self, logical_id: str, name: str) -> Any:
        return self.resources[logical_id].attributes[name]


def _as_bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (resource wins), lists concatenate, scalars are replaced."""
    merged = copy.deepcopy(dict(global_props))
    for key, value in props.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(merged[key], value)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref"))


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*.py")):
            archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


# Resource type → the Provisioner method that creates it offline.
PROVISIONERS = {
    "AWS::SQS::Queue": "_queue",
    "AWS::DynamoDB::Table": "_table",
    "AWS::Serverless::SimpleTable": "_simple_table",
    "AWS::S3::Bucket": "_bucket",
    "AWS::S3::BucketPolicy": "_bucket_policy",
    "AWS::SSM::Parameter": "_ssm_parameter",
    "AWS::SecretsManager::Secret": "_secret",
    "AWS::Serverless::LayerVersion": "_layer",
    "AWS::Serverless::Function": "_function",
    "AWS::Serverless::StateMachine": "_state_machine",
    "AWS::StepFunctions::StateMachine": "_state_machine",
    "AWS::Serverless::HttpApi": "_http_api",
    "AWS::IAM::Role": "_iam_role",
    "AWS::Logs::LogGroup": "_log_group",
    "AWS::SNS::Topic": "_sns_topic",
    "AWS::SNS::TopicPolicy": "_sns_topic_policy",
    "AWS::SNS::Subscription": "_sns_subscription",
    "AWS::SQS::QueuePolicy": "_queue_policy",
    "AWS::CloudWatch::Alarm": "_alarm",
    "AWS::CloudWatch::Dashboard": "_dashboard",
    "AWS::Events::Rule": "_events_rule",
    "AWS::Cognito::UserPool": "_user_pool",
    "AWS::Cognito::UserPoolClient": "_user_pool_client",
    "AWS::Events::EventBus": "_event_bus",
}
SUPPORTED_TYPES = frozenset(PROVISIONERS)


class Provisioner:
    """Walks the template's resources in dependency order (on demand) and creates each one."""

    def __init__(
        self,
        template: Mapping[str, Any],
        template_dir: Path,
        parameters: Mapping[str, str],
        session: boto3.Session,
        endpoint_url: str,
        *,
        stack_name: str,
        queue_visibility_timeout: int | None = None,
    ) -> None:
        self._template = template
        self._dir = template_dir
        self._stack_name = stack_name
        self._region = session.region_name or "us-east-1"
        self._session = session
        self._endpoint_url = endpoint_url
        self._visibility_override = queue_visibility_timeout
        self._resources: dict[str, Any] = template["Resources"]
        self._globals: dict[str, Any] = template.get("Globals") or {}
        self._done: dict[str, Provisioned] = {}
        self._in_progress: list[str] = []
        self._layer_dirs: dict[str, Path] = {}
        self._functions: dict[str, FunctionSpec] = {}
        self._event_sources: list[SqsEventSource] = []
        self._stream_sources: list[StreamEventSource] = []
        self._routes: list[HttpRoute] = []
        # HttpApi logical id → (its authorizers by name, its default authorizer).
        self._api_auth: dict[str, tuple[dict[str, RouteAuth], str | None]] = {}
        self._clients: dict[str, Any] = {}
        self.resolver = Resolver(
            parameters=parameters,
            region=self._region,
            stack_name=stack_name,
            resource_ref=lambda logical_id: self._ensure(logical_id).ref,
            resource_attribute=self._attribute,
            mappings=template.get("Mappings") or {},
            conditions=template.get("Conditions") or {},
        )

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self._endpoint_url)  # type: ignore[call-overload]
        return self._clients[service]

    def provision(self) -> ProvisionedStack:
        unsupported = sorted({r["Type"] for r in self._resources.values()} - SUPPORTED_TYPES)
        if unsupported:
            raise TemplateError(f"no offline provisioner for resource type(s): {', '.join(unsupported)}")
        for logical_id in self._resources:
            self._ensure(logical_id)
        outputs = {
            name: str(self.resolver.resolve(output["Value"]))
            for name, output in (self._template.get("Outputs") or {}).items()
            if self._condition_holds(output)
        }
        return ProvisionedStack(
            parameters=dict(self.resolver.parameters),
            resource_types={logical_id: r["Type"] for logical_id, r in self._resources.items()},
            resources=dict(self._done),
            functions=dict(self._functions),
            sqs_event_sources=list(self._event_sources),
            stream_event_sources=list(self._stream_sources),
            http_routes=list(self._routes),
            outputs=outputs,
        )

    def _condition_holds(self, entry: Mapping[str, Any]) -> bool:
        return "Condition" not in entry or self.resolver.condition(entry["Condition"])

    def _ensure(self, logical_id: str) -> Provisioned:
        if logical_id in self._done:
            return self._done[logical_id]
        if logical_id not in self._resources:
            raise TemplateError(f"reference to unknown resource or parameter {logical_id!r}")
        if logical_id in self._in_progress:
            cycle = " → ".join([*self._in_progress, logical_id])
            raise TemplateError(f"circular reference: {cycle}")
        resource = self._resources[logical_id]
        self._in_progress.append(logical_id)
        try:
            for dependency in resource.get("DependsOn") or []:
                self._ensure(dependency)
            if not self._condition_holds(resource):
                result = Provisioned(ref="")
            else:
                create: Callable[[str, dict[str, Any]], Provisioned] = getattr(self, PROVISIONERS[resource["Type"]])
                result = create(logical_id, resource.get("Properties") or {})
        finally:
            self._in_progress.pop()
        self._done[logical_id] = result
        return result

    def _attribute(self, logical_id: str, name: str) -> Any:
        provisioned = self._ensure(logical_id)
        if name not in provisioned.attributes:
            raise TemplateError(f"{logical_id} has no attribute {name!r} offline")
        return provisioned.attributes[name]

    def _name(self, logical_id: str, limit: int = 80) -> str:
        return f"{self._stack_name}-{logical_id}"[:limit]

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self._region}:{ACCOUNT_ID}:{resource}"

    # --- messaging and storage -------------------------------------------------------

    def _queue(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        fifo = _as_bool(props.get("FifoQueue", False))
        name = props.get("QueueName") or (self._name(logical_id, 75) + (".fifo" if fifo else ""))
        attributes: dict[str, str] = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "FifoQueue",
            "ContentBasedDeduplication",
            "SqsManagedSseEnabled",
            "KmsMasterKeyId",
        ):
            if key in props:
                attributes[key] = str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
        if self._visibility_override is not None:
            attributes["VisibilityTimeout"] = str(self._visibility_override)
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = self._client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self._arn("sqs", name)
        return Provisioned(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _table(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("TableName") or self._name(logical_id, 255)
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        for key in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "TableClass"):
            if key in props:
                request[key] = props[key]
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        if "SSESpecification" in props:
            sse = props["SSESpecification"]
            request["SSESpecification"] = {"Enabled": _as_bool(sse.get("SSEEnabled", False))}
        dynamodb = self._client("dynamodb")
        table = dynamodb.create_table(**request)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": _as_bool(ttl.get("Enabled", True)),
                },
            )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr:
            dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={
                    "PointInTimeRecoveryEnabled": _as_bool(pitr.get("PointInTimeRecoveryEnabled", False))
                },
            )
        attributes = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            attributes["StreamArn"] = table["LatestStreamArn"]
        return Provisioned(ref=name, attributes=attributes)

    def _simple_table(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = _merge_globals(self._globals.get("SimpleTable") or {}, raw)
        key = self.resolver.resolve(props.get("PrimaryKey") or {"Name": "id", "Type": "String"})
        attribute_type = {"String": "S", "Number": "N", "Binary": "B"}[key["Type"]]
        table: dict[str, Any] = {
            "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": attribute_type}],
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "BillingMode": "PROVISIONED" if "ProvisionedThroughput" in props else "PAY_PER_REQUEST",
        }
        for source, target in (
            ("TableName", "TableName"),
            ("ProvisionedThroughput", "ProvisionedThroughput"),
            ("SSESpecification", "SSESpecification"),
        ):
            if source in props:
                table[target] = props[source]
        return self._table(logical_id, table)

    def _bucket(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("BucketName") or self._name(logical_id, 63).lower()
        s3 = self._client("s3")
        if self._region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self._region})
        versioning = (props.get("VersioningConfiguration") or {}).get("Status")
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning})
        encryption = props.get("BucketEncryption")
        if encryption:
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                        for rule in encryption["ServerSideEncryptionConfiguration"]
                    ]
                },
            )
        public_access = props.get("PublicAccessBlockConfiguration")
        if public_access:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=public_access)
        lifecycle = props.get("LifecycleConfiguration")
        if lifecycle:
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=_s3_lifecycle(lifecycle))
        return Provisioned(
            ref=name,
            attributes={
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self._region}.amazonaws.com",
            },
        )

    def _bucket_policy(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        policy = offline_bucket_policy(props["PolicyDocument"])
        if policy["Statement"]:  # S3 rejects a policy without statements
            self._client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(policy))
        return Provisioned(ref=str(props["Bucket"]))

    def _ssm_parameter(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("Name") or self._name(logical_id)
        self._client("ssm").put_parameter(
            Name=name, Value=str(props["Value"]), Type=props.get("Type", "String"), Overwrite=True
        )
        return Provisioned(ref=name, attributes={"Type": props.get("Type", "String"), "Value": props["Value"]})

    def _secret(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("Name") or self._name(logical_id)
        value = props.get("SecretString")
        generate = props.get("GenerateSecretString")
        if value is None:
            generated = secrets.token_urlsafe(int((generate or {}).get("PasswordLength", 32)))
            if generate and "GenerateStringKey" in generate:
                document = json.loads(generate.get("SecretStringTemplate") or "{}")
                document[generate["GenerateStringKey"]] = generated
                value = json.dumps(document)
            else:
                value = generated
        arn = self._client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
        return Provisioned(ref=arn, attributes={"Id": arn})

    # --- compute -----------------------------------------------------------------------

    def _layer(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        content = props["ContentUri"]
        if not isinstance(content, str):
            raise TemplateError(f"{logical_id}: offline layers need a local ContentUri")
        arn = self._arn("lambda", f"layer:{self._name(logical_id, 140)}:1")
        # Offline the layer is its source folder on sys.path, as a built Python layer would be.
        self._layer_dirs[arn] = (self._dir / content).resolve()
        return Provisioned(ref=arn)

    def _execution_role(self, logical_id: str, trust: Mapping[str, Any]) -> str:
        name = self._name(logical_id, 58) + "-Role"
        role = self._client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        return str(role["Role"]["Arn"])

    def _function(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        merged = _merge_globals(self._globals.get("Function") or {}, raw)
        events = merged.pop("Events", None) or {}
        merged.pop("Policies", None)  # IAM is not enforced offline
        # CodeDeploy is not in moto: offline the alias points at the one published version at once
        # (no canary traffic shifting, no rollback on alarms; docs/offline.md).
        merged.pop("DeploymentPreference", None)
        props = self.resolver.resolve(merged)
        code_uri = props.get("CodeUri")
        if not isinstance(code_uri, str):
            raise TemplateError(f"{logical_id}: offline functions need a local CodeUri")
        code_dir = (self._dir / code_uri).resolve()
        name = props.get("FunctionName") or self._name(logical_id, 64)
        environment = {
            key: (str(value).lower() if isinstance(value, bool) else str(value))
            for key, value in ((props.get("Environment") or {}).get("Variables") or {}).items()
        }
        role = props.get("Role") or self._execution_role(logical_id, LAMBDA_TRUST_POLICY)
        timeout = int(props.get("Timeout", 3))
        memory = int(props.get("MemorySize", 128))
        created = self._client("lambda").create_function(
            FunctionName=name,
            Runtime=props.get("Runtime", "python3.13"),
            Role=role,
            Handler=props["Handler"],
            Code={"ZipFile": _zip_directory(code_dir)},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": environment},
        )
        reserved = props.get("ReservedConcurrentExecutions")
        spec = FunctionSpec(
            logical_id=logical_id,
            name=name,
            arn=created["FunctionArn"],
            code_dir=code_dir,
            handler=props["Handler"],
            timeout_seconds=timeout,
            memory_mb=memory,
            environment=environment,
            layer_dirs=tuple(self._layer_dirs[arn] for arn in props.get("Layers") or [] if arn in self._layer_dirs),
            reserved_concurrency=None if reserved is None else int(reserved),
        )
        self._functions[logical_id] = spec
        alias = props.get("AutoPublishAlias")
        if alias:
            # SAM's AutoPublishAlias: a version and an alias on it, which the event sources invoke.
            version = self._client("lambda").publish_version(FunctionName=name)["Version"]
            self._client("lambda").create_alias(FunctionName=name, Name=str(alias), FunctionVersion=version)
        for event_name, event in events.items():
            self._function_event(logical_id, event_name, event)
        return Provisioned(ref=name, attributes={"Arn": spec.arn})

    def _function_event(self, function_id: str, event_name: str, event: Mapping[str, Any]) -> None:
        props = self.resolver.resolve(event.get("Properties") or {})
        if event["Type"] == "SQS":
            queue_arn = str(props["Queue"])
            queue_name = queue_arn.rsplit(":", 1)[-1]
            queue_url = self._client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"]
            scaling = props.get("ScalingConfig") or {}
            self._event_sources.append(
                SqsEventSource(
                    function_id=function_id,
                    event_name=event_name,
                    queue_arn=queue_arn,
                    queue_url=queue_url,
                    batch_size=int(props.get("BatchSize", 10)),
                    batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    maximum_concurrency=(
                        int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None
                    ),
                    report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    enabled=_as_bool(props.get("Enabled", True)),
                )
            )
        elif event["Type"] == "DynamoDB":
            on_failure = (props.get("DestinationConfig") or {}).get("OnFailure") or {}
            self._stream_sources.append(
                StreamEventSource(
                    function_id=function_id,
                    event_name=event_name,
                    stream_arn=str(props["Stream"]),
                    starting_position=str(props.get("StartingPosition", "LATEST")),
                    batch_size=int(props.get("BatchSize", 100)),
                    report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                    bisect_on_error=_as_bool(props.get("BisectBatchOnFunctionError", False)),
                    maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
                    on_failure_arn=str(on_failure["Destination"]) if "Destination" in on_failure else None,
                    enabled=_as_bool(props.get("Enabled", True)),
                )
            )
        elif event["Type"] == "HttpApi":
            api = event.get("Properties", {}).get("ApiId")
            api_id = api["Ref"] if isinstance(api, dict) else "ServerlessHttpApi"
            authorizers, default = self._api_auth.get(api_id, ({}, None))
            name = (props.get("Auth") or {}).get("Authorizer") or default
            self._routes.append(
                HttpRoute(
                    function_id=function_id,
                    api_id=api_id,
                    method=str(props.get("Method", "ANY")).upper(),
                    path=str(props.get("Path", "$default")),
                    auth=None if name in (None, "NONE") else authorizers[str(name)],
                )
            )
        # Schedule and other event types do not fire offline: run the target by hand instead.

    def _state_machine(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        merged = _merge_globals(self._globals.get("StateMachine") or {}, raw)
        for key in ("Policies", "Logging", "Tracing", "Tags", "PermissionsBoundary", "PropagateTags"):
            merged.pop(key, None)
        events = merged.pop("Events", None) or {}
        props = self.resolver.resolve(merged)
        if "DefinitionUri" in props:
            uri = props["DefinitionUri"]
            if not isinstance(uri, str):
                raise TemplateError(f"{logical_id}: offline state machines need a local DefinitionUri")
            definition = (self._dir / uri).read_text(encoding="utf-8")
        elif "DefinitionString" in props:
            definition = str(props["DefinitionString"])
        elif "Definition" in props:
            definition = json.dumps(props["Definition"])
        else:
            raise TemplateError(f"{logical_id}: no state machine definition")
        definition = substitute_definition(definition, props.get("DefinitionSubstitutions") or {})
        name = props.get("Name") or props.get("StateMachineName") or self._name(logical_id)
        role = props.get("Role") or props.get("RoleArn") or self._execution_role(logical_id, STATES_TRUST_POLICY)
        created = self._client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=role,
            type=props.get("Type") or props.get("StateMachineType") or "STANDARD",
        )
        arn = created["stateMachineArn"]
        for event_name, event in events.items():
            self._state_machine_event(logical_id, event_name, event, arn)
        return Provisioned(ref=arn, attributes={"Arn": arn, "Name": name})

    def _state_machine_event(self, logical_id: str, event_name: str, event: Mapping[str, Any], arn: str) -> None:
        """ScheduleV2 events become EventBridge Scheduler schedules (moto stores them; none fires offline)."""
        if event["Type"] != "ScheduleV2":
            raise TemplateError(f"{logical_id}.{event_name}: event type {event['Type']} has no offline provisioner")
        props = self.resolver.resolve(event.get("Properties") or {})
        target: dict[str, Any] = {
            "Arn": arn,
            "RoleArn": self._execution_role(logical_id + event_name, SCHEDULER_TRUST_POLICY),
        }
        if "Input" in props:
            target["Input"] = str(props["Input"])
        request: dict[str, Any] = {
            "Name": props.get("Name") or self._name(logical_id + event_name, 64),
            "ScheduleExpression": props["ScheduleExpression"],
            "FlexibleTimeWindow": props.get("FlexibleTimeWindow") or {"Mode": "OFF"},
            "State": props.get("State", "ENABLED"),
            "Target": target,
        }
        if "ScheduleExpressionTimezone" in props:
            request["ScheduleExpressionTimezone"] = props["ScheduleExpressionTimezone"]
        self._client("scheduler").create_schedule(**request)

    def _http_api(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        """The API in moto, and its authorizers for the offline gateway (local.gateway enforces them)."""
        auth = self.resolver.resolve(raw.get("Auth") or {})
        authorizers = {
            name: RouteAuth(
                kind="jwt",
                issuer=str(config["JwtConfiguration"]["issuer"]),
                audience=tuple(str(a) for a in config["JwtConfiguration"].get("audience") or []),
            )
            for name, config in (auth.get("Authorizers") or {}).items()
            if "JwtConfiguration" in config
        }
        if _as_bool(auth.get("EnableIamAuthorizer", False)):
            authorizers["AWS_IAM"] = RouteAuth(kind="iam")
        self._api_auth[logical_id] = (authorizers, auth.get("DefaultAuthorizer"))
        api = self._client("apigatewayv2").create_api(Name=self._name(logical_id), ProtocolType="HTTP")
        return Provisioned(ref=api["ApiId"], attributes={"ApiEndpoint": api["ApiEndpoint"]})

    # --- operations ------------------------------------------------------------------

    def _iam_role(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("RoleName") or self._name(logical_id, 64)
        role = self._client("iam").create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"])
        )["Role"]
        return Provisioned(ref=name, attributes={"Arn": role["Arn"], "RoleId": role["RoleId"]})

    def _log_group(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("LogGroupName") or self._name(logical_id)
        logs = self._client("logs")
        tags = {tag["Key"]: str(tag["Value"]) for tag in props.get("Tags") or []}
        logs.create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))
        if "RetentionInDays" in props:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        return Provisioned(ref=name, attributes={"Arn": self._arn("logs", f"log-group:{name}:*")})

    def _sns_topic(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("TopicName") or self._name(logical_id, 256)
        arn = self._client("sns").create_topic(Name=name)["TopicArn"]
        return Provisioned(ref=arn, attributes={"TopicArn": arn, "TopicName": name})

    def _alarm(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("AlarmName") or self._name(logical_id, 255)
        request = {key: value for key, value in props.items() if key not in {"AlarmName"}}
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in request:
                request[key] = int(request[key])
        for query in request.get("Metrics") or []:  # metric math: the same shape as the API's
            if "MetricStat" in query:
                query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
            if "ReturnData" in query:
                query["ReturnData"] = _as_bool(query["ReturnData"])
        if "Threshold" in request:
            request["Threshold"] = float(request["Threshold"])
        self._client("cloudwatch").put_metric_alarm(AlarmName=name, **request)
        return Provisioned(ref=name, attributes={"Arn": self._arn("cloudwatch", f"alarm:{name}")})

    def _dashboard(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("DashboardName") or self._name(logical_id, 255)
        body = props["DashboardBody"]
        json.loads(body)  # CloudWatch rejects a body that is not JSON; fail here the same way
        self._client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=body)
        return Provisioned(ref=name)

    def _sns_topic_policy(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        for topic_arn in props["Topics"]:
            self._client("sns").set_topic_attributes(
                TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
            )
        return Provisioned(ref=self._name(logical_id))

    def _sns_subscription(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        attributes = {
            key: json.dumps(props[key]) for key in ("RedrivePolicy", "FilterPolicy", "DeliveryPolicy") if key in props
        }
        arn = self._client("sns").subscribe(
            TopicArn=props["TopicArn"],
            Protocol=props["Protocol"],
            Endpoint=str(props["Endpoint"]),
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return Provisioned(ref=arn)

    def _queue_policy(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        for queue_url in props["Queues"]:
            self._client("sqs").set_queue_attributes(
                QueueUrl=queue_url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
            )
        return Provisioned(ref=self._name(logical_id))

    def _user_pool(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        """A Cognito user pool in moto, which issues its tokens and serves its JWKS (local.review_auth)."""
        props = self.resolver.resolve(raw)
        request: dict[str, Any] = {"PoolName": props.get("UserPoolName") or self._name(logical_id, 128)}
        for key in ("UsernameAttributes", "AutoVerifiedAttributes", "AdminCreateUserConfig", "Policies"):
            if key in props:
                request[key] = props[key]
        pool = self._client("cognito-idp").create_user_pool(**request)["UserPool"]
        pool_id = pool["Id"]
        provider = f"cognito-idp.{self._region}.amazonaws.com/{pool_id}"
        return Provisioned(
            ref=pool_id,
            attributes={
                "Arn": pool["Arn"],
                "ProviderName": provider,
                "ProviderURL": f"https://{provider}",
                "UserPoolId": pool_id,
            },
        )

    def _user_pool_client(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        request: dict[str, Any] = {
            "UserPoolId": props["UserPoolId"],
            "ClientName": props.get("ClientName") or self._name(logical_id, 128),
            "GenerateSecret": _as_bool(props.get("GenerateSecret", False)),
        }
        for key in ("ExplicitAuthFlows", "ReadAttributes", "PreventUserExistenceErrors"):
            if key in props:
                request[key] = props[key]
        client = self._client("cognito-idp").create_user_pool_client(**request)["UserPoolClient"]
        return Provisioned(ref=client["ClientId"], attributes={"ClientId": client["ClientId"]})

    def _event_bus(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("Name") or self._name(logical_id, 256)
        arn = self._client("events").create_event_bus(Name=name)["EventBusArn"]
        return Provisioned(ref=name, attributes={"Arn": arn, "Name": name})

    def _events_rule(self, logical_id: str, raw: dict[str, Any]) -> Provisioned:
        props = self.resolver.resolve(raw)
        name = props.get("Name") or self._name(logical_id, 64)
        events = self._client("events")
        rule: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
        for key in ("EventPattern", "ScheduleExpression", "Description", "EventBusName"):
            if key in props:
                rule[key] = json.dumps(props[key]) if key == "EventPattern" else props[key]
        arn = events.put_rule(**rule)["RuleArn"]
        targets = props.get("Targets") or []
        if targets:
            bus = {"EventBusName": props["EventBusName"]} if "EventBusName" in props else {}
            events.put_targets(Rule=name, Targets=targets, **bus)
        return Provisioned(ref=name, attributes={"Arn": arn})


def offline_bucket_policy(document: Mapping[str, Any]) -> dict[str, Any]:
    """The policy without its conditional Deny statements.

    moto enforces a bucket policy's Deny but ignores Conditions, so the template's TLS-only
    statement (Deny when aws:SecureTransport is false) would deny every request offline, where
    the moto endpoint is plain HTTP on loopback. The template keeps the statement (a test checks).
    """
    statements = document.get("Statement") or []
    if isinstance(statements, Mapping):
        statements = [statements]
    kept = [s for s in statements if not (s.get("Effect") == "Deny" and "Condition" in s)]
    return {**document, "Statement": kept}


def _s3_lifecycle(cfn: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape → the S3 API's."""
    rules = []
    for rule in cfn.get("Rules") or []:
        api_rule: dict[str, Any] = {
            "ID": rule.get("Id", "rule"),
            "Status": rule["Status"],
            "Filter": {"Prefix": rule.get("Prefix", "")},
        }
        if "ExpirationInDays" in rule:
            api_rule["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "NoncurrentVersionExpiration" in rule:
            days = rule["NoncurrentVersionExpiration"].get("NoncurrentDays")
            api_rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(days)}
        if "AbortIncompleteMultipartUpload" in rule:
            days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            api_rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
        rules.append(api_rule)
    return {"Rules": rules}
