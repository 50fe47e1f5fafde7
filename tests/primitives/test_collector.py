"""The cycle collector's tuning for a serving node."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from primitives.collector import YOUNG_PASS_ALLOCATIONS, cycle_collector_paused, tune_for_serving


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_serving_freezes_what_lives_and_makes_young_passes_rarer() -> None:
    kept = [[i] for i in range(1000)]
    tune_for_serving()
    assert gc.get_freeze_count() > len(kept)
    assert gc.get_threshold()[0] == YOUNG_PASS_ALLOCATIONS
    # A cycle made after the freeze is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


def test_a_paused_collector_resumes_as_it_was() -> None:
    assert gc.isenabled()
    with cycle_collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with cycle_collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
