"""Side-by-side metrics of several evaluated checkpoints: `comparison.md`, `comparison.json` and,
closed loop, `plots/comparison.png` (success with its interval and sub-goals, per checkpoint)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vla_lab.evaluation.plots import save_figures
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
    if all(SUCCESS in c.metrics for c in checkpoints):
        save_figures({"comparison": closed_loop_figure(checkpoints)}, output_dir / "plots")
    return atomic_write_text(output_dir / "comparison.md", comparison_markdown(checkpoints, where))


SUCCESS = "rollout/success_rate"
# Sub-goal rates a world may report (Meta-World: reached the object, grasped it), drawn beside
# success in the closed-loop comparison.
SUB_GOALS = ("rollout/reached", "rollout/grasped")


def closed_loop_figure(checkpoints: list[EvaluatedCheckpoint]) -> Figure:
    """Success rate (95% Wilson interval) and the world's sub-goal rates, one group of bars per
    checkpoint."""
    bars = [SUCCESS, *(m for m in SUB_GOALS if all(m in c.metrics for c in checkpoints))]
    figure = Figure(figsize=(max(4.5, 1.6 * len(checkpoints) + 2.0), 3.4), layout="constrained")
    axes = figure.subplots()
    x = np.arange(len(checkpoints))
    width = 0.8 / len(bars)
    for i, name in enumerate(bars):
        values = np.array([c.metrics[name] for c in checkpoints])
        errors = None
        if name == SUCCESS:
            low = np.array(
                [
                    c.metrics.get("rollout/success_ci_low", v)
                    for c, v in zip(checkpoints, values, strict=True)
                ]
            )
            high = np.array(
                [
                    c.metrics.get("rollout/success_ci_high", v)
                    for c, v in zip(checkpoints, values, strict=True)
                ]
            )
            errors = np.clip(np.stack([values - low, high - values]), 0.0, None)
        label = name.removeprefix("rollout/").replace("_rate", "")
        axes.bar(
            x + (i - (len(bars) - 1) / 2) * width,
            values,
            width,
            yerr=errors,
            capsize=3,
            label=label,
        )
    axes.set_xticks(x, [c.label for c in checkpoints], rotation=20, ha="right", fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("rate over the same episodes")
    axes.legend(fontsize=8)
    return figure
