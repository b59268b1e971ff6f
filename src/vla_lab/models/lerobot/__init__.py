"""LeRobot policies as LightningModules: the base module, its config, loss and specialisations."""
