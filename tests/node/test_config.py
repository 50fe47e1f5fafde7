"""Config sections that are plain values: what a TOML file sets is what the node gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor_gpu.native_mpt import CACHE_BYTES
from node.config import load_config
from primitives.clock import ManualClock
from primitives.errors import InvalidInput
from sequencer.types import ConsensusConfig, Step
from tests.node.helpers import make_node


def test_consensus_timeouts_come_from_the_config(tmp_path: Path) -> None:
    assert load_config().consensus == ConsensusConfig()
    path = tmp_path / "node.toml"
    path.write_text("[consensus]\npropose = 2.5\npropose_delta = 1\nmax_rounds_ahead = 4\n")
    consensus = load_config(path).consensus
    assert (consensus.propose, consensus.propose_delta, consensus.max_rounds_ahead) == (2.5, 1.0, 4)
    assert consensus.timeout(Step.PROPOSE, 2) == 4.5
    assert consensus.prevote == ConsensusConfig().prevote


def test_the_state_section_sizes_the_nodes_caches(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[state]\nnode_cache_mib = 1024\ncache_entries = 5\n")
    options = load_config(path).state
    assert (options.node_cache_mib, options.cache_entries) == (1024, 5)
    node = make_node(ManualClock(), state=options)
    assert node.state.node_cache_bytes == 1 << 30
    assert make_node(ManualClock()).state.node_cache_bytes == CACHE_BYTES
    path.write_text("[state]\nnode_cache_mib = -1\n")
    with pytest.raises(InvalidInput, match="node_cache_mib"):
        load_config(path)
