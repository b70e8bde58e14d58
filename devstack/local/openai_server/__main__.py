"""python -m local.openai_server --port 8600 --state-dir .state/openai [--rpm 500 --tpm 200000 ...]"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import get_args

from categorizer.limiter import TokenCounting
from local.openai_server.config import OpenAIServerConfig
from local.openai_server.server import ServerHandle

# CLI flag -> config field, for the settings that are plain numbers.
NUMERIC_FLAGS = {
    "rpm": int, "tpm": int, "bucket_seconds": float, "latency_ms": float, "jitter_ms": float,
    "error_rate": float, "spike_rate": float, "spike_ms": float, "slow_rate": float, "slow_ms": float,
    "junk_mass": float, "job_stage_delay_ms": float,
    "batch_queue_tokens": int, "batch_max_requests": int, "batch_max_file_bytes": int,
    "batch_line_delay_ms": float, "batch_expire_after_requests": int, "batch_error_rate": float,
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--token-counting", choices=get_args(TokenCounting))
    for name, kind in NUMERIC_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind)
    args = vars(parser.parse_args())
    config = OpenAIServerConfig.model_validate({k: v for k, v in args.items() if v is not None})
    handle = ServerHandle(config, access_log=True)
    print(f"OpenAI-compatible server on {handle.base_url} (state in {handle.state_dir})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        handle.serve_forever()


if __name__ == "__main__":
    main()
