"""The offline stack's reading of template.yaml: provisioners, parameters, intrinsics."""

from __future__ import annotations

import pytest

from local.cfn import Resolver, TemplateError, load_template, resolve_parameters, substitute_definition
from local.provision import SUPPORTED_TYPES, _merge_globals, offline_bucket_policy
from tests.support.paths import REPO

TEMPLATE = load_template(REPO / "template.yaml")


def test_every_resource_type_in_the_template_has_an_offline_provisioner() -> None:
    # GIVEN the template's resource types WHEN compared with the offline provisioners
    types = {resource["Type"] for resource in TEMPLATE["Resources"].values()}
    # THEN none is missing (add a provisioner in local/provision.py when this fails)
    assert types - SUPPORTED_TYPES == set()


def _resolver(parameters: dict[str, str] | None = None, **kwargs: object) -> Resolver:
    return Resolver(
        parameters=parameters or {"Stage": "dev", "Size": "3"},
        region="eu-west-1",
        stack_name="s",
        resource_ref=lambda name: f"ref-of-{name}",
        resource_attribute=lambda name, attribute: f"{name}.{attribute}-value",
        **kwargs,  # type: ignore[arg-type]
    )


def test_intrinsics_resolve_against_parameters_resources_and_pseudo_parameters() -> None:
    resolver = _resolver(conditions={"IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]}})
    # GIVEN a value using Ref, GetAtt, Sub (with attribute, pseudo parameter and escape), If, Join
    value = {
        "a": {"Ref": "Queue"},
        "b": {"Fn::GetAtt": ["Queue", "Arn"]},
        "c": {"Fn::Sub": "${AWS::Region}:${Stage}:${Queue.Arn}:${!Literal}:${X}"},
        "d": {"Fn::If": ["IsDev", "yes", "no"]},
        "e": {"Fn::Join": ["-", [{"Ref": "Size"}, {"Ref": "AWS::AccountId"}]]},
        "f": {"Fn::If": ["IsDev", {"Ref": "AWS::NoValue"}, 1]},
        "g": {"Fn::Sub": ["${X}/${Stage}", {"X": {"Ref": "Queue"}}]},
    }
    # WHEN resolved
    resolved = resolver.resolve(value)
    # THEN each intrinsic has CloudFormation's meaning, and NoValue removes the key
    assert resolved == {
        "a": "ref-of-Queue",
        "b": "Queue.Arn-value",
        "c": "eu-west-1:dev:Queue.Arn-value:${Literal}:ref-of-X",
        "d": "yes",
        "e": "3-123456789012",
        "g": "ref-of-Queue/dev",
    }


def test_parameters_take_overrides_and_enforce_the_template_constraints() -> None:
    template = {
        "Parameters": {
            "Count": {"Type": "Number", "Default": 5, "MinValue": 1, "MaxValue": 20},
            "Level": {"Type": "String", "Default": "INFO", "AllowedValues": ["INFO", "DEBUG"]},
            "Arn": {"Type": "String", "AllowedPattern": "^arn:.+$"},
        }
    }
    assert resolve_parameters(template, {"Arn": "arn:x", "Count": "7"}) == {
        "Count": "7",
        "Level": "INFO",
        "Arn": "arn:x",
    }
    with pytest.raises(TemplateError, match="no default"):
        resolve_parameters(template, {})
    with pytest.raises(TemplateError, match="MaxValue"):
        resolve_parameters(template, {"Arn": "arn:x", "Count": "21"})
    with pytest.raises(TemplateError, match="not one of"):
        resolve_parameters(template, {"Arn": "arn:x", "Level": "TRACE"})
    with pytest.raises(TemplateError, match="does not match"):
        resolve_parameters(template, {"Arn": "nope"})
    with pytest.raises(TemplateError, match="unknown parameter"):
        resolve_parameters(template, {"Arn": "arn:x", "Typo": "1"})


def test_globals_merge_like_sam() -> None:
    # GIVEN Globals and a function's own properties
    merged = _merge_globals(
        {"Timeout": 30, "Layers": ["L1"], "Environment": {"Variables": {"A": "global", "B": "global"}}},
        {"Timeout": 5, "Layers": ["L2"], "Environment": {"Variables": {"B": "own"}}},
    )
    # THEN maps merge with the function winning, lists concatenate, scalars are replaced
    assert merged == {"Timeout": 5, "Layers": ["L1", "L2"], "Environment": {"Variables": {"A": "global", "B": "own"}}}


def test_definition_substitutions_fill_placeholders_and_reject_unknown_ones() -> None:
    definition = '{"Resource": "${TaskArn}", "Comment": "$.not_a_placeholder"}'
    assert substitute_definition(definition, {"TaskArn": "arn:fn"}) == (
        '{"Resource": "arn:fn", "Comment": "$.not_a_placeholder"}'
    )
    with pytest.raises(TemplateError, match="Missing"):
        substitute_definition('{"Resource": "${Missing}"}', {})


def test_offline_bucket_policy_drops_only_conditional_denies() -> None:
    # GIVEN the template's pipeline bucket policy (its TLS-only Deny carries a Condition, which
    # moto ignores) plus an unconditional statement
    document = TEMPLATE["Resources"]["PipelineBucketPolicy"]["Properties"]["PolicyDocument"]
    tls_only = [s for s in document["Statement"] if s["Effect"] == "Deny" and "Condition" in s]
    assert tls_only, "the template's bucket policy lost its TLS-only Deny"
    allow = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::b"}
    # WHEN the offline provisioner prepares it
    offline = offline_bucket_policy({**document, "Statement": [*document["Statement"], allow, deny]})
    # THEN the conditional Deny is gone and everything else is kept as written
    assert offline["Statement"] == [allow, deny]
    assert offline["Version"] == document["Version"]
