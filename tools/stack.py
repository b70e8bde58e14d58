"""Where the operator commands find the stack's resources: its CloudFormation outputs.

Each command takes `--stack-name` (default: `stack_name` of samconfig.toml's default profile,
what `sam deploy` creates) and reads the resource it needs from that stack's outputs. A flag
or its environment variable still wins, so one command line works against any account, and
against the offline stack, which records its outputs in moto's CloudFormation under the same
name (`make local-up`).
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

SAMCONFIG = Path(__file__).resolve().parents[1] / "samconfig.toml"


def default_stack_name(samconfig: Path = SAMCONFIG) -> str:
    config = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    name: str = config["default"]["global"]["parameters"]["stack_name"]
    return name


def add_stack_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack-name",
        default=default_stack_name(),
        help="the stack whose outputs name the resources (default: samconfig.toml's stack_name)",
    )


class StackOutputs:
    """The stack's outputs, read once on first use (a command that has every flag never reads them)."""

    def __init__(self, stack_name: str, client: Callable[[], Any] = lambda: boto3.client("cloudformation")) -> None:
        self.stack_name = stack_name
        self._client = client
        self._outputs: dict[str, str] | None = None

    def get(self, key: str) -> str:
        if self._outputs is None:
            try:
                [stack] = self._client().describe_stacks(StackName=self.stack_name)["Stacks"]
            except ClientError as error:
                raise SystemExit(
                    f"error: cannot read the outputs of stack {self.stack_name!r} "
                    f"({error.response['Error']['Message']}); give --stack-name, or the flag itself"
                ) from None
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if key not in self._outputs:
            raise SystemExit(f"error: stack {self.stack_name!r} has no output {key!r}")
        return self._outputs[key]

    def resolve(self, given: str | None, variable: str, output: str) -> str:
        """The flag's value, else the environment variable's, else the stack's output."""
        return given or os.environ.get(variable) or self.get(output)
