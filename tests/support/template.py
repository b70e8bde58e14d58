"""template.yaml as the tests read it: as written (cfn-lint's decoder) and as deployed (the SAM transform)."""

from __future__ import annotations

import json
import os
from typing import Any

from cfnlint.decode import cfn_yaml
from samtranslator.translator.transform import transform

from tests.support.paths import REPO

# `!Ref X` arrives as {"Ref": "X"} and `!GetAtt A.B` as {"Fn::GetAtt": ["A", "B"]}.
TEMPLATE: dict[str, Any] = cfn_yaml.load(str(REPO / "template.yaml"))
PARAMETERS: dict[str, Any] = TEMPLATE.get("Parameters", {})
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
GLOBAL_FUNCTION: dict[str, Any] = TEMPLATE.get("Globals", {}).get("Function", {})
# The value given to secret-ARN parameters (those without a default) for the transform.
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:test-AbCdEf"


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in RESOURCES.items() if res["Type"] == kind}


FUNCTIONS = of_type("AWS::Serverless::Function")
STATE_MACHINES = of_type("AWS::Serverless::StateMachine")


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def _deployed_template() -> dict[str, Any]:
    """The template after the SAM transform, code locations replaced as `sam package` would."""
    document = json.loads(json.dumps(TEMPLATE))
    for resource in document["Resources"].values():
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://artifacts/key"
    parameters = {
        name: SECRET_ARN
        for name, spec in document.get("Parameters", {}).items()
        if "Default" not in spec and "secretsmanager" in spec.get("AllowedPattern", "")
    }
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    transformed: dict[str, Any] = transform(document, parameters, _NoManagedPolicies())
    return transformed


DEPLOYED = _deployed_template()
