"""Which way is better for a metric, from its name: one rule for comparison tables and sweeps."""

from __future__ import annotations

# Metrics where more is better (comfort rate, action-class accuracy, closed-loop success and its
# interval's bounds, driving scores); every other one is an error or a cost.
HIGHER_IS_BETTER = ("comfort", "acc", "success_rate", "ci_low", "ci_high", "pdms")


def higher_is_better(metric: str) -> bool:
    """`val/comfort`, `rollout/success_rate`, `val/action_type_acc`: yes; `val/mae`: no."""
    last = metric.rsplit("/", 1)[-1]
    return any(last == word or last.endswith(f"_{word}") for word in HIGHER_IS_BETTER)


def sweep_direction(metric: str) -> str:
    """The Optuna direction that optimises `metric` (the `${direction_of:...}` resolver)."""
    return "maximize" if higher_is_better(metric) else "minimize"
