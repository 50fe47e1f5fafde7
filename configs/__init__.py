"""Presets (TOML) and genesis files shipped with the node."""
