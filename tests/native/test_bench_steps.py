"""bench.steps runs its loops to the end on the CPU build."""

from __future__ import annotations

import sys

import pytest

from bench import steps


def test_both_loops_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["steps", "--iterations", "50", "--executors", "native-cpu"])
    steps.main()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("native-cpu")]
    assert [line.split()[1] for line in lines] == ["mul", "stack"]
    assert all("500 steps" in line for line in lines)
