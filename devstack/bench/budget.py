"""Input token budget study: top-1 accuracy and cost per 1,000 articles against the budget.

For each budget, every livedoor article becomes a prompt through the project's one prompt
builder (`categorizer.prompt.build_prompt`); the offline server's fine-tune
(`local.textmodel`) trains on ~80% (split by a hash of the id) and is scored on the rest.
Cost per 1,000 articles is fine-tuned gpt-4o-mini inference (`categorizer.pricing`) for the
mean prompt tokens plus the one label token. The default budget (`categorizer.defaults`) is
the cheapest one within one point of the best accuracy.

    .venv/bin/python bench/budget.py [--data PATH] [--budgets 64,128,256,512,1024,full]

Writes bench/results/budget.json and bench/results/budget.png, prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.livedoor_finetune import DEFAULT_DATA, is_train, strip_tags
from categorizer.defaults import DEFAULT_INPUT_TOKEN_BUDGET
from categorizer.pricing import Prices
from categorizer.prompt import build_prompt
from local.textmodel import fit

REPO = Path(__file__).resolve().parents[2]

RESULTS = Path(__file__).resolve().parent / "results"
FULL = 1_000_000  # larger than any article: "no cut"
# A budget within this much top-1 of the best one counts as good enough.
ACCURACY_TOLERANCE = 0.01
FINE_TUNED = "ft:gpt-4o-mini-2024-07-18:bench"


def evaluate(rows: list[dict[str, str]], budget: int, prices: Prices) -> dict[str, float | int | str]:
    categories = sorted({row["category"] for row in rows})
    label_of = {name: str(i) for i, name in enumerate(categories)}
    train_x, train_y, test_x, test_y, test_tokens = [], [], [], [], []
    for row in rows:
        prompt = build_prompt(strip_tags(row["title"]), row["body"], budget)
        user = prompt.messages[-1]["content"]
        if is_train(row["id"]):
            train_x.append(user)
            train_y.append(label_of[row["category"]])
        else:
            test_x.append(user)
            test_y.append(label_of[row["category"]])
            test_tokens.append(prompt.prompt_tokens)
    started = time.perf_counter()
    model = fit(train_x, train_y)
    train_seconds = time.perf_counter() - started
    proba = model.predict_proba(test_x)
    truth = np.array([model.labels.index(label) for label in test_y])
    ranked = np.argsort(-proba, axis=1)
    mean_tokens = float(np.mean(test_tokens))
    return {
        "budget": "full" if budget == FULL else budget,
        "accuracy": round(float((ranked[:, 0] == truth).mean()), 4),
        "top3_accuracy": round(float((ranked[:, :3] == truth[:, None]).any(axis=1).mean()), 4),
        "mean_prompt_tokens": round(mean_tokens, 1),
        "cost_per_1000_usd": round(
            1000 * float(np.mean([prices.inference_cost(FINE_TUNED, t, 1) for t in test_tokens])), 5
        ),
        "train_seconds": round(train_seconds, 1),
        "n_test": len(test_x),
    }


def choose(curve: list[dict[str, float | int | str]]) -> dict[str, float | int | str]:
    best = max(float(point["accuracy"]) for point in curve)
    good = [point for point in curve if float(point["accuracy"]) >= best - ACCURACY_TOLERANCE]
    return min(good, key=lambda point: float(point["cost_per_1000_usd"]))


def plot(curve: list[dict[str, float | int | str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    costs = [float(p["cost_per_1000_usd"]) for p in curve]
    accuracy = [float(p["accuracy"]) for p in curve]
    ax.plot(costs, accuracy, marker="o")
    for point, x, y in zip(curve, costs, accuracy, strict=True):
        ax.annotate(str(point["budget"]), (x, y), textcoords="offset points", xytext=(5, -12))
    ax.set_xlabel("cost per 1,000 articles (USD, fine-tuned gpt-4o-mini)")
    ax.set_ylabel("top-1 accuracy (livedoor, held out)")
    ax.set_title("Input token budget: accuracy against cost")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budgets", default="64,128,256,512,1024,full")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    budgets = [FULL if b == "full" else int(b) for b in args.budgets.split(",")]

    with gzip.open(args.data, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    prices = Prices.from_env()
    curve = []
    for budget in budgets:
        point = evaluate(rows, budget, prices)
        print(json.dumps(point), file=sys.stderr)
        curve.append(point)
    chosen = choose(curve)

    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "data": str(args.data),
        "chosen_budget": chosen["budget"],
        "current_default": DEFAULT_INPUT_TOKEN_BUDGET,
        "rule": f"cheapest budget within {ACCURACY_TOLERANCE:.0%} top-1 of the best",
        "curve": curve,
    }
    (args.out / "budget.json").write_text(json.dumps(result, indent=2))
    plot(curve, args.out / "budget.png")

    print("| budget | top-1 | top-3 | mean prompt tokens | USD per 1,000 articles |")
    print("|---|---|---|---|---|")
    for p in curve:
        print(
            f"| {p['budget']} | {p['accuracy']:.4f} | {p['top3_accuracy']:.4f} | "
            f"{p['mean_prompt_tokens']} | {p['cost_per_1000_usd']:.4f} |"
        )
    print(f"\nchosen: {chosen['budget']} (default now {DEFAULT_INPUT_TOKEN_BUDGET}); {result['rule']}")
    print(f"wrote {args.out / 'budget.json'} and {args.out / 'budget.png'}")


if __name__ == "__main__":
    main()
