"""A real node under a free mempool flood (issue 15): nonce-gapped transactions with a high tip
never execute, so they cost their senders nothing. 170 accounts x 63 gapped transactions at
1,000 gwei must not lock out honest transactions paying 1-100 gwei, before or after a restart
(which reloads the pool)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from node.genesis import development_keys
from primitives import rlp
from primitives.crypto import keccak256, sign_hash
from tests.nodeproc import TEST_CONFIG, NodeProcess, post_json, running_node

MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 7331
GWEI = 10**9
ATTACKERS = 170
GAPPED = 63
"""Per attacker: nonces 1..63 (nonce 0 never sent), the most the per-sender window holds."""
HONEST = 20
MAX_TOTAL = 1_000
"""Small, so that the flood fills the pool quickly."""
CONFIG = TEST_CONFIG + f"""
[genesis]
accounts = {ATTACKERS + HONEST}
[mempool]
max_total = {MAX_TOTAL}
"""
BATCH = 500
INCLUSION_TIMEOUT = 30.0


def raw_tx(key: bytes, nonce: int, tip: int) -> str:
    """A signed EIP-1559 transfer of 1 wei, as 0x-hex."""
    fields: list[Any] = [CHAIN_ID, nonce, tip, 2 * tip + 10 * GWEI, 21_000, b"\x11" * 20, 1,
                         b"", []]
    y_parity, r, s = sign_hash(keccak256(b"\x02" + rlp.encode(fields)), key)
    return "0x" + (b"\x02" + rlp.encode([*fields, y_parity, r, s])).hex()


def send_batch(node: NodeProcess, raws: list[str]) -> list[Any]:
    """eth_sendRawTransaction for each, in batched requests; each one's response."""
    responses: list[Any] = []
    for start in range(0, len(raws), BATCH):
        body = [{"jsonrpc": "2.0", "id": index, "method": "eth_sendRawTransaction", "params": [raw]}
                for index, raw in enumerate(raws[start:start + BATCH])]
        responses += sorted(post_json(node.url, body), key=lambda response: response["id"])
    return responses


def flood(node: NodeProcess, attackers: list[bytes]) -> int:
    """Send the gapped transactions; how many the node accepted."""
    raws = [raw_tx(key, nonce, 1_000 * GWEI) for key in attackers for nonce in range(1, GAPPED + 1)]
    return sum("result" in response for response in send_batch(node, raws))


def honest_round(node: NodeProcess, honest: list[bytes], first_nonce: int) -> None:
    """Each honest account sends two transactions with tips from 1 to 100 gwei; all must be
    accepted and included within INCLUSION_TIMEOUT."""
    raws = [raw_tx(key, first_nonce + offset, (1 + (index * 2 + offset) * 99 // (2 * HONEST - 1))
                   * GWEI)
            for index, key in enumerate(honest) for offset in range(2)]
    responses = send_batch(node, raws)
    errors = [response["error"]["message"] for response in responses if "error" in response]
    assert not errors, f"{len(errors)} of {len(raws)} honest transactions refused: {errors[:3]}"
    hashes = [response["result"] for response in responses]
    deadline = time.monotonic() + INCLUSION_TIMEOUT
    waiting = list(hashes)
    while waiting and time.monotonic() < deadline:
        waiting = [h for h in waiting if node.rpc("eth_getTransactionReceipt", [h])["result"] is None]
        time.sleep(0.2)
    assert not waiting, f"{len(waiting)} of {len(hashes)} honest transactions not included"


def test_gapped_flood_does_not_lock_out_honest_transactions(tmp_path: Path) -> None:
    keys = development_keys(MNEMONIC, ATTACKERS + HONEST)
    attackers, honest = keys[:ATTACKERS], keys[ATTACKERS:]
    data_dir = tmp_path / "node"
    with running_node(data_dir, config=CONFIG) as node:
        accepted = flood(node, attackers)
        # The queued limits hold the flood to a part of the pool (go-ethereum: 1,024).
        assert 0 < accepted <= 1_024, accepted
        honest_round(node, honest, 0)
        assert int(node.rpc("eth_blockNumber")["result"], 16) > 0
    # The restarted node reloads the gapped transactions it kept (the pool is full of them
    # again after a second flood); honest ones still get in.
    with running_node(data_dir, config=CONFIG) as node:
        assert "reloaded" in node.log_tail(200)
        flood(node, attackers)
        honest_round(node, honest, 2)
