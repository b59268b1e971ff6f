"""Using trained checkpoints: loading them, running them online, exporting them."""
