"""template.yaml for the read API: IAM authorisation on every read route, the by-URL index, least privilege."""

from __future__ import annotations

from categorizer.read.reader import URL_INDEX
from tests.support.template import DEPLOYED, FUNCTIONS, RESOURCES

READ_ROUTES = {("/articles/{article_id}", "get"), ("/categories", "get"), ("/categories/batch-get", "post")}


def _api_body() -> dict[str, object]:
    body: dict[str, object] = DEPLOYED["Resources"]["IngestApi"]["Properties"]["Body"]
    return body


def test_every_read_route_requires_iam_sigv4_in_the_transformed_template() -> None:
    # GIVEN the HTTP API as deployed (after the SAM transform)
    body = _api_body()
    paths = body["paths"]
    assert isinstance(paths, dict)
    # THEN every read route requires the AWS_IAM (SigV4) security scheme
    for path, method in READ_ROUTES:
        assert paths[path][method]["security"] == [{"AWS_IAM": []}], (path, method)
    schemes = body["components"]["securitySchemes"]  # type: ignore[index]
    assert schemes["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    # AND the webhook keeps its own HMAC signature, not IAM
    assert "security" not in paths["/articles"]["post"]


def test_the_by_url_index_is_the_one_the_reader_queries_and_read_is_least_privilege() -> None:
    # GIVEN the table's indexes and the read function's policy
    indexes = RESOURCES["ResultsTable"]["Properties"]["GlobalSecondaryIndexes"]
    [index] = [i for i in indexes if i["IndexName"] == URL_INDEX]
    assert index["KeySchema"] == [{"AttributeName": "canonical_url", "KeyType": "HASH"}]
    [statement] = FUNCTIONS["ReadFunction"]["Properties"]["Policies"][0]["Statement"]
    # THEN it may only read
    assert sorted(statement["Action"]) == ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"]
    assert {"Fn::Sub": f"${{ResultsTable.Arn}}/index/{URL_INDEX}"} in statement["Resource"]
