"""The offline stack from Docker containers: the env file for `sam local invoke --env-vars FILE`.

`sam local invoke` runs a function in a container, whose loopback is its own: 127.0.0.1 there is
not this machine. Two ways reach the stack (docs/offline.md, "sam local invoke"):

- Docker Desktop (macOS, Windows) forwards `host.docker.internal` to this machine's loopback, so
  the env file points the functions at host.docker.internal and the stack stays on loopback.
- On Linux nothing does that; `python -m local up --container-address 172.17.0.1` makes moto and
  the OpenAI-compatible server also listen on that address of the Docker bridge (at the same
  ports), and the env file points there.

SAM CLI's `--docker-network host` would share this machine's network instead, but SAM CLI does not
connect a container to the host network (aws-sam-cli issues 4236 and 3609).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping

# SAM's env file: {"Parameters": {variable: value} for every function, FunctionLogicalId: {…}}.
SamEnvVars = dict[str, dict[str, str]]

DOCKER_DESKTOP_HOST = "host.docker.internal"
# Variables with one value for every function: the env file's "Parameters" section.
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "OPENAI_BASE_URL")
_LOOPBACK_ORIGIN = re.compile(r"\bhttp://(?:127\.0\.0\.1|localhost):(?=[0-9])")


def check_container_address(address: str) -> str:
    """An address of a private network (the Docker bridge's), never a wildcard or loopback one.

    moto and the OpenAI-compatible server accept any credentials, so they must not listen where
    other machines can reach them.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"--container-address {address!r} is not an IP address (e.g. 172.17.0.1)") from None
    if ip.is_loopback or ip.is_unspecified or not ip.is_private:
        raise ValueError(
            f"--container-address {address!r} must be a private address of this machine, such as the "
            "Docker bridge's (`ip -4 addr show docker0`, usually 172.17.0.1), not loopback, 0.0.0.0 or public"
        )
    return address


def reachable_from_containers(value: str, container_host: str) -> str:
    """`value` with every http://127.0.0.1:PORT (moto, the OpenAI server, moto's queue URLs) at `container_host`."""
    return _LOOPBACK_ORIGIN.sub(f"http://{container_host}:", value)


def sam_env_vars(
    declared: Mapping[str, Iterable[str]],
    function_env: Callable[[str], Mapping[str, str]],
    container_host: str,
) -> SamEnvVars:
    """The env file's content for every function.

    `declared` names each function's variables in the template (Globals merged): SAM overrides
    only those. `function_env` is a function's environment in this stack (resources, secrets,
    endpoints), whose values the file carries, with loopback URLs made reachable from containers.
    """
    env_vars: SamEnvVars = {"Parameters": {}}
    for logical_id, names in declared.items():
        environment = function_env(logical_id)
        values = {name: reachable_from_containers(environment[name], container_host) for name in names}
        for name in ENDPOINT_VARIABLES:
            if name in values:
                env_vars["Parameters"][name] = values.pop(name)
        env_vars[logical_id] = values
    return env_vars
