"""ReviewFunction: the review queue's HTTP API (docs/review.md); the logic is categorizer.review.

The same routes twice: under /review for people (API Gateway's JWT authorizer; the person is the
token's `email`, else its `sub`) and under /admin/review for the operator CLI (AWS_IAM; the person
is the caller's ARN). Each route also refuses a request that reached it without that identity.

No `from __future__ import annotations` here: the event handler reads the routes' annotations at
run time to validate requests and responses.
"""

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, UnauthorizedError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from categorizer.active_model import read_active_model
from categorizer.config import ReviewSettings
from categorizer.errors import TaxonomyError
from categorizer.models import is_article_id
from categorizer.review.labels import ReviewLabels
from categorizer.review.models import MAX_PAGE_ITEMS, DecisionRequest, ItemsPage, ReviewItem, TaxonomyView
from categorizer.review.page import ReviewPage
from categorizer.review.service import InvalidDecision, ItemNotFound, ReviewService, taxonomy_view
from categorizer.review.store import DecisionConflict, InvalidCursor, ReviewStore
from categorizer.taxonomy import bundled_taxonomy
from categorizer.textstore import TextStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = ReviewSettings.from_env()
s3 = boto3.client("s3")
service = ReviewService(
    ReviewStore(boto3.resource("dynamodb").Table(settings.results_table_name)),
    TextStore(lambda: s3, settings.text_bucket),
    ReviewLabels(lambda: s3, settings.pipeline_bucket),
    bundled_taxonomy,
)
# The review page (docs/review-page.md), rendered once per instance: its sign-in form calls Cognito
# where boto3 resolves it (AWS_ENDPOINT_URL offline, so the page signs in against moto's user pool).
page = ReviewPage.render(
    Path(__file__).parent / "static" / "review.html",
    boto3.client("cognito-idp").meta.endpoint_url,
    settings.review_user_pool_client_id,
)
app = APIGatewayHttpResolver(enable_validation=True)
router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router() has no hints
ADMIN_PREFIX = "/admin/review"
DECISION_METRICS = {"accept": "ReviewAccepted", "correct": "ReviewCorrected", "skip": "ReviewSkipped"}


def _person() -> str:
    """Who is deciding: the JWT's email (else sub) on /review, the IAM caller's ARN on /admin/review."""
    authorizer = app.current_event.request_context.authorizer
    if app.current_event.raw_path.startswith(f"{ADMIN_PREFIX}/"):
        arn = authorizer.iam.user_arn if authorizer is not None else None
        if arn:
            return arn
    else:
        claims = (authorizer.jwt_claim if authorizer is not None else None) or {}
        person = claims.get("email") or claims.get("sub")
        if isinstance(person, str) and person:
            return person
    raise UnauthorizedError("no caller identity on the request")


def _article_id(encoded: str) -> str:
    # Article ids may hold "/": clients percent-encode them into one path segment.
    article_id = unquote(encoded)
    if not is_article_id(article_id):
        raise NotFoundError(f"no result for article {article_id!r}")
    return article_id


@app.get("/review")
def review_page() -> Response[str]:
    # No authorizer on this route (a browser's navigation sends no token): the page holds no data;
    # every call it makes carries the reviewer's JWT.
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=page.html, headers=page.headers)


@router.get("/items")
@tracer.capture_method
def list_items(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_ITEMS)] = 20, cursor: Annotated[str | None, Query()] = None
) -> ItemsPage:
    _person()
    return service.pending(limit, cursor)


@router.get("/items/<article_id>")
@tracer.capture_method
def get_item(article_id: str) -> ReviewItem:
    _person()
    return service.item(_article_id(article_id))


@router.post("/items/<article_id>/decision")
@tracer.capture_method
def decide(article_id: str, request: DecisionRequest) -> ReviewItem:
    by = _person()
    decided = service.decide(_article_id(article_id), request, by)
    metrics.add_metric(name=DECISION_METRICS[request.decision], unit=MetricUnit.Count, value=1)
    # Who decided is in the row (review.by); the log keeps ids only.
    log = {"article_id": decided.article_id, "revision": decided.revision, **request.model_dump()}
    logger.info("review decision", extra=log)
    return decided


@router.get("/taxonomy")
@tracer.capture_method
def taxonomy(version: Annotated[str | None, Query(min_length=1, max_length=64)] = None) -> TaxonomyView:
    _person()
    if version is None:
        version = read_active_model(settings.active_model_parameter, settings.config_cache_seconds).taxonomy_version
    try:
        return taxonomy_view(bundled_taxonomy(version))
    except TaxonomyError as error:
        raise NotFoundError(f"no bundled taxonomy {version!r}") from error


app.include_router(router, prefix="/review")
app.include_router(router, prefix=ADMIN_PREFIX)


def _problem(status: int, message: str, detail: Any = None) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"message": message}
    if detail is not None:
        body["detail"] = detail
    return Response(status_code=status, content_type="application/json", body=body)


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]  # Powertools' decorator has no hints
def _invalid_request(error: RequestValidationError) -> Response[dict[str, Any]]:
    # Field paths and reasons only: the input is not echoed.
    detail = [
        {"field": ".".join(str(part) for part in problem.get("loc", ())), "reason": problem.get("msg", "")}
        for problem in error.errors()
    ]
    return _problem(400, "invalid request", detail)


# The domain's refusals and the status each answers with.
REFUSALS: dict[type[Exception], int] = {
    InvalidDecision: 400,
    InvalidCursor: 400,
    ItemNotFound: 404,
    DecisionConflict: 409,
}


@app.exception_handler(list(REFUSALS))  # type: ignore[untyped-decorator]  # Powertools' decorator has no hints
def _refused(error: Exception) -> Response[dict[str, Any]]:
    return _problem(REFUSALS[type(error)], str(error))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
