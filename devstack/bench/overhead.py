"""Per-article CPU of the categorize handler, with the emulators' share measured and taken out.

CategorizeFunction's real handler on SQS batches of livedoor articles (each message as ingest
sends it, with its `article_id` attribute) and a zero-latency OpenAI (an httpx2.MockTransport
answering a canned completion). Every article is new content, so each one makes the whole trip:
the batch read, a claim, the text write, the call and the row write. AWS is answered two ways:

- `moto`: moto's in-process AWS, the real semantics (conditional writes, stored rows).
- `canned`: a `before-send` hook answering each request with a fixed, valid response (empty
  BatchGetItem, accepted claim and write, stored object), which is what these articles get from
  AWS. No emulator state grows, so the garbage collector scans only the product's objects
  (with moto, its growing store makes collections several ms per article that are not Lambda's).

What belongs to the emulators, not the product: answering a botocore request (everything under
the `before-send` hook, which stands in for the network and AWS) and the mock transport building
OpenAI's answer. Both are timed with `time.thread_time()` around those entry points in every
thread and subtracted from the process CPU: `product_cpu_ms_per_article` is what the handler's
own code and its libraries (Powertools, botocore's serialising, signing and parsing, the OpenAI
SDK, pydantic, tiktoken) cost. What it leaves out: the CPU of real network I/O (urllib3 and TLS
for AWS, httpx2 sockets for OpenAI), which Lambda adds.

A second pass runs under cProfile with the profiler paused inside the emulators, so the profile
is the product's alone: by package, and its functions by own and cumulative time.

    make bench-overhead [ARGS="--articles 2000 --aws canned"]

Writes devstack/bench/results/overhead.json (and overhead.prof, for pstats) and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import json
import os
import pstats
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
DATA = REPO.parent / "shared" / "data" / "livedoor-dev.jsonl.gz"
MODEL_ID = "ft:gpt-4o-mini-2024-07-18:bench::overhead"
BATCH_SIZE = 10
ANSWER = [("3", 0.80), ("7", 0.15), ("12", 0.03)]  # the canned completion's (token, probability)
T = TypeVar("T")
BENCH_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_SERVICE_NAME": "article-categorizer",
    "POWERTOOLS_METRICS_NAMESPACE": "ArticleCategorizer",
    # As in Lambda: Powertools' batch processor then keeps one event loop across invocations (not
    # asyncio.run's new one each time), so its worker threads, and each thread's DynamoDB resource,
    # live as long as the instance. Without it every batch paid for new threads and resources.
    "LAMBDA_TASK_ROOT": str(REPO / "functions" / "categorize"),
    # A sampled trace, as Lambda sets per invocation with active tracing: Tracer's subsegments
    # are recorded and sent (UDP, to nobody) as deployed, not discarded for want of a segment.
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
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


class EmulatorClock:
    """CPU seconds spent inside the emulators, summed over threads; pauses a profiler meanwhile."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.profiler: cProfile.Profile | None = None
        self._lock = threading.Lock()

    @contextmanager
    def inside(self) -> Iterator[None]:
        profiler = self.profiler
        if profiler is not None:
            profiler.disable()
        started = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self.seconds += spent
            if profiler is not None:
                profiler.enable()

    def wrap(self, function: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: Any, **kwargs: Any) -> T:
            with self.inside():
                return function(*args, **kwargs)

        return timed


def livedoor_articles(data: Path, count: int) -> list[dict[str, Any]]:
    """The first `count` livedoor articles as publish events (read by path, never copied)."""
    with gzip.open(data, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for _, line in zip(range(count), lines, strict=False)]
    return [
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


def _events(articles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SQS batch events of these articles, each message with the attribute ingest sets."""
    from local.lambda_shapes import sqs_event

    events = []
    for start in range(0, len(articles), BATCH_SIZE):
        batch = articles[start : start + BATCH_SIZE]
        event = sqs_event(*batch)
        for record, article in zip(event["Records"], batch, strict=True):
            record["messageAttributes"]["article_id"] = {
                "stringValue": article["article_id"],
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        events.append(event)
    return events


Aws = Literal["moto", "canned"]
_CANNED_ENV = {
    "RESULTS_TABLE_NAME": "results",
    "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "TEXT_BUCKET": "texts",
    "OPENAI_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai",
    "ACTIVE_MODEL_PARAMETER": "/bench/active-model",
    "POWERTOOLS_METRICS_DISABLED": "false",
}


class _CannedBody:
    """The raw stream botocore reads a response body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.read()

    def read(self, *_: Any) -> bytes:
        body, self._body = self._body, b""
        return body


def _canned_aws() -> Callable[..., Any]:
    """A `before-send` hook answering what the handler asks of AWS for new articles."""
    from botocore.awsrequest import AWSResponse

    from categorizer.models import ActiveModel

    active = ActiveModel(model_id=MODEL_ID, taxonomy_version="iab-3.1").model_dump_json()
    by_target = {
        "DynamoDB_20120810.BatchGetItem": {"Responses": {"results": []}, "UnprocessedKeys": {}},
        "DynamoDB_20120810.UpdateItem": {},
        "DynamoDB_20120810.PutItem": {},
        "AmazonSSM.GetParameter": {
            "Parameter": {"Name": "/bench/active-model", "Type": "String", "Value": active, "Version": 1}
        },
        "secretsmanager.GetSecretValue": {"ARN": _CANNED_ENV["OPENAI_API_KEY_SECRET_ARN"], "SecretString": "sk-bench"},
    }
    answers = {target: json.dumps(body).encode() for target, body in by_target.items()}

    def answer(request: Any, **_: Any) -> Any:
        target = request.headers.get("X-Amz-Target")
        if target is None:  # S3 PutObject, the one REST call
            headers = {"ETag": '"0"', "x-amz-request-id": "bench"}
            return AWSResponse(request.url, 200, headers, _CannedBody(b""))  # type: ignore[arg-type]
        headers = {"x-amzn-requestid": "bench", "content-type": "application/x-amz-json-1.0"}
        body = answers[target.decode() if isinstance(target, bytes) else target]
        return AWSResponse(request.url, 200, headers, _CannedBody(body))  # type: ignore[arg-type]

    return answer


def handler_overhead(n_articles: int, data: Path = DATA, aws: Aws = "moto") -> tuple[dict[str, Any], cProfile.Profile]:
    os.environ.update(BENCH_ENV)
    import httpx2

    from local.openai_server.chat import chat_completion_json

    articles = livedoor_articles(data, n_articles)
    clock = EmulatorClock()
    answer = json.dumps(chat_completion_json(MODEL_ID, ANSWER, prompt_tokens=500)).encode()
    transport = httpx2.MockTransport(
        clock.wrap(lambda request: httpx2.Response(200, content=answer, headers={"content-type": "application/json"}))
    )
    if aws == "canned":
        return _with_canned_aws(transport, clock, articles)
    return _with_moto(transport, clock, articles)


def _with_canned_aws(
    transport: Any, clock: EmulatorClock, articles: list[dict[str, Any]]
) -> tuple[dict[str, Any], cProfile.Profile]:
    import boto3
    from botocore.handlers import BUILTIN_HANDLERS

    os.environ.update(_CANNED_ENV)
    # Every session made from now on (boto3's default one, Powertools parameters' own) gets the hook,
    # as moto installs its own.
    hook = ("before-send", clock.wrap(_canned_aws()))
    BUILTIN_HANDLERS.append(hook)
    try:
        boto3.setup_default_session()
        return _run(transport, clock, articles)
    finally:
        BUILTIN_HANDLERS.remove(hook)


def _with_moto(
    transport: Any, clock: EmulatorClock, articles: list[dict[str, Any]]
) -> tuple[dict[str, Any], cProfile.Profile]:
    import boto3
    from moto import mock_aws
    from moto.core.botocore_stubber import BotocoreStubber

    from categorizer.active_model import write_active_model
    from categorizer.models import ActiveModel

    stubber_call = BotocoreStubber.__call__
    BotocoreStubber.__call__ = clock.wrap(stubber_call)  # type: ignore[method-assign]
    try:
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
            os.environ.update({**_CANNED_ENV, "DLQ_URL": dlq_url, "OPENAI_API_KEY_SECRET_ARN": secret})
            return _run(transport, clock, articles)
    finally:
        BotocoreStubber.__call__ = stubber_call  # type: ignore[method-assign]


def _run(
    transport: Any, clock: EmulatorClock, articles: list[dict[str, Any]]
) -> tuple[dict[str, Any], cProfile.Profile]:
    from local.lambda_shapes import LambdaContext as context
    from local.lambda_shapes import load_module_from_file

    # The handler logs a line per article, as in Lambda; write it, but not to the terminal.
    devnull = open(os.devnull, "w")  # noqa: SIM115
    stdout, sys.stdout = sys.stdout, devnull
    to_thread = asyncio.to_thread
    try:
        app = load_module_from_file(REPO / "functions" / "categorize" / "app.py", "categorize")
        app.service = app.build_service(openai_transport=transport)  # type: ignore[attr-defined]
        # Warm-up: first clients, secret, parameter, tokenizer, taxonomy.
        app.lambda_handler(_events(articles[:BATCH_SIZE])[0], context())
        # Every measured article is a new revision with new content: each one is classified.
        events = _events([dict(a, version=2, title=a["title"] + " 2") for a in articles[BATCH_SIZE:]])
        third = len(events) // 3
        emulator0, cpu0, wall0 = clock.seconds, time.process_time(), time.perf_counter()
        for event in events[:third]:
            failures = app.lambda_handler(event, context())["batchItemFailures"]
            assert not failures, failures
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        emulator = clock.seconds - emulator0
        # The same work with every asyncio.to_thread call run inline on the event loop: what the
        # records' hand-offs to worker threads (boto3 calls, validation) cost on top.
        asyncio.to_thread = _inline
        emulator0, cpu0 = clock.seconds, time.process_time()
        for event in events[third : 2 * third]:
            app.lambda_handler(event, context())
        inline = time.process_time() - cpu0 - (clock.seconds - emulator0)
        # cProfile sees one thread: the profiled pass runs inline too.
        profiler = clock.profiler = cProfile.Profile()
        profiler.enable()
        for event in events[2 * third :]:
            app.lambda_handler(event, context())
        profiler.disable()
        clock.profiler = None
    finally:
        asyncio.to_thread = to_thread
        sys.stdout = stdout
        devnull.close()
    measured = sum(len(event["Records"]) for event in events[:third])
    measured_inline = sum(len(event["Records"]) for event in events[third : 2 * third])
    return {
        "articles": measured,
        "batch_size": BATCH_SIZE,
        "cpu_ms_per_article": round(cpu * 1000 / measured, 2),
        "emulator_cpu_ms_per_article": round(emulator * 1000 / measured, 2),
        "product_cpu_ms_per_article": round((cpu - emulator) * 1000 / measured, 2),
        "wall_ms_per_article": round(wall * 1000 / measured, 2),
        "articles_per_second_one_core": round(measured / (cpu - emulator), 1),
        "product_cpu_ms_per_article_without_threads": round(inline * 1000 / measured_inline, 2),
        **_profile_summary(profiler),
    }, profiler


def _profile_summary(profiler: cProfile.Profile, top: int = 20) -> dict[str, Any]:
    """The product's profile: shares by package, and the functions with most own and cumulative time."""
    stats = pstats.Stats(profiler)
    by_package: dict[str, float] = defaultdict(float)
    own: dict[str, float] = {}
    cumulative: dict[str, float] = {}
    for (filename, line, name), (_, _, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        key = f"{_package(filename)}:{Path(filename).name}:{line}:{name}"
        by_package[_package(filename)] += tottime
        own[key] = tottime
        if _package(filename) in ("categorizer", "functions"):
            cumulative[key] = cumtime
    total = sum(by_package.values())

    def shares(values: dict[str, float]) -> dict[str, float]:
        return {k: round(v / total, 3) for k, v in sorted(values.items(), key=lambda kv: -kv[1])[:top]}

    return {
        "profile_share_by_package": shares(by_package),
        "profile_top_own_time": shares(own),
        "profile_top_cumulative_ours": shares(cumulative),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--aws", choices=["moto", "canned"], default="canned", help="who answers AWS (see above)")
    parser.add_argument("--data", type=Path, default=DATA, help="livedoor JSONL.gz (read by path)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result, profiler = handler_overhead(args.articles, args.data, args.aws)
    result["aws"] = args.aws
    args.out.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(args.out / "overhead.prof")
    (args.out / "overhead.json").write_text(json.dumps({"handler": result}, indent=2))
    print(json.dumps({"handler": result}, indent=2))


if __name__ == "__main__":
    main()
