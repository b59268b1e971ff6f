"""Closed-loop results, summarised: success rate with its interval, per-scenario table, plots.

The input is the rollout runner's table (one row per episode: `success`, `failure`, `steps`,
`policy_ms` and the world's own metrics). Every rate carries a 95% Wilson score interval: with
the tens of episodes a CPU evaluation affords, "0.80" means anything from 0.6 to 0.9, and the
interval says so (the normal approximation would put 10/10 at [1, 1]).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PREFIX = "rollout/"
Z_95 = 1.959963984540054
# Columns that describe the run, not the policy's behaviour: not averaged into metrics.
NOT_METRICS = ("episode", "scenario", "seed", "failure", "wall_s")


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (Wilson 1927); (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(results: pd.DataFrame) -> dict[str, float]:
    """`rollout/success_rate` and its interval first, then the mean of every other metric
    column over the episodes, `rollout/episodes`, and the share of each failure reason."""
    n = len(results)
    successes = int(results["success"].sum()) if n else 0
    low, high = wilson_interval(successes, n)
    summary = {
        f"{PREFIX}success_rate": successes / n if n else float("nan"),
        f"{PREFIX}success_ci_low": low,
        f"{PREFIX}success_ci_high": high,
        f"{PREFIX}episodes": float(n),
    }
    for column in metric_columns(results):
        if column != "success":
            summary[f"{PREFIX}{column}"] = float(results[column].mean()) if n else float("nan")
    for reason, count in results["failure"].value_counts().items() if n else ():
        if reason:
            summary[f"{PREFIX}failure/{_reason_name(reason)}"] = count / n
    return summary


def metric_columns(results: pd.DataFrame) -> list[str]:
    """The numeric columns that describe behaviour: success, steps, policy latency and the
    world's metrics, in table order."""
    return [
        c
        for c in results.columns
        if c not in NOT_METRICS and pd.api.types.is_numeric_dtype(results[c])
    ]


def scenario_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario (and `all`): episodes, success rate, its interval, metric means."""
    rows = []
    groups = [(str(s), g) for s, g in results.groupby("scenario", sort=True)]
    for name, group in [*groups, ("all", results)]:
        n, k = len(group), int(group["success"].sum())
        low, high = wilson_interval(k, n)
        row = {"scenario": name, "episodes": n, "success_rate": k / n if n else float("nan")}
        row.update(ci_low=low, ci_high=high)
        for column in metric_columns(results):
            if column != "success":
                row[column] = float(group[column].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def scenario_markdown(table: pd.DataFrame, title: str) -> str:
    """The scenario table as markdown, success as `0.80 [0.49, 0.94]`."""
    metrics = [
        c
        for c in table.columns
        if c not in ("scenario", "episodes", "success_rate", "ci_low", "ci_high")
    ]
    header = ["scenario", "episodes", "success [95% CI]", *metrics]
    lines = [
        f"# {title}",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for row in table.itertuples(index=False):
        values = row._asdict()
        success = f"{values['success_rate']:.2f} [{values['ci_low']:.2f}, {values['ci_high']:.2f}]"
        cells = [str(values["scenario"]), str(values["episodes"]), success]
        cells += [f"{values[m]:.4g}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def success_figure(table: pd.DataFrame) -> Figure:
    """Success rate per scenario with its 95% Wilson interval."""
    figure = Figure(figsize=(max(4.0, 0.7 * len(table) + 1.5), 3.2), layout="constrained")
    axes = figure.subplots()
    x = np.arange(len(table))
    rate = table["success_rate"].to_numpy()
    errors = np.stack([rate - table["ci_low"].to_numpy(), table["ci_high"].to_numpy() - rate])
    errors = np.clip(errors, 0.0, None)  # 10/10 has an upper bound of 1 - 1e-16
    colours = ["#4c72b0"] * (len(table) - 1) + ["#333333"]
    axes.bar(x, rate, yerr=errors, capsize=3, color=colours)
    axes.set_xticks(x, table["scenario"], rotation=35, ha="right", fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("success rate (95% CI)")
    return figure


def failure_ranking(results: pd.DataFrame, score: str) -> list[int]:
    """Failed episodes, worst first: lowest `score` (the world's headline metric), then
    fewest steps (it failed sooner); episode indices."""
    failed = results[results["success"] < 0.5]
    keys = dict.fromkeys(
        [score, "steps", "episode"] if score in failed.columns else ["steps", "episode"]
    )
    return failed.sort_values(list(keys))["episode"].astype(int).tolist()


def _reason_name(reason: str) -> str:
    """A failure reason as a metric name (`error: ValueError: ...` -> `error`)."""
    return reason.split(":", 1)[0].strip().replace(" ", "_") or "unknown"
