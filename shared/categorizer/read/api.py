"""The read API's routes (docs/read-api.md) on Powertools' APIGatewayHttpResolver.

Responses other than 200 are raised as `_Reply` and rendered by one exception handler: the
resolver validates a route's return value against its return annotation, and a 404 or 410
body is not the 200 model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from categorizer.models import MAX_URL_CHARS, is_article_id
from categorizer.read.models import (
    ArticleCategory,
    BatchGetRequest,
    BatchGetResponse,
    BatchItem,
    ErrorResponse,
    Problem,
    Removed,
)
from categorizer.read.reader import Answer, Found, ResultReader
from categorizer.urls import InvalidUrl, canonical_url

TITLE = "article-categorizer read API"
VERSION = "1.0.0"
_JSON = "application/json"


class _Reply(Exception):
    """A response other than the route's 200 model (an exception only to leave the route)."""

    def __init__(self, status: int, body: BaseModel | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _bad_request(message: str, field: str) -> _Reply:
    return _Reply(400, ErrorResponse(message=message, errors=[Problem(field=field, reason=message)]))


def _field(error: Mapping[str, Any]) -> str:
    """The problem's field path; a body that is not JSON at all is "(body)" (its loc is a character offset)."""
    if error.get("type") == "json_invalid":
        return "(body)"
    return ".".join(str(part) for part in error["loc"] if part != "body") or "(body)"


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: "*" or a list of entity tags, compared weakly."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _error_responses(*statuses: int) -> dict[int, OpenAPIResponse]:
    descriptions = {
        400: "the request is malformed; `errors` names each problem",
        404: "no result is stored for it",
        410: "the article was removed (unpublished or erased)",
    }
    return {
        status: {
            "description": descriptions[status],
            "content": {_JSON: {"model": Removed if status == 410 else ErrorResponse}},
        }
        for status in statuses
    }


def build_resolver(reader: ResultReader, *, cache_max_age_seconds: int) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    cache_control = f"max-age={cache_max_age_seconds}"

    # Powertools' exception_handler decorator is untyped.
    @app.exception_handler(_Reply)  # type: ignore[untyped-decorator]
    def _reply(reply: _Reply) -> Response[str]:
        return Response(
            status_code=reply.status,
            content_type=_JSON if reply.body is not None else None,
            body=reply.body.model_dump_json() if reply.body is not None else "",
            headers=reply.headers,
        )

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid(error: RequestValidationError) -> Response[str]:
        problems = [Problem(field=_field(e), reason=e["msg"]) for e in error.errors()]
        message = "the request is invalid: " + "; ".join(f"{p.field}: {p.reason}" for p in problems)
        return Response(400, _JSON, ErrorResponse(message=message, errors=problems).model_dump_json())

    def _single(found: Answer | None, what: str) -> Response[ArticleCategory]:
        if found is None:
            raise _Reply(404, ErrorResponse(message=f"no result for {what}"), {"Cache-Control": "no-store"})
        headers = {"ETag": found.etag, "Cache-Control": cache_control}
        if _matches(app.current_event.headers.get("if-none-match"), found.etag):
            raise _Reply(304, None, headers)
        if not isinstance(found, Found):
            raise _Reply(410, found.removed, headers)
        return Response(200, _JSON, found.result, headers)

    @app.get(
        "/articles/<article_id>",
        summary="The result of one article",
        description=(
            "The stored category of the article's latest revision. An id holding '/' is sent as %2F. "
            "Send If-None-Match with a previous ETag to get 304 when it has not changed."
        ),
        responses={
            200: {"description": "the result", "content": {_JSON: {"model": ArticleCategory}}},
            304: {"description": "unchanged since the ETag given in If-None-Match", "content": {}},
            **_error_responses(400, 404, 410),
        },
    )
    def get_article(article_id: str) -> Response[ArticleCategory]:
        decoded = unquote(article_id)
        if not is_article_id(decoded):
            raise _bad_request("not an article id: [A-Za-z0-9] then up to 255 of A-Za-z0-9._:/@+=-", "article_id")
        return _single(reader.by_id(decoded), f"article {decoded!r}")

    @app.get(
        "/categories",
        summary="The result for a page URL",
        description=(
            "The URL is reduced to its canonical form first (docs/read-api.md). When several articles "
            "share it, the live one categorised most recently answers."
        ),
        responses={
            200: {"description": "the result", "content": {_JSON: {"model": ArticleCategory}}},
            304: {"description": "unchanged since the ETag given in If-None-Match", "content": {}},
            **_error_responses(400, 404, 410),
        },
    )
    def get_categories(
        url: Annotated[str, Query(description="the page URL, http(s)", min_length=1, max_length=MAX_URL_CHARS)],
    ) -> Response[ArticleCategory]:
        try:
            canonical = canonical_url(url)
        except InvalidUrl as error:
            raise _bad_request(str(error), "url") from None
        return _single(reader.by_url(canonical), "that URL")

    @app.post(
        "/categories/batch-get",
        summary="Results for up to 100 article ids and page URLs",
        description="One item per key, in request order (ids, then URLs); for warming a cache.",
        responses={
            200: {"description": "one item per key", "content": {_JSON: {"model": BatchGetResponse}}},
            **_error_responses(400),
        },
    )
    def batch_get(request: BatchGetRequest) -> BatchGetResponse:
        canonical: list[str] = []
        for index, url in enumerate(request.urls):
            try:
                canonical.append(canonical_url(url))
            except InvalidUrl as error:
                raise _bad_request(str(error), f"urls.{index}") from None
        by_id = reader.by_ids(request.article_ids) if request.article_ids else {}
        items = [_batch_item(by_id[article_id], article_id=article_id) for article_id in request.article_ids]
        # The index cannot be read by BatchGetItem: one Query per URL.
        items += [_batch_item(reader.by_url(key), url=url) for url, key in zip(request.urls, canonical, strict=True)]
        return BatchGetResponse(items=items)

    return app


def _batch_item(found: Answer | None, *, article_id: str | None = None, url: str | None = None) -> BatchItem:
    if found is None:
        return BatchItem(article_id=article_id, url=url, status="not_found")
    if isinstance(found, Found):
        return BatchItem(article_id=article_id, url=url, status="found", result=found.result)
    return BatchItem(article_id=article_id, url=url, status="removed")


def openapi_json(app: APIGatewayHttpResolver) -> str:
    """The schema as committed in docs/read-api.openapi.json."""
    schema = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))
    # Powertools lists its 422 on every route; this API answers request validation errors with
    # 400 and ErrorResponse instead (the RequestValidationError handler above).
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
