"""A reviewer's token for the offline stack's review routes (`python -m local review-token`).

The stack's reviewers' user pool lives in the moto server, which signs its tokens with moto's
key and serves the matching JWKS; the offline gateway checks them as API Gateway's JWT
authorizer would (local.api_auth). The demo reviewer is created on first use with a fresh random
password each time (never stored or printed) and signs in as the review page would, with the
app client's USER_PASSWORD_AUTH flow; the ID token carries the `email` claim the API records.
"""

from __future__ import annotations

import secrets
from typing import Any

from local.stack import OfflineStack

DEMO_REVIEWER = "reviewer@example.com"
# How to sign in on the offline review page (printed by make local-up and make demo; docs/review-page.md).
REVIEW_PAGE_SIGN_IN = (
    "sign in: paste the token `.venv/bin/python -m local review-token` prints under “Use a token instead”"
)


def reviewer_token(stack: OfflineStack, email: str = DEMO_REVIEWER) -> str:
    """An ID token of the stack's reviewers' user pool for `email` (the user is created if missing)."""
    pool_id = stack.provisioned.outputs["ReviewUserPoolId"]
    client_id = stack.provisioned.outputs["ReviewUserPoolClientId"]
    idp: Any = stack.client("cognito-idp")
    try:
        idp.admin_get_user(UserPoolId=pool_id, Username=email)
    except idp.exceptions.UserNotFoundException:
        idp.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
            MessageAction="SUPPRESS",
        )
    # Meets any Cognito password policy: 12+ characters with lower and upper case, a digit and a symbol.
    password = f"{secrets.token_urlsafe(18)}aA1!"
    idp.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
    signed_in = idp.initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH", ClientId=client_id, AuthParameters={"USERNAME": email, "PASSWORD": password}
    )
    token: str = signed_in["AuthenticationResult"]["IdToken"]
    return token
