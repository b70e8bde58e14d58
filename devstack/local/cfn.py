"""template.yaml as data: parameters, conditions and intrinsic functions.

The offline stack reads the SAM template itself (no second description of the resources):
this module checks parameter values the way CloudFormation does, and resolves
`Ref`, `Fn::GetAtt`, `Fn::Sub` and the other intrinsic functions against what the
provisioner has created.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

ACCOUNT_ID = "123456789012"  # moto's default account
PSEUDO_PARAMETERS_STATIC = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
NO_VALUE = object()  # AWS::NoValue: the property is removed


class TemplateError(ValueError):
    """The template (or a parameter value) cannot be used as written."""


def load_template(path: Path) -> dict[str, Any]:
    """The template as plain data; cfn-lint's decoder turns `!Ref X` into {"Ref": "X"} and so on."""
    document: dict[str, Any] = cfn_yaml.load(str(path))
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return document


def resolve_parameters(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """Parameter values (defaults, then overrides), checked against the template's constraints."""
    declared: dict[str, Any] = template.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameter(s): {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = str(overrides[name])
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no default and no value was given")
        _check_parameter(name, spec, value)
        values[name] = value
    return values


def _check_parameter(name: str, spec: Mapping[str, Any], value: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"parameter {name}={value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={value} is below its MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={value} is above its MaxValue {spec['MaxValue']}")


@dataclass
class Resolver:
    """Evaluates intrinsic functions; resources answer through the two callbacks."""

    parameters: Mapping[str, str]
    region: str
    stack_name: str
    resource_ref: Callable[[str], str]
    resource_attribute: Callable[[str, str], Any]
    mappings: Mapping[str, Any] = field(default_factory=dict)
    conditions: Mapping[str, Any] = field(default_factory=dict)
    _condition_values: dict[str, bool] = field(default_factory=dict)

    def pseudo(self, name: str) -> str | object:
        if name == "AWS::NoValue":
            return NO_VALUE
        values = {
            **PSEUDO_PARAMETERS_STATIC,
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
        }
        if name not in values:
            raise TemplateError(f"unsupported pseudo parameter {name}")
        return values[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        return self.resource_ref(name)

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self.conditions:
                raise TemplateError(f"unknown condition {name}")
            self._condition_values[name] = bool(self.resolve(self.conditions[name]))
        return self._condition_values[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), *_ = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key, arg)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _function(self, name: str, arg: Any) -> Any:
        if name == "Fn::GetAtt":
            target = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.resource_attribute(str(target[0]), str(self.resolve(target[1])))
        if name == "Fn::Sub":
            return self._sub(arg)
        if name == "Fn::If":
            condition, when_true, when_false = arg
            return self.resolve(when_true if self.condition(condition) else when_false)
        args = self.resolve(arg)
        if name == "Fn::Join":
            return str(args[0]).join(str(part) for part in args[1])
        if name == "Fn::Select":
            return args[1][int(args[0])]
        if name == "Fn::Split":
            return str(args[1]).split(str(args[0]))
        if name == "Fn::Equals":
            return str(args[0]) == str(args[1])
        if name == "Fn::Not":
            return not args[0]
        if name == "Fn::And":
            return all(args)
        if name == "Fn::Or":
            return any(args)
        if name == "Fn::FindInMap":
            return self.mappings[args[0]][args[1]][args[2]]
        if name == "Fn::Base64":
            return base64.b64encode(str(args).encode()).decode()
        if name == "Fn::GetAZs":
            return [f"{self.region}{zone}" for zone in "abc"]
        raise TemplateError(f"{name} is not supported offline")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return str(self.resource_attribute(logical_id, attribute))
            return str(self.ref(expression))

        return re.sub(r"\$\{([^}]+)\}", replace, str(text))


def substitute_definition(definition: str, substitutions: Mapping[str, Any]) -> str:
    """DefinitionSubstitutions: `${Name}` placeholders in an ASL document, as SAM does it."""

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in substitutions:
            raise TemplateError(f"state machine definition uses ${{{key}}} but no substitution is given")
        value = substitutions[key]
        return value if isinstance(value, str) else json.dumps(value)

    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", replace, definition)
