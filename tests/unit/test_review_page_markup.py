"""The review page's markup (functions/review/static/review.html), read as HTML without a browser.

What a browser test cannot see by using the page: that nothing loads from another origin, that no
handler sits in an attribute, and that every field is labelled. tests/browser/ drives the page itself.
"""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser

from categorizer.review.page import ReviewPage
from tests.support.paths import REPO

PAGE = REPO / "functions" / "review" / "static" / "review.html"
FIELDS = ("input", "textarea", "select")


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _page() -> _Elements:
    parser = _Elements()
    parser.feed(PAGE.read_text(encoding="utf-8"))
    return parser


def test_page_loads_nothing_from_another_origin() -> None:
    # GIVEN the page's elements
    page = _page()
    # THEN no element has an src, href or action outside the page's origin (no CDN), only relative
    # references, fragments or an inline data: icon
    references = [
        (tag, name, value)
        for tag, attributes in page.elements
        for name, value in attributes.items()
        if name in ("src", "href", "action", "srcset", "data")
    ]
    assert references, "expected the page to reference at least its icon"
    for tag, name, value in references:
        assert not value.startswith(("http:", "https:", "//")), (tag, name, value)
    # AND the script is inline, fetching only the API beside the page and the configured Cognito endpoint
    assert all(not attributes.get("src") for tag, attributes in page.elements if tag == "script")
    script = "".join(page.scripts)
    assert "http://" not in script and "https://" not in script
    assert "innerHTML" not in script, "data from the API is set as text, never parsed as HTML"


def test_no_handler_sits_in_an_attribute() -> None:
    # GIVEN the page's elements
    # THEN none carries an inline event handler (on…) or a javascript: URL
    for tag, attributes in _page().elements:
        assert not [name for name in attributes if name.startswith("on")], tag
        assert not any(value.strip().lower().startswith("javascript:") for value in attributes.values()), tag


def test_every_field_has_a_label_and_results_are_announced() -> None:
    # GIVEN the page's elements
    elements = _page().elements
    labelled = {attributes["for"] for tag, attributes in elements if tag == "label" and "for" in attributes}
    # THEN every form field is named by a <label for=…> (or aria-label)
    fields = [attributes for tag, attributes in elements if tag in FIELDS]
    assert fields
    for attributes in fields:
        assert attributes.get("id") in labelled or attributes.get("aria-label"), attributes
    # AND decisions are announced through a polite live region, and the help is a dialog
    assert any(
        attributes.get("aria-live") == "polite" and attributes.get("role") == "status" for _, attributes in elements
    )
    assert any(tag == "dialog" and attributes.get("id") == "help" for tag, attributes in elements)
    # AND the category picker is a combobox that controls a listbox
    [combobox] = [attributes for _, attributes in elements if attributes.get("role") == "combobox"]
    listbox_ids = {attributes.get("id") for _, attributes in elements if attributes.get("role") == "listbox"}
    assert combobox["aria-controls"] in listbox_ids


def test_served_page_names_the_sign_in_client_and_allows_only_its_own_script() -> None:
    # GIVEN the page rendered for the stack's user pool client
    served = ReviewPage.render(PAGE, "https://cognito-idp.eu-west-1.amazonaws.com", 'client"1')

    # THEN the sign-in values are filled in, escaped as attribute values
    assert 'data-cognito-endpoint="https://cognito-idp.eu-west-1.amazonaws.com"' in served.html
    assert 'data-cognito-client-id="client&quot;1"' in served.html
    # AND the policy allows exactly the page's inline script and style (by hash), no other source,
    # and connections only to the page's origin and Cognito's
    policy = dict(part.split(" ", 1) for part in served.headers["Content-Security-Policy"].split("; "))
    page = _Elements()
    page.feed(served.html)
    [script] = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self' https://cognito-idp.eu-west-1.amazonaws.com"
    assert policy["frame-ancestors"] == "'none'"
    assert served.headers["X-Content-Type-Options"] == "nosniff"


def test_served_page_without_a_user_pool_client_offers_no_password_form() -> None:
    # GIVEN an existing issuer (no app client of the stack's pool)
    served = ReviewPage.render(PAGE, "https://cognito-idp.eu-west-1.amazonaws.com", "")
    # THEN the page names no Cognito endpoint, and may connect to its own origin only
    assert 'data-cognito-endpoint=""' in served.html and 'data-cognito-client-id=""' in served.html
    assert "connect-src 'self';" in served.headers["Content-Security-Policy"]
