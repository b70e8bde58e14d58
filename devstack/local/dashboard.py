"""`python -m local dashboard --png FILE`: the template's dashboard layout drawn as a picture.

CloudWatch renders dashboards only in the console; offline there is no console and no data,
so this draws the grid the template's `AWS::CloudWatch::Dashboard` body describes: each
widget's place, title and the series it plots (docs/operations.md#dashboard).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

GRID_COLUMNS = 24  # CloudWatch's dashboard grid width


def _series(widget: dict[str, Any]) -> list[str]:
    labels = []
    for row in widget["properties"].get("metrics", []):
        options = row[-1] if isinstance(row[-1], dict) else {}
        if options.get("visible") is False:
            continue
        label = options.get("label") or (row[1] if isinstance(row[0], str) else options.get("expression", ""))
        labels.append(label or "one line per reason")
    if widget["type"] == "alarm":
        labels = [arn.rsplit(":", 1)[-1] for arn in widget["properties"]["alarms"]]
    return labels


def render(body: dict[str, Any], path: Path) -> None:
    widgets = body["widgets"]
    rows = max(w["y"] + w["height"] for w in widgets)
    figure, axes = plt.subplots(figsize=(16, 16 * rows / GRID_COLUMNS * 0.75))
    axes.set_xlim(0, GRID_COLUMNS)
    axes.set_ylim(rows, 0)
    axes.axis("off")
    for widget in widgets:
        x, y, width, height = widget["x"], widget["y"], widget["width"], widget["height"]
        colour = "#fde9e7" if widget["type"] == "alarm" else "#eef3fb"
        axes.add_patch(Rectangle((x + 0.1, y + 0.1), width - 0.2, height - 0.2, facecolor=colour, edgecolor="#5b6b82"))
        axes.text(x + 0.4, y + 0.8, widget["properties"]["title"], fontsize=11, fontweight="bold", va="center")
        series = _series(widget)
        columns = 3 if widget["type"] == "alarm" else 1
        for index, label in enumerate(series):
            column, line = divmod(index, -(-len(series) // columns))
            axes.text(x + 0.6 + column * width / columns, y + 1.7 + line * 0.75, f"• {label}", fontsize=9, va="center")
        for annotation in widget["properties"].get("annotations", {}).get("horizontal", []):
            axes.text(
                x + width - 0.4, y + height - 0.6, f"— {annotation['label']}", fontsize=8, ha="right", color="#b03a2e"
            )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
