"""A real node under a free mempool flood (issue 15): nonce-gapped transactions with a high tip
never execute, so they cost their senders nothing. 170 accounts x 63 gapped transactions at
1,000 gwei must not lock out honest transactions paying 1-100 gwei, before or after a restart
(which reloads the pool). The scenario is bench/pool_flood.py's; here it must pass."""

from __future__ import annotations

import re
from pathlib import Path

from bench.pool_flood import MNEMONIC, flood, honest_round, node_config
from node.genesis import development_keys
from tests.nodeproc import running_node

ATTACKERS = 170
GAPPED = 63
"""Per attacker: nonces 1..63 (nonce 0 never sent), the most the per-sender window holds."""
HONEST = 20
MAX_TOTAL = 1_000
"""Small, so that the flood fills the pool quickly."""
INCLUSION_TIMEOUT = 30.0


def test_gapped_flood_does_not_lock_out_honest_transactions(tmp_path: Path) -> None:
    keys = development_keys(MNEMONIC, ATTACKERS + HONEST)
    attackers, honest = keys[:ATTACKERS], keys[ATTACKERS:]
    config = node_config(len(keys), MAX_TOTAL)
    data_dir = tmp_path / "node"
    with running_node(data_dir, config=config) as node:
        # The queued limits hold the flood to a part of it (go-ethereum's global queue: 1,024).
        assert 0 < flood(node, attackers, GAPPED) <= 1_024
        result = honest_round(node, honest, INCLUSION_TIMEOUT)
        assert not result.refused, result
        assert result.included == result.sent, result
    # The restarted node reloads the gapped transactions it kept; honest ones still get in.
    with running_node(data_dir, config=config) as node:
        reloaded = re.findall(r"reloaded (\d+) pooled transactions", node.log_tail(200))
        assert reloaded and int(reloaded[-1]) >= MAX_TOTAL - 2 * len(honest), reloaded
        result = honest_round(node, honest, INCLUSION_TIMEOUT)
        assert not result.refused, result
        assert result.included == result.sent, result
