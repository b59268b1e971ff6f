"""Mobile VLA .h5 episodes (collector and guide layouts) as samples in the contract."""
