"""Autonomous driving: Alpamayo-R1 style trajectories, poses and the unicycle action space."""
