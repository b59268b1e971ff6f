"""Side-by-side metrics of several evaluated checkpoints: `comparison.md` and `comparison.json`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from vla_lab.utils.io import atomic_write_text
from vla_lab.utils.metric_names import higher_is_better


@dataclass
class EvaluatedCheckpoint:
    """One column of the comparison: a checkpoint, what it was trained as, and its metrics."""

    label: str
    ckpt_path: str
    experiment: str
    output_dir: str
    metrics: dict[str, float]


def _cell(value: float | None, best: bool) -> str:
    if value is None or not math.isfinite(value):
        return "n/a" if value is None else str(value)
    text = f"{value:.4g}"
    return f"**{text}**" if best else text


def comparison_markdown(checkpoints: list[EvaluatedCheckpoint], where: str) -> str:
    """A markdown table: one row per metric, one column per checkpoint; the best value of each row
    is bold (lowest, or highest for comfort and accuracies) when at least two can be compared.
    Baseline rows are never bold: they describe the data, not the checkpoint."""
    names = sorted({name for c in checkpoints for name in c.metrics})
    header = ["metric", *(f"{c.label} ({c.experiment})" for c in checkpoints)]
    lines = [
        f"# Evaluation on {where}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" + "---:|" * len(checkpoints),
    ]
    for name in names:
        values = [c.metrics.get(name) for c in checkpoints]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        comparable = len(finite) > 1 and "baseline" not in name
        best = (max if higher_is_better(name) else min)(finite) if comparable else None
        cells = [_cell(v, v is not None and v == best) for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Checkpoints:", ""]
    lines += [f"- {c.label}: `{c.ckpt_path}` (results in `{c.output_dir}`)" for c in checkpoints]
    return "\n".join(lines) + "\n"


def write_comparison(
    checkpoints: list[EvaluatedCheckpoint], output_dir: str | Path, where: str
) -> Path:
    """Write `comparison.md` and `comparison.json` into `output_dir`; returns the markdown path."""
    output_dir = Path(output_dir)
    rows = [
        {**asdict(c), "metrics": {k: v if math.isfinite(v) else None for k, v in c.metrics.items()}}
        for c in checkpoints
    ]
    summary = {"evaluated_on": where, "checkpoints": rows}
    atomic_write_text(output_dir / "comparison.json", json.dumps(summary, indent=2))
    return atomic_write_text(output_dir / "comparison.md", comparison_markdown(checkpoints, where))
