"""NVIDIA PhysicalAI-AV clips (features.csv, chunk zips, egomotion, calibration) as samples."""
