"""Evaluation of trained checkpoints: per-frame predictions, metrics, plots, comparison tables,
and videos of the predictions."""
