"""Cold init of every function module next to a bare `import openai` (docs/capacity.md).

Each case runs in a fresh interpreter: the import and module init of functions/<name>/app.py
(what Lambda's init phase runs), timed from inside the process, so the interpreter's own start
is left out of every case alike. The environment is Lambda's as far as the SDKs read it
(LAMBDA_TASK_ROOT, the function name, the X-Ray daemon address), so Powertools' Tracer is
enabled and patches as it does when deployed; the resources' settings are dummies (nothing is
called at init). Bytecode caches are warm, as on a second run here; the deployed layer has none
for python3.13 (make build installs with --no-compile), so Lambda also compiles at init.

    make bench-coldstart [ARGS="--runs 9 --importtime"]

Target: categorize's init ≤ bare `import openai` + 150 ms of CPU, the increment measured inside
each process (`median_cpu_ms_beyond_import_openai`, robust to a busy machine). Writes
devstack/bench/results/coldstart.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MARGIN_MS = 150.0
# What Lambda's runtime sets and the SDKs read at import (Powertools enables tracing on
# LAMBDA_TASK_ROOT; the X-Ray SDK reads the daemon address), with dummy AWS credentials.
_LAMBDA_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "POWERTOOLS_SERVICE_NAME": "article-categorizer",
    "POWERTOOLS_METRICS_NAMESPACE": "ArticleCategorizer",
}
# `import openai` is timed apart inside each function's process: the app's init beyond it, measured
# in the same process, does not depend on how busy the machine was between two processes.
_SNIPPET = """
import time
started, cpu = time.perf_counter(), time.process_time()
import openai
openai_cpu = time.process_time() - cpu
{body}
print(time.perf_counter() - started, time.process_time() - cpu, openai_cpu)
"""
_IMPORT_APP = """
import importlib.util
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""
_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def settings_env() -> dict[str, str]:
    """A value for every environment variable any function's settings require (never called at init)."""
    from categorizer import config

    env: dict[str, str] = {}
    for cls in vars(config).values():
        if isinstance(cls, type) and issubclass(cls, config.EnvSettings):
            for field in cls.model_fields.values():
                alias = field.alias
                if not alias or not field.is_required():
                    continue
                if field.annotation in (int, float):
                    env[alias] = "1"
                elif alias.endswith("_ARN"):
                    env[alias] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench"
                elif alias.endswith("_URL"):
                    env[alias] = "https://sqs.us-east-1.amazonaws.com/123456789012/bench"
                elif "PARAMETER" in alias:
                    env[alias] = "/bench/parameter"
                else:
                    env[alias] = "bench"
    return env


def _env(function: str | None) -> dict[str, str]:
    env = {**os.environ, **_LAMBDA_ENV, **settings_env()}
    if function is not None:
        env["AWS_LAMBDA_FUNCTION_NAME"] = function
        env["LAMBDA_TASK_ROOT"] = str(REPO / "functions" / function)
    return env


def _cases() -> dict[str, tuple[str, str | None]]:
    cases: dict[str, tuple[str, str | None]] = {
        "import openai": ("import openai", None),
        "import boto3": ("import boto3", None),
    }
    for app in sorted((REPO / "functions").glob("*/app.py")):
        cases[f"functions/{app.parent.name}/app.py"] = (_IMPORT_APP.format(path=str(app)), app.parent.name)
    return cases


def measure(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (body, function) in _cases().items():
        walls: list[float] = []
        cpus: list[float] = []
        beyond_openai: list[float] = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-c", _SNIPPET.format(body=body)],
                env=_env(function),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{name}: {done.stderr.strip()[-2000:]}")
            wall, cpu, openai_cpu = (float(value) for value in done.stdout.strip().splitlines()[-1].split())
            walls.append(wall)
            cpus.append(cpu)
            beyond_openai.append(cpu - openai_cpu)
        results[name] = {
            "median_cpu_ms": round(statistics.median(cpus) * 1000, 1),
            "median_wall_ms": round(statistics.median(walls) * 1000, 1),
            "median_cpu_ms_beyond_import_openai": round(statistics.median(beyond_openai) * 1000, 1),
            "cpu_ms_runs": [round(c * 1000, 1) for c in cpus],
        }
    return results


def import_profile(function: str, top: int = 20) -> list[dict[str, Any]]:
    """`python -X importtime` of one function module: the imports with the most self time (µs)."""
    app = REPO / "functions" / function / "app.py"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _IMPORT_APP.format(path=str(app))],
        env=_env(function),
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [
        (int(m.group(1)), int(m.group(2)), m.group(4))
        for line in done.stderr.splitlines()
        if (m := _IMPORTTIME.match(line))
    ]
    rows.sort(reverse=True)
    return [{"module": module, "self_us": own, "cumulative_us": cumulative} for own, cumulative, module in rows[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per case (the median is reported)")
    parser.add_argument("--importtime", action="store_true", help="add the categorize module's top imports")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cases = measure(args.runs)
    beyond = cases["functions/categorize/app.py"]["median_cpu_ms_beyond_import_openai"]
    result: dict[str, Any] = {
        "runs": args.runs,
        "cases": cases,
        "categorize_beyond_import_openai_cpu_ms": beyond,
        "target_beyond_import_openai_cpu_ms": TARGET_MARGIN_MS,
        "target_met": beyond <= TARGET_MARGIN_MS,
    }
    if args.importtime:
        result["categorize_top_imports"] = import_profile("categorize")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "coldstart.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
