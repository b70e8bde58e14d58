"""Security properties of template.yaml and the repo's sample files (issue 5).

IAM is checked on the template as CloudFormation deploys it: the SAM transform expands
policy templates (SQSSendMessagePolicy, …) into statements, so the check sees every resource
a role can touch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO
from tests.support.template import DEPLOYED, TEMPLATE

# Actions that support no resource-level permission: "*" is the narrowest resource there is.
RESOURCE_WILDCARD_ONLY = re.compile(
    r"^(xray:(PutTraceSegments|PutTelemetryRecords|GetSamplingRules|GetSamplingTargets)"
    r"|logs:(CreateLogDelivery|GetLogDelivery|UpdateLogDelivery|DeleteLogDelivery|ListLogDeliveries"
    r"|PutResourcePolicy|DescribeResourcePolicies|DescribeLogGroups)"
    r"|cloudwatch:PutMetricData)$"
)
# A credential in a file: OpenAI keys, AWS access keys, PEM blocks, webhook secrets, bearer tokens.
SECRET_VALUE = re.compile(
    r"sk-(proj-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY|whsec[_-][A-Za-z0-9]{8,}"
    r"|Bearer\s+[A-Za-z0-9._-]{16,}"
)
SECRET_KEY_NAME = re.compile(r"api_?key|secret|password|passphrase|token", re.IGNORECASE)


ROLES = {name: r for name, r in DEPLOYED["Resources"].items() if r["Type"] == "AWS::IAM::Role"}


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_wildcard(resource: Any) -> bool:
    """ "*", or an ARN whose resource part is only a wildcard (arn:aws:s3:::*, …:table/*)."""
    if not isinstance(resource, str):
        return False  # an intrinsic (Ref, GetAtt, Sub) names a resource of this stack or a parameter
    return resource == "*" or re.fullmatch(r"arn:[^:]*:[^:]*:[^:]*:[^:]*:([a-z-]+/)?\*", resource) is not None


def test_the_transform_produced_a_role_per_function_and_state_machine() -> None:
    kinds = ("AWS::Serverless::Function", "AWS::Serverless::StateMachine")
    owners = [name for name, r in TEMPLATE["Resources"].items() if r["Type"] in kinds]
    assert owners and all(f"{name}Role" in ROLES for name in owners)


@pytest.mark.parametrize("role_name", sorted(ROLES))
def test_inline_policies_name_their_resources(role_name: str) -> None:
    # GIVEN every statement a template author wrote or a SAM policy template expanded to
    for statement in _statements(ROLES[role_name]):
        if statement.get("Effect", "Allow") != "Allow":
            continue
        actions = _as_list(statement["Action"])
        # THEN no action is a service or global wildcard
        assert not [a for a in actions if a == "*" or a.endswith(":*")], (role_name, actions)
        # AND a wildcard resource appears only where the actions allow nothing narrower
        if any(_is_wildcard(r) for r in _as_list(statement["Resource"])):
            broad = [a for a in actions if not RESOURCE_WILDCARD_ONLY.match(a)]
            assert not broad, f"{role_name}: {broad} on '*' although they accept a narrower resource"


def test_the_ingest_function_may_only_send_to_the_article_queue_and_read_the_webhook_secret() -> None:
    statements = _statements(ROLES["IngestFunctionRole"])
    assert [s["Action"] for s in statements] == [["sqs:SendMessage*"], ["secretsmanager:GetSecretValue"]]
    queue = statements[0]["Resource"]["Fn::Sub"][1]["queueName"]
    assert queue == {"Fn::GetAtt": ["ArticleQueue", "QueueName"]}
    assert statements[1]["Resource"]["Fn::Sub"][1]["secretArn"] == {"Ref": "WebhookSecretArn"}


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in TEMPLATE["Resources"].items() if r["Type"] == kind}


def test_every_bucket_is_encrypted_private_and_refuses_plain_http() -> None:
    buckets = _resources("AWS::S3::Bucket")
    policies = _resources("AWS::S3::BucketPolicy").values()
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms", "aws:kms:dsse"}
        block = properties["PublicAccessBlockConfiguration"]
        assert all(
            block[k] is True
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        )
        denies_http = [
            s
            for p in policies
            if p["Properties"]["Bucket"] == {"Ref": name}
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny"
            and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
        ]
        assert denies_http, f"{name} has no policy denying requests without TLS"
        assert {json.dumps(r, sort_keys=True) for r in _as_list(denies_http[0]["Resource"])} >= {
            json.dumps({"Fn::GetAtt": [name, "Arn"]}, sort_keys=True),
            json.dumps({"Fn::Sub": f"${{{name}.Arn}}/*"}, sort_keys=True),
        }


def test_queues_tables_and_log_groups_are_encrypted_at_rest() -> None:
    for name, queue in _resources("AWS::SQS::Queue").items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name
    for name, table in _resources("AWS::DynamoDB::Table").items():
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True, name


@pytest.mark.parametrize(("api", "prefix"), [("IngestApi", "Ingest"), ("ReviewApi", "Review")])
def test_every_http_api_is_throttled_and_logged(api: str, prefix: str) -> None:
    props = _resources("AWS::Serverless::HttpApi")[api]["Properties"]
    settings = props["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": f"{prefix}ThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": f"{prefix}ThrottlingBurstLimit"}
    assert "AccessLogSettings" in props


def test_every_checkov_suppression_gives_a_reason() -> None:
    for name, resource in TEMPLATE["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
            assert len(skip.get("comment", "")) >= 30, f"{name} skips {skip['id']} without a reason"


def _scanned_files() -> list[Path]:
    roots = [REPO / "events", REPO / "docs", REPO / "devstack" / "local" / "demo"]
    files = [p for root in roots if root.is_dir() for p in root.rglob("*") if p.is_file()]
    files += [p for p in (REPO / "samconfig.toml", REPO / "README.md", REPO / "template.yaml") if p.is_file()]
    return files


def test_the_scan_covers_the_sample_events() -> None:
    assert any(p.parent.name == "events" for p in _scanned_files())


@pytest.mark.parametrize("path", _scanned_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_credential_in_events_docs_or_deploy_config(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    assert not SECRET_VALUE.search(text), f"{path} holds a credential-like string"
    if path.suffix == ".json":
        _assert_no_secret_fields(json.loads(text), str(path))


def _assert_no_secret_fields(value: Any, where: str) -> None:
    """A key named like a secret may hold an ARN or a name, never the secret itself (`token_counting`
    names how an account counts prompt tokens, "tiktoken" or "characters": not a credential)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if SECRET_KEY_NAME.search(key) and isinstance(inner, str) and inner:
                assert inner.startswith(("arn:", "/")) or key.lower().endswith(("_arn", "arn", "name", "_counting")), (
                    where,
                    key,
                )
            _assert_no_secret_fields(inner, where)
    elif isinstance(value, list):
        for inner in value:
            _assert_no_secret_fields(inner, where)


def test_the_wildcard_check_tells_broad_from_narrow_resources() -> None:
    assert _is_wildcard("*") and _is_wildcard("arn:aws:s3:::*") and _is_wildcard("arn:aws:dynamodb:us-east-1:1:table/*")
    assert not _is_wildcard("arn:aws:s3:::bucket/runs/*")
    assert not _is_wildcard({"Fn::GetAtt": ["ResultsTable", "Arn"]})
    assert RESOURCE_WILDCARD_ONLY.match("xray:PutTraceSegments") and not RESOURCE_WILDCARD_ONLY.match("sqs:SendMessage")
