"""The l2node daemon: CLI, configuration, wiring, storage."""
