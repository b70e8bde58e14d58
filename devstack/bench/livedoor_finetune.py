"""Livedoor benchmark of the offline server's fine-tune (local.textmodel) on real articles.

Trains on ~80% of the livedoor corpus (split by a hash of the article id) and scores the
rest, with inputs built by the project's prompt builder at a given input token budget — the
user message is exactly what the offline "fine-tuned model" reads. Titles lose the bracketed
category names some carry (【Sports Watch】 …) so the score is not a lookup.

    .venv/bin/python bench/livedoor_finetune.py [--data PATH] [--budget N] [--epochs N]

Training is the offline fine-tune's (`fit_calibrated`, no validation file: the temperature
comes from a held-out tenth of the training split). Prints one JSON line: accuracy,
top3_accuracy, ece (10 equal-width bins on the top-1 probability, as Evaluate computes it),
mean_top1_probability, temperature, train_seconds, train_cpu_seconds, ms_per_article, n_train,
n_test, budget. train_cpu_seconds is the process's CPU time: on a shared machine it is the
steadier figure, and equals train_seconds on an idle core (`taskset -c 0`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np

from categorizer.defaults import DEFAULT_INPUT_TOKEN_BUDGET
from categorizer.finetune.evaluation import expected_calibration_error
from categorizer.prompt import build_prompt
from local.textmodel import TrainConfig, fit_calibrated

REPO = Path(__file__).resolve().parents[2]

DEFAULT_DATA = REPO.parent / "shared" / "data" / "livedoor-dev.jsonl.gz"
# Leading or trailing bracketed tags such as 【Sports Watch】, ［映画］ or [Galaxy_Report].
_TAG = r"(?:【[^】]*】|［[^］]*］|\[[^\]]*\])"
_EDGE_TAGS = re.compile(rf"^\s*(?:{_TAG}\s*)+|(?:\s*{_TAG})+\s*$")


def strip_tags(title: str) -> str:
    return _EDGE_TAGS.sub("", title).strip()


def is_train(article_id: str) -> bool:
    return int.from_bytes(hashlib.sha256(article_id.encode()).digest()[:8], "big") % 100 < 80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budget", type=int, default=DEFAULT_INPUT_TOKEN_BUDGET)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    args = parser.parse_args()

    with gzip.open(args.data, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    categories = sorted({row["category"] for row in rows})
    label_of = {name: str(i) for i, name in enumerate(categories)}

    train_x: list[str] = []
    train_y: list[str] = []
    test_x: list[str] = []
    test_y: list[str] = []
    for row in rows:
        user = build_prompt(strip_tags(row["title"]), row["body"], args.budget).messages[-1]["content"]
        xs, ys = (train_x, train_y) if is_train(row["id"]) else (test_x, test_y)
        xs.append(user)
        ys.append(label_of[row["category"]])

    started, cpu_started = time.perf_counter(), time.process_time()
    model = fit_calibrated(train_x, train_y, TrainConfig(epochs=args.epochs))
    train_seconds, train_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    # One article per call, as the server answers one chat completion per article.
    started = time.perf_counter()
    proba = np.vstack([model.predict_proba([text]) for text in test_x])
    ms_per_article = (time.perf_counter() - started) * 1000 / len(test_x)

    truth = np.array([model.labels.index(label) for label in test_y])
    ranked = np.argsort(-proba, axis=1)
    top1 = proba.max(axis=1)
    result = {
        "accuracy": round(float((ranked[:, 0] == truth).mean()), 4),
        "top3_accuracy": round(float((ranked[:, :3] == truth[:, None]).any(axis=1).mean()), 4),
        "ece": round(expected_calibration_error(top1.tolist(), (ranked[:, 0] == truth).tolist()), 4),
        "mean_top1_probability": round(float(top1.mean()), 4),
        "temperature": round(model.temperature, 4),
        "train_seconds": round(train_seconds, 2),
        "train_cpu_seconds": round(train_cpu_seconds, 2),
        "ms_per_article": round(ms_per_article, 3),
        "n_train": len(train_x),
        "n_test": len(test_x),
        "budget": args.budget,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
