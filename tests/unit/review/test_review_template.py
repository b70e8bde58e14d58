"""template.yaml's review API: people's routes behind the JWT authorizer, the tools' behind AWS_IAM."""

from __future__ import annotations

from tests.support.template import DEPLOYED, FUNCTIONS, RESOURCES


def test_review_routes_take_a_jwt_and_admin_routes_take_iam() -> None:
    # GIVEN the deployed ReviewApi's OpenAPI body
    body = DEPLOYED["Resources"]["ReviewApi"]["Properties"]["Body"]
    routes = {(path, method): spec for path, methods in body["paths"].items() for method, spec in methods.items()}
    # (the page itself takes no authorizer: a browser's navigation carries no token; docs/review-page.md)
    page = routes.pop(("/review", "get"))
    assert page["security"] == [{"NONE": []}]
    assert "ReviewFunction" in str(page["x-amazon-apigateway-integration"]["uri"])
    assert len(routes) == 8
    for (path, method), spec in routes.items():
        # THEN each route names exactly one authorizer: the JWT one for people, IAM for /admin
        expected = "AWS_IAM" if path.startswith("/admin/review/") else "ReviewerJwt"
        assert [list(entry) for entry in spec["security"]] == [[expected]], (path, method)
        # AND the same function serves both families
        assert "ReviewFunction" in str(spec["x-amazon-apigateway-integration"]["uri"])
    assert {p.removeprefix("/admin") for p, _ in routes} == {p for p, _ in routes if not p.startswith("/admin")}


def test_the_jwt_authorizer_trusts_the_stacks_user_pool_unless_an_issuer_is_given() -> None:
    jwt = RESOURCES["ReviewApi"]["Properties"]["Auth"]["Authorizers"]["ReviewerJwt"]["JwtConfiguration"]
    [condition, created, given] = jwt["issuer"]["Fn::If"]
    assert condition == "CreateReviewUserPool" and given == {"Ref": "ReviewJwtIssuer"}
    assert "${ReviewUserPool}" in created["Fn::Sub"]
    assert jwt["audience"] == [
        {"Fn::If": ["CreateReviewUserPool", {"Ref": "ReviewUserPoolClient"}, {"Ref": "ReviewJwtAudience"}]}
    ]
    for pool_resource in ("ReviewUserPool", "ReviewUserPoolClient"):
        assert RESOURCES[pool_resource]["Condition"] == "CreateReviewUserPool"
    # AND the pool takes no self sign-up, and its client keeps no secret (a browser page uses it)
    assert RESOURCES["ReviewUserPool"]["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert RESOURCES["ReviewUserPoolClient"]["Properties"]["GenerateSecret"] is False


def test_review_function_may_touch_only_the_queue_the_texts_and_reviewed_labels() -> None:
    [statements] = [p["Statement"] for p in FUNCTIONS["ReviewFunction"]["Properties"]["Policies"]]
    by_sid = {s["Sid"]: (s["Action"], s["Resource"]) for s in statements}
    assert by_sid["ReviewQueueRead"] == (["dynamodb:Query"], {"Fn::Sub": "${ResultsTable.Arn}/index/ReviewQueueIndex"})
    assert by_sid["ReviewedLabelsWrite"] == (["s3:PutObject"], {"Fn::Sub": "${PipelineBucket.Arn}/labels/reviewed/*"})
    assert by_sid["TextStoreRead"] == (["s3:GetObject"], {"Fn::Sub": "${TextBucket.Arn}/texts/*"})
    assert set(by_sid["ResultsReview"][0]) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
