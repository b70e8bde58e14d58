"""The chat fine-tuning file rules (categorizer.finetune.file_rules), after OpenAI's training format."""

from __future__ import annotations

from typing import Any

import pytest

from categorizer.finetune import dataset as ds
from categorizer.finetune import file_rules
from tests.support.training_examples import ANSWER, INVALID, LABELS, USER, VALID


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_examples_pass(case: str) -> None:
    # GIVEN an example in OpenAI's chat training format, THEN the rules find nothing wrong
    assert file_rules.example_problem(VALID[case]) is None


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_examples_are_named(case: str) -> None:
    # GIVEN an example that breaks one rule, THEN the problem says which
    example, expected = INVALID[case]
    problem = file_rules.example_problem(example)
    assert problem is not None and expected in problem


def test_examples_over_the_token_limit_are_billed_as_truncated() -> None:
    # GIVEN an example longer than the per-example limit, THEN OpenAI trains (and bills) the limit
    assert file_rules.billed_tokens(file_rules.MAX_EXAMPLE_TOKENS + 500) == file_rules.MAX_EXAMPLE_TOKENS
    assert file_rules.billed_tokens(120) == 120


def test_example_tokens_count_every_message_in_the_chat_formula() -> None:
    # GIVEN the same conversation with and without a tool call in it, THEN the tool turns count too
    plain = file_rules.example_tokens([USER, ANSWER])
    with_tool = file_rules.example_tokens(VALID["a tool call and its result before the answer"]["messages"])
    assert 0 < plain < with_tool


def test_the_export_applies_the_rules() -> None:
    # GIVEN one valid example and the rule-breaking ones, WHEN the export checks them
    bad: list[Any] = [example for example, _ in INVALID.values()]
    problems = ds.check_chat_examples([VALID["system, user, answer"], *bad], LABELS, file_rules.MAX_EXAMPLE_TOKENS)
    # THEN each bad one is reported with the rules' own wording, the good one is not
    assert [p.split(":")[0] for p in problems] == [f"example {i}" for i in range(2, len(bad) + 2)]
    for problem, (_, expected) in zip(problems, INVALID.values(), strict=True):
        assert expected in problem
