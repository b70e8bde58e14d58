"""Per-article overhead of the categorize handler, and the cold init of every function module.

1. CPU per article: CategorizeFunction's real handler on SQS batches of livedoor articles,
   with a zero-latency OpenAI (an httpx2.MockTransport answering a canned completion) and
   moto's in-process AWS (DynamoDB, SQS, SSM, Secrets Manager). One core, so articles per
   second = 1000 / CPU ms per article. A profile splits the time by package, because moto's
   share is a cost of the benchmark, not of Lambda.
2. Cold init: `import` + module init of functions/*/app.py, each in a fresh interpreter,
   next to a bare `import openai` (median of several runs).

    .venv/bin/python bench/overhead.py [--articles 2000] [--runs 5]

Writes bench/results/overhead.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
DATA = REPO.parent / "shared" / "data" / "livedoor-dev.jsonl.gz"
MODEL_ID = "ft:gpt-4o-mini-2024-07-18:bench::overhead"
BATCH_SIZE = 10
ANSWER = [("3", 0.80), ("7", 0.15), ("12", 0.03)]  # the canned completion's (token, probability)
T = TypeVar("T")
# Dummy settings for a module import: nothing is called at init, so no value is dereferenced.
_DUMMY_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_SERVICE_NAME": "article-categorizer",
    "POWERTOOLS_METRICS_NAMESPACE": "ArticleCategorizer",
}


async def _inline(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return func(*args, **kwargs)


def _package(filename: str) -> str:
    """Which library a profiled function belongs to (site-packages top level, or ours)."""
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/shared/categorizer/" in path:
        return "categorizer"
    if "/functions/" in path:
        return "functions"
    return "python stdlib/other"


def handler_overhead(n_articles: int, data: Path = DATA) -> dict[str, Any]:
    os.environ.update(_DUMMY_ENV)
    import boto3
    import httpx2
    from moto import mock_aws

    from categorizer.active_model import write_active_model
    from categorizer.models import ActiveModel
    from local.lambda_shapes import LambdaContext, load_module_from_file, sqs_event
    from local.openai_server.chat import chat_completion_json

    with gzip.open(data, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for _, line in zip(range(n_articles), lines, strict=False)]
    articles = [
        {
            "article_id": f"ld-{i}",
            "url": f"https://news.example/{i}",
            "title": row["title"],
            "body": row["body"],
            "language": "ja",
            "version": 1,
        }
        for i, row in enumerate(rows)
    ]
    with mock_aws():
        boto3.resource("dynamodb").create_table(
            TableName="results",
            KeySchema=[{"AttributeName": "article_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "article_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dlq_url = boto3.client("sqs").create_queue(QueueName="dlq")["QueueUrl"]
        boto3.client("s3").create_bucket(Bucket="texts")
        secret = boto3.client("secretsmanager").create_secret(Name="openai", SecretString="sk-bench")["ARN"]
        write_active_model(
            boto3.client("ssm"), "/bench/active-model", ActiveModel(model_id=MODEL_ID, taxonomy_version="iab-3.1")
        )
        os.environ.update(
            {
                "RESULTS_TABLE_NAME": "results",
                "DLQ_URL": dlq_url,
                "TEXT_BUCKET": "texts",
                "OPENAI_API_KEY_SECRET_ARN": secret,
                "ACTIVE_MODEL_PARAMETER": "/bench/active-model",
                "POWERTOOLS_METRICS_DISABLED": "false",
            }
        )
        # The handler logs a line per article, as in Lambda; write it, but not to the terminal.
        devnull = open(os.devnull, "w")  # noqa: SIM115
        stdout, sys.stdout = sys.stdout, devnull
        app = load_module_from_file(REPO / "functions" / "categorize" / "app.py", "categorize")
        answer = json.dumps(chat_completion_json(MODEL_ID, ANSWER, prompt_tokens=500)).encode()
        transport = httpx2.MockTransport(
            lambda request: httpx2.Response(200, content=answer, headers={"content-type": "application/json"})
        )
        app.service = app.build_service(openai_transport=transport)  # type: ignore[attr-defined]
        batches = [articles[i : i + BATCH_SIZE] for i in range(0, len(articles), BATCH_SIZE)]
        # Warm-up: first client, secret, parameter, tokenizer.
        app.lambda_handler(sqs_event(*batches[0]), LambdaContext())
        warm = [dict(a, version=2, title=a["title"] + " 2") for a in articles[BATCH_SIZE:]]
        warm_batches = [warm[i : i + BATCH_SIZE] for i in range(0, len(warm), BATCH_SIZE)]
        half = len(warm_batches) // 2
        try:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for batch in warm_batches[:half]:
                failures = app.lambda_handler(sqs_event(*batch), LambdaContext())["batchItemFailures"]
                assert not failures, failures
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            # cProfile sees one thread: run the store's boto3 calls inline while profiling.
            to_thread = asyncio.to_thread
            asyncio.to_thread = _inline
            profiler = cProfile.Profile()
            profiler.enable()
            for batch in warm_batches[half:]:
                app.lambda_handler(sqs_event(*batch), LambdaContext())
            profiler.disable()
        finally:
            asyncio.to_thread = to_thread
            sys.stdout = stdout
            devnull.close()
    measured = sum(len(b) for b in warm_batches[:half])
    by_package: dict[str, float] = defaultdict(float)
    by_function: dict[str, float] = {}
    stats = pstats.Stats(profiler)
    for (filename, line, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package(filename)] += tottime
        by_function[f"{_package(filename)}:{Path(filename).name}:{line}:{name}"] = tottime
    total = sum(by_package.values())
    top = {k: round(v / total, 3) for k, v in sorted(by_function.items(), key=lambda kv: -kv[1])[:15]}
    shares = {k: round(v / total, 3) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]}
    cpu_ms = cpu * 1000 / measured
    return {
        "articles": measured,
        "batch_size": BATCH_SIZE,
        "cpu_ms_per_article": round(cpu_ms, 2),
        "wall_ms_per_article": round(wall * 1000 / measured, 2),
        "articles_per_second_one_core": round(1000 / cpu_ms, 1),
        "cpu_ms_per_article_without_moto": round(cpu_ms * (1 - shares.get("moto", 0.0)), 2),
        "profile_share_by_package": shares,
        "profile_top_functions": top,
    }


_INIT_SNIPPET = """
import importlib.util, sys, time
started, cpu = time.perf_counter(), time.process_time()
{body}
print(time.perf_counter() - started, time.process_time() - cpu)
"""
_IMPORT_APP = """
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""


def _function_env() -> dict[str, str]:
    """A value for every environment variable any function's settings require."""
    from categorizer import config

    env = dict(_DUMMY_ENV)
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


def cold_init(runs: int) -> dict[str, Any]:
    env = {**os.environ, **_function_env()}
    cases = {"import openai": "import openai", "import boto3": "import boto3"}
    for app in sorted((REPO / "functions").glob("*/app.py")):
        cases[f"functions/{app.parent.name}/app.py"] = _IMPORT_APP.format(path=str(app))
    results: dict[str, Any] = {}
    for name, body in cases.items():
        walls: list[float] = []
        cpus: list[float] = []
        error = None
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-c", _INIT_SNIPPET.format(body=body)],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
                break
            wall, cpu = done.stdout.strip().splitlines()[-1].split()
            walls.append(float(wall))
            cpus.append(float(cpu))
        results[name] = (
            {"error": error}
            if error
            else {
                "median_wall_ms": round(statistics.median(walls) * 1000, 1),
                "median_cpu_ms": round(statistics.median(cpus) * 1000, 1),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DATA, help="livedoor JSONL.gz (read by path)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = {"handler": handler_overhead(args.articles, args.data), "cold_init": cold_init(args.runs)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
