"""A free mempool flood against a real `l2node run` (issue 15), and what honest users get.

Nonce-gapped transactions never execute, so a high tip on them costs nothing. The flood:
ATTACKERS accounts each send nonces 1..GAPPED (never 0) at 1,000 gwei tip to a node whose
pool holds ``--max-total`` transactions. Then every honest account sends two transfers with
tips spread from 1 to 100 gwei. The node is restarted on the same data (it reloads its pool),
flooded again, and the honest accounts send two more. For each round it prints: flood
transactions accepted, honest ones accepted and refused (by message), honest ones included
and how long the last took, and the blocks produced meanwhile. A benchmark prints: it never
fails for being slow or for the node refusing honest transactions.

    python -m bench.pool_flood [--attackers 170] [--gapped 63] [--max-total 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.genesis import development_keys
from primitives import rlp
from primitives.crypto import keccak256, private_key_to_address, sign_hash
from tests.nodeproc import TEST_CONFIG, NodeProcess, post_json, running_node

MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 7331
GWEI = 10**9
FLOOD_TIP = 1_000 * GWEI
BATCH = 500
"""Transactions per JSON-RPC batch request."""


def node_config(accounts: int, max_total: int) -> str:
    """The tests' fast-block config with ``accounts`` funded and a pool of ``max_total``."""
    return TEST_CONFIG + f"""
[genesis]
accounts = {accounts}
[mempool]
max_total = {max_total}
"""


def raw_tx(key: bytes, nonce: int, tip: int) -> str:
    """A signed EIP-1559 transfer of 1 wei (fee cap well above the base fee), as 0x-hex."""
    fields: list[Any] = [CHAIN_ID, nonce, tip, 2 * tip + 10 * GWEI, 21_000, b"\x11" * 20, 1,
                         b"", []]
    y_parity, r, s = sign_hash(keccak256(b"\x02" + rlp.encode(fields)), key)
    return "0x" + (b"\x02" + rlp.encode([*fields, y_parity, r, s])).hex()


def send_batch(node: NodeProcess, raws: list[str]) -> list[Any]:
    """eth_sendRawTransaction for each, in batched requests; each one's response, in order."""
    responses: list[Any] = []
    for start in range(0, len(raws), BATCH):
        body = [{"jsonrpc": "2.0", "id": index, "method": "eth_sendRawTransaction", "params": [raw]}
                for index, raw in enumerate(raws[start:start + BATCH])]
        responses += sorted(post_json(node.url, body), key=lambda response: response["id"])
    return responses


def flood(node: NodeProcess, attackers: list[bytes], gapped: int) -> int:
    """Send each attacker's nonces 1..``gapped`` at FLOOD_TIP; how many the node accepted."""
    raws = [raw_tx(key, nonce, FLOOD_TIP) for key in attackers for nonce in range(1, gapped + 1)]
    return sum("result" in response for response in send_batch(node, raws))


@dataclass(frozen=True)
class HonestRound:
    """What honest senders got from a flooded node."""

    sent: int
    """Honest transactions sent."""
    refused: Counter[str]
    """Refusals by error message."""
    included: int
    """Accepted ones found in blocks before the timeout."""
    seconds: float
    """From sending to the last inclusion (or the timeout)."""
    blocks: int
    """Blocks produced meanwhile."""

    @property
    def accepted(self) -> int:
        """Honest transactions the node accepted."""
        return self.sent - sum(self.refused.values())


def honest_round(node: NodeProcess, honest: list[bytes], timeout: float) -> HonestRound:
    """Each honest account sends its next two nonces, tips spread over 1-100 gwei; wait up to
    ``timeout`` s for the accepted ones to be included."""
    count = 2 * len(honest)
    nonces = [int(node.rpc("eth_getTransactionCount",
                           ["0x" + private_key_to_address(key).hex(), "pending"])["result"], 16)
              for key in honest]
    raws = [raw_tx(key, nonce + offset, (1 + (2 * index + offset) * 99 // max(count - 1, 1)) * GWEI)
            for index, (key, nonce) in enumerate(zip(honest, nonces, strict=True))
            for offset in range(2)]
    start_block = int(node.rpc("eth_blockNumber")["result"], 16)
    start = time.monotonic()
    responses = send_batch(node, raws)
    refused = Counter(response["error"]["message"] for response in responses
                      if "error" in response)
    waiting = [response["result"] for response in responses if "result" in response]
    accepted = len(waiting)
    while waiting and time.monotonic() - start < timeout:
        waiting = [tx_hash for tx_hash in waiting
                   if node.rpc("eth_getTransactionReceipt", [tx_hash])["result"] is None]
        if waiting:
            time.sleep(0.2)
    seconds = time.monotonic() - start
    blocks = int(node.rpc("eth_blockNumber")["result"], 16) - start_block
    return HonestRound(count, refused, accepted - len(waiting), seconds, blocks)


def report(label: str, flooded: int, result: HonestRound) -> None:
    print(f"{label}: flood accepted {flooded}; honest sent {result.sent}, accepted "
          f"{result.accepted}, included {result.included} in {result.seconds:.1f} s "
          f"({result.blocks} blocks meanwhile); refused: {dict(result.refused) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=170)
    parser.add_argument("--gapped", type=int, default=63, help="gapped transactions each")
    parser.add_argument("--honest", type=int, default=20, help="honest accounts")
    parser.add_argument("--max-total", type=int, default=1_000, help="the node's pool size")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds to wait for honest inclusion per round")
    args = parser.parse_args()
    keys = development_keys(MNEMONIC, args.attackers + args.honest)
    attackers, honest = keys[:args.attackers], keys[args.attackers:]
    config = node_config(len(keys), args.max_total)
    with tempfile.TemporaryDirectory(prefix="pool-flood-") as work:
        data_dir = Path(work) / "node"
        with running_node(data_dir, config=config) as node:
            flooded = flood(node, attackers, args.gapped)
            report("first start", flooded, honest_round(node, honest, args.timeout))
        with running_node(data_dir, config=config) as node:
            reloaded = [line for line in node.log_tail(400).splitlines() if "reloaded" in line]
            print(f"restart: {reloaded[-1].split(' ', 2)[-1] if reloaded else 'nothing reloaded'}")
            flooded = flood(node, attackers, args.gapped)
            report("after restart", flooded, honest_round(node, honest, args.timeout))


if __name__ == "__main__":
    main()
