"""Lightning callbacks that keep a run safe and honest: save on interrupt, RNG states in
checkpoints, and a final validation of the weights a run ends with."""
