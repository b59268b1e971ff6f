"""LeRobot datasets (local root or hub id; v2.1 converted, v3.0 read) as samples in the contract."""
