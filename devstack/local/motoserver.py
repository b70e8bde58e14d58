"""The AWS side of the offline stack: a moto server on loopback, in a thread of this process."""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import socket
import time
import urllib.request
from typing import Any

from moto.core.config import default_user_config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from local.containers import check_container_address

# Step Functions really runs executions; Lambda uses moto's no-Docker backend, whose Invoke
# local/lambda_dispatch.py routes to the offline functions.
MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


def speed_up_sqs() -> None:
    """Make moto's SQS cost O(1), not O(queue length), per message, with the same semantics.

    moto 5.2's ReceiveMessage checks each message's retention through GetQueueAttributes, which
    builds every attribute of the queue three times, and each build counts the visible, delayed
    and in-flight messages by scanning the queue with a datetime-based clock per message; each
    SendMessage builds the attributes once more. With a few thousand messages queued that was
    65% of the moto server's CPU (py-spy; docs/capacity.md, "Throughput benchmark"), so the
    emulator, not the system, set the pace. Reading the retention period directly and comparing
    message times with `time.time()` keeps SQS semantics. The server runs in this process, so
    patching the classes here patches it.
    """
    # moto's internals, patched as plain objects (their attributes are set dynamically).
    sqs: Any = importlib.import_module("moto.sqs.models")

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        return bool(int(queue.message_retention_period) + message.sent_timestamp / 1000 > time.time())

    sqs.SQSBackend.is_message_valid_based_on_retention_period = retained
    sqs.Message.visible = property(lambda self: time.time() * 1000 > self.visible_at)
    sqs.Message.delayed = property(lambda self: time.time() * 1000 < self.delayed_until)


def serialize_sqs_queue_updates() -> None:
    """Make moto's SQS queue updates atomic, so a message sent during a delete is not lost.

    moto 5.2's `Queue.delete_message` rebuilds the queue's message list (read the list, build
    a new one without the deleted message, assign it) without the queue's lock, while
    `add_message` appends under that lock. A SendMessageBatch handled by another server thread
    between the read and the assignment appends to the list that is about to be replaced, so
    its messages vanish: never received, never dead-lettered, the queue "drained". Under load
    (`make bench ARGS="--offered-load 2 --articles 15000"`) that lost 2 consecutive entries of
    one webhook batch. Holding the queue's lock (a reentrant Condition) for the delete and for
    the receive scan (which moves messages to the DLQ) closes the window;
    tests/emulator/test_moto_sqs.py reproduces the race deterministically.
    """
    sqs: Any = importlib.import_module("moto.sqs.models")
    if getattr(sqs.Queue.delete_message, "_serialized", False):
        return
    delete, receive = sqs.Queue.delete_message, sqs.SQSBackend.receive_message

    def locked_delete(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            delete(self, receipt_handle)

    def locked_receive(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        # A long poll still waits without the lock: Condition.wait releases it.
        with self.get_queue(queue_name)._messages_lock:
            return receive(self, queue_name, *args, **kwargs)

    locked_delete._serialized = True  # type: ignore[attr-defined]
    locked_delete.__wrapped__ = delete  # type: ignore[attr-defined]
    locked_receive.__wrapped__ = receive  # type: ignore[attr-defined]
    sqs.Queue.delete_message = locked_delete
    sqs.SQSBackend.receive_message = locked_receive


class MotoServer:
    def __init__(self, port: int = 0, *, fast_sqs: bool = True) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._also_on: list[ThreadedMotoServer] = []
        self.endpoint_url = ""
        # moto's config is process-wide: put it back on stop, for whatever else runs here (tests).
        self._saved_config = copy.deepcopy(default_user_config)
        self._saved_moto_port: str | None = None
        self._fast_sqs = fast_sqs

    def start(self, config: dict[str, Any] | None = None) -> str:
        # werkzeug logs every request at INFO: far too chatty for a demo.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        serialize_sqs_queue_updates()
        if self._fast_sqs:
            speed_up_sqs()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # In server mode moto's Step Functions calls its task services (Lambda Invoke) through
        # boto3 at localhost:$MOTO_PORT (default 5000), read at each call: point it at this server.
        self._saved_moto_port = os.environ.get("MOTO_PORT")
        os.environ["MOTO_PORT"] = str(port)
        # moto keeps its backends per process: start from an empty account.
        self._post("/moto-api/reset", {})
        self.configure(config or MOTO_CONFIG)
        return self.endpoint_url

    def serve_also_on(self, address: str) -> str:
        """Listen on `address` too, at the same port (for containers: local/containers.py); its endpoint URL.

        moto's backends are per process, so both listeners serve the same accounts. The loopback
        one stays: moto's Step Functions reaches its task services at localhost:$MOTO_PORT.
        """
        check_container_address(address)
        _, port = self._server.get_host_and_port()
        # ThreadedMotoServer binds in its thread and waits for good if that fails: bind here first.
        socket.create_server((address, port)).close()
        server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
        server.start()
        self._also_on.append(server)
        return f"http://{address}:{port}"

    def configure(self, config: dict[str, Any]) -> None:
        """moto's config endpoint (the server-mode equivalent of `mock_aws(config=...)`)."""
        self._post("/moto-api/config", config)

    def _post(self, path: str, body: dict[str, Any]) -> None:
        # The URL is the loopback server started above.
        request = urllib.request.Request(  # noqa: S310
            f"{self.endpoint_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()

    def stop(self) -> None:
        for server in self._also_on:
            server.stop()
        self._also_on.clear()
        self._server.stop()
        default_user_config.update(copy.deepcopy(self._saved_config))
        if self._saved_moto_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = self._saved_moto_port
