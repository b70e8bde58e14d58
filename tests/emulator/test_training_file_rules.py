"""The offline server judges a training file by the export's own rules (categorizer.finetune.file_rules)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from categorizer.finetune import dataset as ds
from categorizer.finetune import file_rules
from local.openai_server.validation import InvalidFile, parse_training_file
from tests.emulator.support import training_lines
from tests.support.training_examples import INVALID, LABELS, VALID

CASES: dict[str, tuple[dict[str, Any], bool]] = {
    **{name: (example, True) for name, example in VALID.items()},
    **{name: (example, False) for name, (example, _) in INVALID.items() if isinstance(example, dict)},
}


def _emulator_accepts(example: dict[str, Any]) -> bool:
    # the example first, then ten good ones, so only it can fail the file
    content = "\n".join([json.dumps(example), *training_lines()[:10]]).encode()
    try:
        parse_training_file(content)
    except InvalidFile:
        return False
    return True


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_emulator_and_the_export_judge_each_example_alike(case: str) -> None:
    # GIVEN an example that follows OpenAI's training format, or breaks one of its rules
    example, valid = CASES[case]
    # WHEN the export checks it and the offline server parses a file holding it
    export_accepts = not ds.check_chat_examples([example], LABELS, file_rules.MAX_EXAMPLE_TOKENS)
    # THEN both come to the same verdict, the one the rules give
    assert export_accepts is valid
    assert _emulator_accepts(example) is valid


def test_a_developer_message_fails_the_job_file_with_the_rules_wording() -> None:
    # GIVEN a training file whose first example carries a developer message (chat completions only)
    example = {"messages": [{"role": "developer", "content": "x"}, *json.loads(training_lines()[0])["messages"]]}
    content = "\n".join([json.dumps(example), *training_lines()[:10]]).encode()
    # WHEN the offline server parses it THEN it names the example, the message and the role
    with pytest.raises(InvalidFile, match=r"Example 1: message 1: invalid role in message: 'developer'"):
        parse_training_file(content)
