"""Lightning callbacks that keep a run safe: save on interrupt, checkpoints that survive crashes."""
