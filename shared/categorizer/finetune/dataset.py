"""ExportDataset's logic: labelled articles → validated, split chat-format JSONL.

Examples come from `build_prompt` + `build_training_example`, the builder the categorize
function uses (docs/design.md invariant 1), with the same input token budget.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from categorizer.finetune import file_rules
from categorizer.finetune.errors import DatasetInvalid
from categorizer.finetune.models import ClassCount, LabelledArticle, TokenEstimate
from categorizer.models import describe_validation_error
from categorizer.pricing import Prices
from categorizer.prompt import ChatMessage, build_prompt, build_training_example
from categorizer.taxonomy import Taxonomy

MAX_REPORTED_PROBLEMS = 20

Example = dict[str, list[ChatMessage]]


@dataclass(frozen=True)
class SourceLine:
    where: str  # "labels/batch-1.jsonl:17", for error messages
    text: str


@dataclass(frozen=True)
class Dataset:
    train: list[Example]
    validation: list[Example]
    counts: dict[str, int]
    class_counts: dict[str, ClassCount]
    too_few: list[str]
    classes_without_examples: int


def parse_labelled(lines: Iterable[SourceLine]) -> tuple[list[LabelledArticle], int]:
    """Parse every line; any invalid line fails the export, naming the first few."""
    articles: list[LabelledArticle] = []
    problems: list[str] = []
    read = 0
    for line in lines:
        if not line.text.strip():
            continue
        read += 1
        try:
            articles.append(LabelledArticle.model_validate_json(line.text))
        except ValidationError as error:
            problems.append(f"{line.where}: {describe_validation_error(error)}")
    if problems:
        raise DatasetInvalid(_summarise(f"{len(problems)} invalid labelled record(s)", problems))
    return articles, read


def build_dataset(
    articles: Sequence[LabelledArticle],
    taxonomy: Taxonomy,
    *,
    input_token_budget: int,
    validation_fraction: float,
    seed: int,
    min_examples_per_class: int,
) -> Dataset:
    unknown = sorted({a.category_id for a in articles if a.category_id not in taxonomy.by_id})
    if unknown:
        raise DatasetInvalid(
            _summarise(
                f"{len(unknown)} category id(s) not in taxonomy {taxonomy.version}",
                [repr(c) for c in unknown],
            )
        )
    # An article labelled twice (re-imported, corrected): its latest revision wins, then file order.
    latest: dict[str, LabelledArticle] = {}
    for article in articles:
        kept = latest.get(article.article_id)
        if kept is None or article.revision >= kept.revision:
            latest[article.article_id] = article
    # Identical prompts (syndicated copies) count once; identical prompts with different labels
    # would teach the model noise, so they are dropped and reported.
    by_prompt: dict[str, tuple[Example, set[str]]] = {}
    for article in latest.values():
        prompt = build_prompt(article.title, article.text, input_token_budget)
        label = taxonomy.by_id[article.category_id].label
        entry = by_prompt.setdefault(prompt.fingerprint, (build_training_example(prompt, label), set()))
        entry[1].add(label)
    examples_by_label: dict[str, list[Example]] = defaultdict(list)
    conflicting = 0
    for example, labels in by_prompt.values():
        if len(labels) > 1:
            conflicting += 1
            continue
        examples_by_label[next(iter(labels))].append(example)

    rng = random.Random(seed)
    train: list[Example] = []
    validation: list[Example] = []
    class_counts: dict[str, ClassCount] = {}
    for label in sorted(examples_by_label, key=int):
        group = examples_by_label[label]
        rng.shuffle(group)
        # Stratified: each class gives its share; a class of one stays in training.
        n_validation = min(len(group) - 1, round(len(group) * validation_fraction))
        validation.extend(group[:n_validation])
        train.extend(group[n_validation:])
        category = taxonomy.by_label[label]
        class_counts[category.id] = ClassCount(
            label=label, name=category.name, train=len(group) - n_validation, validation=n_validation
        )
    rng.shuffle(train)
    rng.shuffle(validation)
    too_few = [cid for cid, c in class_counts.items() if c.train + c.validation < min_examples_per_class]
    counts = {
        "records_read": len(articles),
        "articles": len(latest),
        "duplicate_records": len(articles) - len(latest),
        "duplicate_prompts": len(latest) - len(by_prompt),
        "conflicting_prompts_dropped": conflicting,
        "examples": len(train) + len(validation),
        "train": len(train),
        "validation": len(validation),
        "classes": len(class_counts),
    }
    return Dataset(
        train=train,
        validation=validation,
        counts=counts,
        class_counts=class_counts,
        too_few=too_few,
        classes_without_examples=len(taxonomy.categories) - len(class_counts),
    )


def check_chat_examples(
    examples: Sequence[Mapping[str, Any]], labels: Iterable[str], max_example_tokens: int
) -> list[str]:
    """OpenAI's rules for a chat fine-tuning file (`file_rules`), plus: answers are labels that fit whole."""
    valid_labels = frozenset(labels)
    problems: list[str] = []
    for index, example in enumerate(examples, start=1):
        where = f"example {index}"
        problem = file_rules.example_problem(example)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        messages = example["messages"]
        if messages[-1]["content"] not in valid_labels:
            problems.append(f"{where}: answer {messages[-1]['content']!r} is not a label of the taxonomy")
        # OpenAI would truncate a longer example, cutting the answer at its end: refuse it instead.
        tokens = file_rules.example_tokens(messages)
        if tokens > max_example_tokens:
            problems.append(f"{where}: {tokens} tokens, above the {max_example_tokens} per-example limit")
    return problems


def validate_dataset(dataset: Dataset, taxonomy: Taxonomy, max_example_tokens: int) -> None:
    problems: list[str] = []
    if len(dataset.train) < file_rules.MIN_EXAMPLES:
        problems.append(
            f"{len(dataset.train)} training examples; OpenAI needs at least {file_rules.MIN_EXAMPLES} "
            f"({dataset.counts['examples']} usable examples in total before the split)"
        )
    if not dataset.validation:
        problems.append("no validation examples (every class has a single example)")
    labels = [c.label for c in taxonomy.categories]
    problems += check_chat_examples(dataset.train, labels, max_example_tokens)
    problems += check_chat_examples(dataset.validation, labels, max_example_tokens)
    if problems:
        raise DatasetInvalid(_summarise("the dataset is not valid for fine-tuning", problems))


def estimate_tokens(dataset: Dataset, n_epochs: int, prices: Prices, max_example_tokens: int) -> TokenEstimate:
    """OpenAI bills tokens in the training file × epochs; longer examples are cut at the limit."""
    tokens = file_rules.example_tokens
    train_tokens = sum(file_rules.billed_tokens(tokens(e["messages"]), max_example_tokens) for e in dataset.train)
    validation_tokens = sum(tokens(e["messages"]) for e in dataset.validation)
    longest = max((tokens(e["messages"]) for e in dataset.train), default=0)
    return TokenEstimate(
        train_tokens=train_tokens,
        validation_tokens=validation_tokens,
        max_example_tokens=longest,
        n_epochs=n_epochs,
        billed_training_tokens=train_tokens * n_epochs,
        price_per_million_usd=prices.training,
        estimated_cost_usd=round(prices.training_cost(train_tokens, n_epochs), 6),
    )


def to_jsonl(examples: Iterable[Example]) -> bytes:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples).encode("utf-8")


def _summarise(headline: str, problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:MAX_REPORTED_PROBLEMS])
    more = f" (and {len(problems) - MAX_REPORTED_PROBLEMS} more)" if len(problems) > MAX_REPORTED_PROBLEMS else ""
    return f"{headline}: {shown}{more}"
