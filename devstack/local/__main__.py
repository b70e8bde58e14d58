"""`python -m local {demo,up,invoke,dashboard,review-token}`: the offline stack's commands (docs/offline.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from local.review_auth import DEMO_REVIEWER, REVIEW_PAGE_SIGN_IN, reviewer_token
from local.stack import STACK_NAME, STATE_FILE, OfflineStack, StackOptions


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def invoke(args: argparse.Namespace) -> int:
    """Like `sam local invoke`: the response on stdout, the function's logs on stderr."""
    from local.demo_run import ensure_active_model

    event = json.loads(Path(args.event).read_text(encoding="utf-8")) if args.event else {}
    overrides = _pairs(args.env)
    stack = OfflineStack.attach()
    owned = stack is None
    if stack is None:
        _log("no running stack (make local-up): starting one for this invocation")
        options = StackOptions(parameter_overrides=_pairs(args.parameter_overrides))
        stack = OfflineStack.start(options, progress=lambda line: _log(f"  {line}"))
    elif args.parameter_overrides:
        raise SystemExit("--parameter-overrides needs a fresh stack: stop `make local-up` first")
    try:
        if owned:
            ensure_active_model(stack)
        invocation = stack.invoke(args.function, event, overrides, log_path=Path("/dev/stderr"))
    finally:
        if owned:
            stack.stop()
    _log(f"REPORT RequestId: {invocation.request_id} Duration: {invocation.duration_ms:.2f} ms")
    print(json.dumps(invocation.payload, indent=2, ensure_ascii=False))
    return 1 if invocation.error else 0


def up(args: argparse.Namespace) -> int:
    """Start the stack and keep it running (pollers, HTTP APIs) until Ctrl-C."""
    from local.demo_run import ensure_active_model

    try:
        options = StackOptions(
            parameter_overrides=_pairs(args.parameter_overrides),
            queue_visibility_timeout=args.visibility_timeout,
            container_address=args.container_address,
        )
    except ValueError as error:
        raise SystemExit(str(error)) from None
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with OfflineStack.start(options) as stack:
        print("fine-tuning a demo model so the functions have one to use …", flush=True)
        ensure_active_model(stack)
        stack.serve_http_apis()
        stack.start_pollers()
        stack.record_outputs()
        stack.write_state()
        sam_env_file = stack.write_sam_env_file()
        aws = stack.endpoints.aws_endpoint_url
        outputs = stack.local_outputs()
        print("\nthe offline stack is up (Ctrl-C to stop)")
        print(f"  AWS (moto):        {aws}")
        print(f"  OpenAI-compatible: {stack.endpoints.openai_base_url}")
        for name, value in outputs.items():
            if value.startswith("http://"):
                print(f"  {name}:{' ' * max(1, 18 - len(name))}{value}")
        print(f"  review page:       {outputs['ReviewApiUrl']}/review   (docs/review-page.md)")
        print(f"    {REVIEW_PAGE_SIGN_IN}")
        print(f"  state: {STATE_FILE}   logs: {options.state_dir / 'logs'}/")
        print(f"\nin another shell (the tools read stack {STACK_NAME!r}'s outputs from moto):")
        print(
            f"  export AWS_ENDPOINT_URL={aws} AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline "
            f"AWS_DEFAULT_REGION={stack.endpoints.region}"
        )
        print("\nthen:")
        print("  .venv/bin/python -m tools publish devstack/local/demo/articles.jsonl")
        print("  .venv/bin/python -m tools dlq list")
        print("  .venv/bin/python -m tools finetune list")
        print("  .venv/bin/python -m tools alarms          # the alarms (stored, not evaluated offline)")
        print(f"  aws cloudwatch get-dashboard --dashboard-name {outputs.get('DashboardName', '')}")
        print(f"  aws dynamodb scan --table-name {outputs.get('ResultsTableName', '')}")
        print("  .venv/bin/python -m local invoke CategorizeFunction -e events/sqs-batch.json")
        signed = ".local-state/ingest-http.json"
        print(f"  .venv/bin/python -m tools sign-event events/ingest-http.json --stack offline -o {signed}")
        print(f"  .venv/bin/python -m local invoke IngestFunction -e {signed}")
        print(
            f"  with Docker: sam build && sam local invoke IngestFunction -e {signed} "
            f"--env-vars {os.path.relpath(sam_env_file)} --region {stack.endpoints.region}",
            flush=True,
        )
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
        finally:
            STATE_FILE.unlink(missing_ok=True)
            sam_env_file.unlink(missing_ok=True)
    return 0


def dashboard(args: argparse.Namespace) -> int:
    """Draw the dashboard as the offline stack created it in moto (the running one, or a fresh one)."""
    import tempfile

    from local.dashboard import render

    stack = OfflineStack.attach()
    owned = stack is None
    if stack is None:
        options = StackOptions(start_openai=False, state_dir=Path(tempfile.mkdtemp(prefix="local-dashboard-")))
        stack = OfflineStack.start(options, progress=lambda line: _log(f"  {line}"))
    try:
        name = stack.provisioned.outputs["DashboardName"]
        body = stack.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"]
    finally:
        if owned:
            stack.stop()
    render(json.loads(body), Path(args.png))
    _log(f"dashboard {name} drawn to {args.png}")
    return 0


def review_token(args: argparse.Namespace) -> int:
    """A reviewer's JWT for the running stack's review routes, on stdout (docs/review.md)."""
    stack = OfflineStack.attach()
    if stack is None:
        raise SystemExit("no running stack: start it with `make local-up`")
    print(reviewer_token(stack, args.email))
    review_url = stack.local_outputs().get("ReviewApiUrl")
    _log(f"ID token of {args.email}; send it as `Authorization: Bearer …` to {review_url}/review/…")
    return 0


def demo(_: argparse.Namespace) -> int:
    from local.demo_run import run

    return run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="the offline walk-through (make demo)").set_defaults(run=demo)

    up_parser = commands.add_parser("up", help="keep the offline stack running (make local-up)")
    up_parser.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE")
    up_parser.add_argument(
        "--visibility-timeout", type=int, default=None, help="seconds; overrides the template's queues"
    )
    up_parser.add_argument(
        "--container-address",
        metavar="ADDRESS",
        help="also serve AWS and OpenAI on this private address, e.g. the Docker bridge's 172.17.0.1, "
        "for `sam local invoke` on Linux (docs/offline.md)",
    )
    up_parser.set_defaults(run=up)

    dashboard_parser = commands.add_parser("dashboard", help="draw the template's dashboard layout as a PNG")
    dashboard_parser.add_argument("--png", default="docs/dashboard.png")
    dashboard_parser.set_defaults(run=dashboard)

    token_parser = commands.add_parser("review-token", help="a reviewer's JWT for the review routes")
    token_parser.add_argument("--email", default=DEMO_REVIEWER, help="the reviewer (created if missing)")
    token_parser.set_defaults(run=review_token)

    invoke_parser = commands.add_parser("invoke", help="run one function once, like `sam local invoke`")
    invoke_parser.add_argument("function", help="the function's logical id in template.yaml")
    invoke_parser.add_argument("-e", "--event", help="event JSON file (events/…)")
    invoke_parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE", help="extra environment")
    invoke_parser.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE")
    invoke_parser.set_defaults(run=invoke)

    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
