"""Config sections that are plain values: what a TOML file sets is what the node gets."""

from __future__ import annotations

from pathlib import Path

from node.config import load_config
from sequencer.types import ConsensusConfig, Step


def test_consensus_timeouts_come_from_the_config(tmp_path: Path) -> None:
    assert load_config().consensus == ConsensusConfig()
    path = tmp_path / "node.toml"
    path.write_text("[consensus]\npropose = 2.5\npropose_delta = 1\nmax_rounds_ahead = 4\n")
    consensus = load_config(path).consensus
    assert (consensus.propose, consensus.propose_delta, consensus.max_rounds_ahead) == (2.5, 1.0, 4)
    assert consensus.timeout(Step.PROPOSE, 2) == 4.5
    assert consensus.prevote == ConsensusConfig().prevote
