"""vla-lab."""
