"""Article text, the input budget, the event model and prompt parity (docs/design.md invariant 1)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from categorizer.models import MAX_BODY_CHARS, ArticleEvent, describe_validation_error
from categorizer.prompt import SYSTEM_PROMPT, build_prompt, build_training_example, rate_limit_tokens
from categorizer.text import cut_to_token_budget, html_to_text
from categorizer.tokens import count_tokens


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "article_id": "a1",
        "url": "https://x.example/a1",
        "title": "Title",
        "body": "Body text.",
        "version": 1,
    }
    base.update(overrides)
    return base


def test_html_to_text_drops_markup_scripts_styles_and_decodes_entities() -> None:
    html = (
        "<html><head><title>t</title><style>.a{}</style></head><body><h1>Big&nbsp;news</h1>"
        "<p>Tom &amp; Jerry &#12354; &quot;ok&quot;</p><script>alert(1)</script><p>  second   para </p></body></html>"
    )
    assert html_to_text(html) == 'Big news\n\nTom & Jerry あ "ok"\n\nsecond para'


def test_full_width_forms_are_normalised() -> None:
    assert html_to_text("<p>ＡＢＣ１２３　テスト</p>") == "ABC123 テスト"


def test_budget_cut_keeps_whole_characters_of_japanese() -> None:
    text = "日本語の記事本文です。" * 200
    cut = cut_to_token_budget(text, 50)
    assert cut.truncated and cut.tokens == 50
    assert "\ufffd" not in cut.text and text.startswith(cut.text)
    assert count_tokens(cut.text) <= 50


def test_html_only_body_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValidationError) as caught:
        ArticleEvent.model_validate(event(body="<div><script>x()</script><style>p{}</style></div>"))
    assert "body has no text once HTML markup" in describe_validation_error(caught.value)


def test_oversized_body_is_rejected_naming_the_limit() -> None:
    with pytest.raises(ValidationError) as caught:
        ArticleEvent.model_validate(event(body="x" * (MAX_BODY_CHARS + 1)))
    assert f"body: String should have at most {MAX_BODY_CHARS} characters" in describe_validation_error(caught.value)


def test_nul_byte_and_missing_version_are_rejected() -> None:
    with pytest.raises(ValidationError, match="control character U\\+0000"):
        ArticleEvent.model_validate(event(body="a\x00b"))
    with pytest.raises(ValidationError, match="either version or updated_at is required"):
        ArticleEvent.model_validate(event(version=None))


def test_updated_at_orders_revisions_when_no_version() -> None:
    older = ArticleEvent.model_validate(event(version=None, updated_at="2026-11-25T08:00:00Z"))
    newer = ArticleEvent.model_validate(event(version=None, updated_at="2026-11-25T08:00:01+00:00"))
    assert newer.revision > older.revision


def test_japanese_article_is_accepted() -> None:
    article = ArticleEvent.model_validate(event(title="サッカー日本代表が勝利", body="<p>試合は２対１で終了。</p>"))
    assert article.text == "試合は2対1で終了。"


def test_training_example_is_the_live_prompt_plus_the_label() -> None:
    # GIVEN the same article for training and live use
    live = build_prompt("Title", "Body " * 2000, 128)
    example = build_training_example(build_prompt("Title", "Body " * 2000, 128), "42")
    # THEN the training messages are exactly the live ones plus the assistant label
    assert example["messages"][:-1] == live.messages
    assert example["messages"][-1] == {"role": "assistant", "content": "42"}
    assert live.messages[0]["content"] == SYSTEM_PROMPT
    assert live.truncated


def test_prompt_respects_the_budget_and_fingerprint_tracks_content() -> None:
    prompt = build_prompt("A title", "word " * 5000, 64)
    assert count_tokens(prompt.messages[1]["content"]) <= 64 + 2
    assert prompt.fingerprint == build_prompt("A title", "word " * 5000, 64).fingerprint
    assert prompt.fingerprint != build_prompt("A title", "word " * 5000, 65).fingerprint


def test_rate_limit_tokens_count_as_the_account_does() -> None:
    # GIVEN a Japanese prompt (a title of 20 characters and a body of 400)
    prompt = build_prompt("東京の天気予報は晴れのち曇りです今日は", "今日は晴れ。" * 66 + "明日", 1024)
    characters = sum(len(m["content"]) for m in prompt.messages)
    # WHEN counted for the rate limit with one completion token
    # THEN tiktoken's way it is the prompt's tokens + 1, OpenAI's way characters / 4 (rounded up) + 1
    assert rate_limit_tokens(prompt, 1, "tiktoken") == prompt.prompt_tokens + 1
    assert rate_limit_tokens(prompt, 1, "characters") == -(-characters // 4) + 1
    # AND for Japanese the character estimate is well below tiktoken's count
    assert rate_limit_tokens(prompt, 1, "characters") < 0.6 * rate_limit_tokens(prompt, 1, "tiktoken")
