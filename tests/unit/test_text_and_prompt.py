"""Article text, the input budget, the event model and prompt parity (docs/design.md invariant 1)."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from categorizer.models import MAX_BODY_CHARS, ArticleEvent, describe_validation_error
from categorizer.prompt import SYSTEM_PROMPT, build_prompt, build_training_example, rate_limit_tokens
from categorizer.text import Budgeted, _split_point, cut_to_token_budget, html_to_text
from categorizer.tokens import count_tokens, encoding


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


def _cut_of_the_whole_tokenisation(text: str, budget: int) -> Budgeted:
    """The cut as it was before only a prefix was tokenised: every token, then the first `budget`."""
    ids = encoding().encode(text, disallowed_special=())
    if len(ids) <= budget:
        return Budgeted(text, len(ids), truncated=False)
    return Budgeted(encoding().decode(ids[:budget]).rstrip("\ufffd"), budget, truncated=True)


# Sentences written for these tests, repeated into bodies far over the budget.
_ENGLISH = (
    "The city's council voted 7-2 on Tuesday to widen the harbour road, after a decade of "
    "debate.\nIt won't open before 2027 (see https://news.example/roads/harbour-2027).  "
    "Residents we'll hear from next week said they'd rather see trams; others didn't care.\n\n"
)
_JAPANESE = (
    "東京都は二〇二六年度の予算案を発表した。子育て支援に約１２００億円を充てる。"
    "「身近な暮らしを良くしたい」と知事は語った。\n専門家は、財源の確保が課題だと指摘している……"
    "𠮷野家の新メニューも話題に🎉　詳しくは https://news.example/ja/2026 を参照。\n\n"
)


@pytest.mark.parametrize("sentences", [_ENGLISH, _JAPANESE, _ENGLISH + _JAPANESE], ids=["en", "ja", "mixed"])
def test_budget_cut_of_a_long_body_equals_cutting_its_whole_tokenisation(sentences: str) -> None:
    # GIVEN bodies of several thousand tokens, English, Japanese and both
    # WHEN each is cut at budgets from 0 to past its length (only a prefix is tokenised)
    # THEN text, token count and truncation equal those of tokenising the whole body
    for repeats in (1, 3, 40):
        body = (sentences * repeats).strip()
        total = count_tokens(body)
        for budget in sorted({0, 1, 2, 50, 127, 896, 1024, total - 1, total, total + 1, 3 * total}):
            assert cut_to_token_budget(body, budget) == _cut_of_the_whole_tokenisation(body, budget)


def test_text_split_at_a_split_point_tokenises_as_the_whole() -> None:
    # GIVEN random text mixing letters, marks, apostrophes, digits, punctuation, spaces, newlines,
    # slashes, CJK, emoji and characters that take several tokens
    alphabet = [*"abXY sStdlmrev'’.,!?-_/0123456789\n\r\t", *"日本語のテキスト。、「」ー々𠮷🎉é\u0301\u3000ſǅ"]
    alphabet += ["'s", "'LL", "http://x.example/a"]
    rng = random.Random(14)
    checked = 0
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        whole = encoding().encode(text, disallowed_special=())
        for at in range(1, len(text)):
            # WHEN it is tokenised in two parts at each split point the cut may use
            split = _split_point(text, at)
            if split == at:
                checked += 1
                # THEN the parts' tokens are the whole text's tokens
                head = encoding().encode(text[:split], disallowed_special=())
                assert head + encoding().encode(text[split:], disallowed_special=()) == whole, (text, split)
    assert checked > 10_000


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
