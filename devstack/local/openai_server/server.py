"""Run the app: in a thread of the caller (tests, demo, benchmarks) or as its own process."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from local.containers import check_container_address
from local.openai_server.app import OpenAIApp
from local.openai_server.config import OpenAIServerConfig
from local.openai_server.store import Store


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request: tests and benchmarks send thousands."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class ServerHandle:
    """A running server; `base_url` ends in /v1 (what OPENAI_BASE_URL and the SDK expect)."""

    def __init__(self, config: OpenAIServerConfig, access_log: bool = False) -> None:
        self._temp_dir = None if config.state_dir else tempfile.mkdtemp(prefix="openai-server-")
        self.state_dir = Path(config.state_dir or self._temp_dir or "")
        self.app = OpenAIApp(config, Store(self.state_dir))
        self._request_handler = WSGIRequestHandler if access_log else _QuietRequestHandler
        self._server: BaseWSGIServer = make_server(
            config.host, config.port, self.app, threaded=True, request_handler=self._request_handler
        )
        self._also_on: list[BaseWSGIServer] = []
        self.port = self._server.server_port
        host = f"[{config.host}]" if ":" in config.host else config.host
        self.root_url = f"http://{host}:{self.port}"
        self.base_url = f"{self.root_url}/v1"
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="openai-server", daemon=True
        )

    def start(self) -> ServerHandle:
        self.app.jobs.start()
        self.app.batches.start()
        self._thread.start()
        return self

    def serve_also_on(self, address: str) -> str:
        """Serve the same app on `address` too, at the same port (for containers: local/containers.py).

        Only a private, non-wildcard address (the server is meant for loopback); returns its base URL.
        """
        check_container_address(address)
        server = make_server(address, self.port, self.app, threaded=True, request_handler=self._request_handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), name="openai-server-also", daemon=True).start()
        self._also_on.append(server)
        return f"http://{address}:{self.port}/v1"

    def stop(self) -> None:
        for server in self._also_on:
            server.shutdown()
            server.server_close()
        self._also_on.clear()
        self._server.shutdown()
        self._server.server_close()
        self.app.jobs.stop()
        self.app.batches.stop()
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def serve_forever(self) -> None:
        """Serve on the calling thread (the CLI); Ctrl-C stops."""
        self.app.jobs.start()
        self.app.batches.start()
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self.app.jobs.stop()
            self.app.batches.stop()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_in_thread(config: OpenAIServerConfig | None = None) -> ServerHandle:
    return ServerHandle(config or OpenAIServerConfig()).start()
