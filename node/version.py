"""This build's version: the installed package's, else the checkout's pyproject.toml."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path


@cache
def version() -> str:
    """l2node's version string, e.g. "0.1.0"."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():  # a checkout (run from source or installed editable)
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    return metadata.version("l2node")
