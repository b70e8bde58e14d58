"""An HTTP API (API Gateway v2) on loopback: routes from template.yaml's HttpApi events.

Each request becomes a payload-format-2.0 event for the routed function, run in its offline
execution environments; the function's response (statusCode, headers, body) becomes the
HTTP response, as API Gateway does it. Path parameters (`{name}`, `{name+}`) are matched.
Throttling, authorisers (the read routes' AWS_IAM included) and custom domains are not
emulated.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from local.cfn import ACCOUNT_ID
from local.provision import HttpRoute
from local.runtime import FunctionPool

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")


def route_pattern(path: str) -> re.Pattern[str]:
    """A route path as API Gateway matches it: `{name}` is one segment, `{name+}` the rest."""
    pattern = "".join(
        f"(?P<{part[1:-2]}>.+)"
        if part.endswith("+}")
        else f"(?P<{part[1:-1]}>[^/]+)"
        if part.startswith("{")
        else re.escape(part)
        for part in re.split(r"(\{[A-Za-z0-9_]+\+?\})", path)
    )
    return re.compile(pattern)


def raw_path(request: Request) -> str:
    """The path as the client sent it (escapes kept: `%2F` is not `/`), as API Gateway's rawPath."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    return str(raw).split("?", 1)[0]


def http_api_event(request: Request, route: HttpRoute, api_id: str) -> dict[str, Any]:
    """The API Gateway HTTP API payload (format 2.0) for a request."""
    body = request.get_data()
    content_type = request.headers.get("Content-Type", "")
    as_text = content_type.startswith(_TEXT_TYPES)
    if as_text:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            as_text = False
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    route_key = "$default" if route.path == "$default" else f"{route.method} {route.path}"
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path(request),
        "rawQueryString": request.query_string.decode("latin-1"),
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api_id,
            "domainName": request.host,
            "domainPrefix": request.host.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body) and not as_text,
    }
    matched = route_pattern(route.path).fullmatch(raw_path(request)) if "{" in route.path else None
    if matched:
        event["pathParameters"] = {name: unquote(value) for name, value in matched.groupdict().items()}
    if request.args:
        event["queryStringParameters"] = {key: ",".join(request.args.getlist(key)) for key in request.args}
    if request.cookies:
        event["cookies"] = [f"{key}={value}" for key, value in request.cookies.items()]
    if body:
        event["body"] = text if as_text else base64.b64encode(body).decode()
    return event


def http_response(payload: Any) -> Response:
    """API Gateway's reading of a payload-2.0 function result."""
    if isinstance(payload, dict) and "statusCode" in payload:
        body = payload.get("body") or ""
        data = base64.b64decode(body) if payload.get("isBase64Encoded") else str(body).encode()
        response = Response(data, status=int(payload["statusCode"]))
        response.headers.clear()
        for name, value in (payload.get("headers") or {}).items():
            response.headers[name] = str(value)
        for cookie in payload.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        return response
    # Without a statusCode, API Gateway answers 200 with the result as JSON.
    return Response(json.dumps(payload), status=200, content_type="application/json")


class HttpApiGateway:
    """Serves one HttpApi's routes on 127.0.0.1."""

    def __init__(self, api_id: str, routes: Iterable[tuple[HttpRoute, FunctionPool]]) -> None:
        self.api_id = api_id
        self._routes = list(routes)
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name=f"http-{api_id}")
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()

    def _match(self, request: Request) -> tuple[HttpRoute, FunctionPool] | None:
        """The exact route first, then one with path parameters, then $default (API Gateway's order)."""
        fallback = None
        parameterised = None
        path = raw_path(request)
        for route, pool in self._routes:
            if route.path == "$default":
                fallback = (route, pool)
            elif route.method not in ("ANY", request.method):
                continue
            elif route.path == request.path:
                return route, pool
            elif "{" in route.path and parameterised is None and route_pattern(route.path).fullmatch(path):
                parameterised = (route, pool)
        return parameterised or fallback

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        matched = self._match(request)
        if matched is None:
            response = Response(json.dumps({"message": "Not Found"}), status=404, content_type="application/json")
            return response(environ, start_response)
        route, pool = matched
        invocation = pool.invoke(http_api_event(request, route, self.api_id))
        if invocation.error:
            response = Response(
                json.dumps({"message": "Internal Server Error"}), status=500, content_type="application/json"
            )
        else:
            response = http_response(invocation.payload)
        response.headers["Apigw-Requestid"] = invocation.request_id
        return response(environ, start_response)
