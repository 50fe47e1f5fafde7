"""Stage timers of the block path."""

from __future__ import annotations

import pytest

from node.stages import StageTimes


def test_stages_add_up_in_first_run_order_and_count_a_raising_stage() -> None:
    now = iter([0.0, 0.010, 1.0, 1.5, 2.0, 2.004])
    times = StageTimes(lambda: next(now))
    with times.stage("select"):
        pass
    with times.stage("execute"):
        pass
    with pytest.raises(ValueError), times.stage("select"):
        raise ValueError
    assert times.seconds == pytest.approx({"select": 0.014, "execute": 0.5})
    assert str(times) == "select=14ms execute=500ms"
