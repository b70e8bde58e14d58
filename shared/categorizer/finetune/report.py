"""runs/<execution>/report.html: the evaluation a person reads before trusting a promotion.

One self-contained page (inline CSS and SVG, no script, no external asset, so it opens from S3,
a mail attachment or a laptop offline): the decision and the rule, both models side by side on
the golden and the validation set, the paired test, and per set the confusion matrix as a heat
map, the per-class table and the reliability diagram.

Written by hand with `html.escape` rather than a template engine: the layer ships none, and the
page is a few fixed tables and two kinds of chart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from categorizer.finetune.models import (
    Confusion,
    EvaluationMetrics,
    EvaluationReport,
    PairedComparison,
    ReliabilityBin,
    SetEvaluation,
)

# Axis labels are drawn up to this many classes; above it the cells' tooltips name them.
_LABELLED_CLASSES = 40
_HEAT_SIDE = 560
_RELIABILITY_SIDE = 300
_CANDIDATE_COLOUR = "#1f77b4"
_ACTIVE_COLOUR = "#ff7f0e"

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.decision{padding:.75rem 1rem;border-radius:6px;margin:1rem 0}
.promote{background:#e7f6e7;border:1px solid #7c7}.keep{background:#fdeaea;border:1px solid #d88}
.rule{color:#555;font-size:.9rem}.charts{display:flex;flex-wrap:wrap;gap:2rem;align-items:flex-start}
.muted{color:#777}
"""


def render(document: EvaluationReport) -> str:
    decision = document.comparison
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Evaluation {escape(document.run_id)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Evaluation of run {escape(document.run_id)}</h1>",
        "<p>"
        + f"candidate <code>{escape(document.model_id)}</code> (job {escape(document.job_id)}), "
        + f"taxonomy {escape(document.taxonomy_version)}, evaluated {escape(document.evaluated_at.isoformat())}; "
        + "active model "
        + (f"<code>{escape(decision.active_model_id)}</code>" if decision.active_model_id else "none")
        + "</p>",
        f'<div class="decision {"promote" if decision.promote else "keep"}"><strong>'
        + ("Promote" if decision.promote else "Keep the active model")
        + f"</strong> ({escape(decision.rule)}): {escape(decision.reason)}"
        + '<p class="rule">Evaluate\'s view of the decision; Promote decides again with the active-model '
        + "record as it is then.</p></div>",
        f'<p class="rule"><strong>Rule.</strong> {escape(document.promotion_rule)}</p>',
    ]
    if document.paired_unavailable:
        parts.append(f'<p class="muted">No paired golden comparison: {escape(document.paired_unavailable)}.</p>')
    parts += _comparison_table(document)
    if decision.paired is not None:
        parts += _paired_section(decision.paired)
    if document.golden is not None:
        golden = document.golden
        skipped = f"; {golden.skipped} golden articles not in this taxonomy were skipped" if golden.skipped else ""
        parts.append(f"<h2>Golden set v{golden.version}</h2><p class='muted'>{escape(golden.key)}{skipped}</p>")
        parts += _set_section(golden.candidate, golden.active)
    parts.append("<h2>Validation set (this run)</h2>")
    parts.append(
        '<p class="muted">The active model may have trained on some of these articles: its figures here '
        "flatter it. The golden set is what no model trained on.</p>"
    )
    parts += _set_section(document.validation.candidate, document.validation.active)
    parts.append("</body></html>")
    return "\n".join(parts)


_METRIC_ROWS: list[tuple[str, Callable[[EvaluationMetrics], str]]] = [
    ("examples", lambda m: str(m.n)),
    ("top-1", lambda m: f"{m.top1:.4f}"),
    ("top-3", lambda m: f"{m.top3:.4f}"),
    ("macro-F1", lambda m: f"{m.macro_f1:.4f}"),
    ("ECE (10 bins)", lambda m: f"{m.ece:.4f}"),
    ("coverage", lambda m: f"{m.coverage:.4f}"),
    ("no valid label", lambda m: str(m.no_valid_label)),
    ("cost (USD)", lambda m: f"{m.eval_cost_usd:.6f}"),
]


def _comparison_table(document: EvaluationReport) -> list[str]:
    columns: list[tuple[str, SetEvaluation | None]] = []
    if document.golden is not None:
        columns += [("candidate, golden", document.golden.candidate), ("active, golden", document.golden.active)]
    columns += [
        ("candidate, validation", document.validation.candidate),
        ("active, validation", document.validation.active),
    ]
    head = "".join(f"<th>{escape(name)}</th>" for name, _ in columns)
    rows = [
        f"<tr><td>{name}</td>" + "".join(f"<td>{value(s.metrics) if s else '—'}</td>" for _, s in columns) + "</tr>"
        for name, value in _METRIC_ROWS
    ]
    return ["<h2>Candidate and active model</h2>", f"<table><tr><th>metric</th>{head}</tr>", *rows, "</table>"]


def _paired_section(paired: PairedComparison) -> list[str]:
    return [
        "<h3>Paired test on the golden set</h3>",
        "<table><tr><th>figure</th><th>value</th></tr>",
        f"<tr><td>golden examples</td><td>{paired.n}</td></tr>",
        f"<tr><td>only the candidate right</td><td>{paired.candidate_only}</td></tr>",
        f"<tr><td>only the active model right</td><td>{paired.active_only}</td></tr>",
        f"<tr><td>one-sided exact McNemar p (candidate worse)</td><td>{paired.p_value:.4g}</td></tr>",
        "<tr><td>top-1 difference, 95% paired bootstrap</td>"
        f"<td>{paired.candidate_top1 - paired.active_top1:+.4f} "
        f"[{paired.difference_low:+.4f}, {paired.difference_high:+.4f}]</td></tr>",
        "</table>",
    ]


def _set_section(candidate: SetEvaluation, active: SetEvaluation | None) -> list[str]:
    charts = [
        "<div>",
        "<h3>Confusion matrix, candidate (rows: truth, columns: answer; share of the row)</h3>",
        _heat_map(candidate.confusion),
        "</div>",
        "<div><h3>Reliability diagram</h3>",
        _reliability_diagram(candidate.reliability, active.reliability if active else None),
        "</div>",
    ]
    if active is not None:
        charts += ["<div><h3>Confusion matrix, active model</h3>", _heat_map(active.confusion), "</div>"]
    return ['<div class="charts">', *charts, "</div>", *_per_class_table(candidate, active)]


def _per_class_table(candidate: SetEvaluation, active: SetEvaluation | None) -> list[str]:
    active_head = "<th>active precision</th><th>active recall</th><th>active F1</th>" if active else ""
    rows = ["<h3>Per class</h3>", "<table><tr><th>class</th><th>support</th><th>predicted</th>"]
    rows[-1] += f"<th>precision</th><th>recall</th><th>F1</th>{active_head}</tr>"
    for category_id, scores in candidate.per_class.items():
        cells = (
            f"<td>{escape(scores.name)} <span class='muted'>({escape(category_id)})</span></td>"
            f"<td>{scores.support}</td><td>{scores.predicted}</td>"
            f"<td>{scores.precision:.3f}</td><td>{scores.recall:.3f}</td><td>{scores.f1:.3f}</td>"
        )
        if active is not None:
            theirs = active.per_class.get(category_id)
            cells += (
                f"<td>{theirs.precision:.3f}</td><td>{theirs.recall:.3f}</td><td>{theirs.f1:.3f}</td>"
                if theirs
                else "<td>—</td><td>—</td><td>—</td>"
            )
        rows.append(f"<tr>{cells}</tr>")
    rows.append("</table>")
    return rows


def _blue(share: float) -> str:
    """White (0) to dark blue (1)."""
    r, g, b = (round(255 + (t - 255) * share) for t in (8, 48, 107))
    return f"rgb({r},{g},{b})"


def _heat_map(confusion: Confusion) -> str:
    k = len(confusion.classes)
    columns = [*confusion.classes, "no valid label"]
    cell = max(2.0, min(28.0, _HEAT_SIDE / (k + 1)))
    labelled = k <= _LABELLED_CLASSES
    margin = 110 if labelled else 10
    width = margin + cell * (k + 1) + 60  # room for the last rotated column label
    height = margin + cell * k + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" role="img" '
        f'aria-label="confusion matrix">',
        f'<rect x="{margin}" y="{margin}" width="{cell * (k + 1):.1f}" height="{cell * k:.1f}" fill="#fff" '
        'stroke="#ccc"/>',
    ]
    for i, row in enumerate(confusion.matrix):
        total = sum(row)
        for j, count in enumerate(row):
            if not count:  # only the non-empty cells: a 700-class matrix stays small
                continue
            share = count / total
            x, y = margin + j * cell, margin + i * cell
            tip = f"{confusion.classes[i]} → {columns[j]}: {count} ({share:.0%} of the row)"
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" fill="{_blue(share)}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            if labelled and cell >= 18:
                colour = "#fff" if share > 0.5 else "#222"
                out.append(
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" font-size="10" text-anchor="middle" '
                    f'fill="{colour}">{count}</text>'
                )
    if labelled:
        for i, name in enumerate(confusion.classes):
            y = margin + i * cell + cell / 2 + 4
            out.append(
                f'<text x="{margin - 4}" y="{y:.1f}" font-size="10" text-anchor="end">{escape(name[:18])}</text>'
            )
        for j, name in enumerate(columns):
            x = margin + j * cell + cell / 2
            out.append(
                f'<text x="{x:.1f}" y="{margin - 4}" font-size="10" transform="rotate(-60 {x:.1f} {margin - 4})">'
                f"{escape(name[:18])}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def _reliability_diagram(candidate: Sequence[ReliabilityBin], active: Sequence[ReliabilityBin] | None) -> str:
    """Accuracy per confidence bin against the diagonal (perfect calibration); bars for the candidate."""
    side, pad = _RELIABILITY_SIDE, 40
    bins = len(candidate)
    bar = side / bins

    def x(value: float) -> float:
        return pad + value * side

    def y(value: float) -> float:
        return pad / 2 + (1 - value) * side

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side + pad + 20}" height="{side + pad + 10}" role="img" '
        'aria-label="reliability diagram">',
        f'<rect x="{x(0)}" y="{y(1)}" width="{side}" height="{side}" fill="#fff" stroke="#ccc"/>',
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#999" stroke-dasharray="4 3"/>',
    ]
    for b in candidate:
        if b.count:
            out.append(
                f'<rect x="{x(b.lower) + 1:.1f}" y="{y(b.accuracy):.1f}" width="{bar - 2:.1f}" '
                f'height="{b.accuracy * side:.1f}" fill="{_CANDIDATE_COLOUR}" fill-opacity="0.6">'
                f"<title>candidate {b.lower:.1f}–{b.upper:.1f}: {b.count} examples, accuracy {b.accuracy:.3f}, "
                f"mean confidence {b.mean_confidence:.3f}</title></rect>"
            )
    if active is not None:
        points = " ".join(f"{x(b.mean_confidence):.1f},{y(b.accuracy):.1f}" for b in active if b.count)
        out.append(f'<polyline points="{points}" fill="none" stroke="{_ACTIVE_COLOUR}" stroke-width="2"/>')
        for b in active:
            if b.count:
                out.append(
                    f'<circle cx="{x(b.mean_confidence):.1f}" cy="{y(b.accuracy):.1f}" r="3" '
                    f'fill="{_ACTIVE_COLOUR}"><title>active {b.lower:.1f}–{b.upper:.1f}: {b.count} examples, '
                    f"accuracy {b.accuracy:.3f}</title></circle>"
                )
    for tick in (0.0, 0.5, 1.0):
        out.append(f'<text x="{x(tick):.1f}" y="{y(0) + 14:.1f}" font-size="10" text-anchor="middle">{tick}</text>')
        out.append(f'<text x="{x(0) - 4:.1f}" y="{y(tick) + 4:.1f}" font-size="10" text-anchor="end">{tick}</text>')
    legend = f"bars: candidate accuracy per confidence bin{'; line: active model' if active else ''}"
    out.append(f'<text x="{x(0)}" y="{y(0) + 28:.1f}" font-size="10">{escape(legend)}</text>')
    out.append("</svg>")
    return "".join(out)
