"""L1 gas per committed L2 transaction: batches of plain transfers posted to BatchInbox on anvil.

Starts anvil (installed by npm, see package.json), deploys BatchInbox with V validators, and commits batches
of one L2 block of N signed EIP-1559 transfers (distinct senders and recipients, random
amounts) through the poster's own calls, signed by all V
validators. Prints calldata size and L1 gas (all the batch's L1 transactions) per L2
transaction, and the machine. Never fails for being expensive.

    python -m bench.l1_gas --txs 100 1000 --validators 1 4
"""

from __future__ import annotations

import argparse
import platform
import random
import tempfile
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from l1.client import Web3L1Client, deploy_batch_inbox
from l1.codec import batch_data_hash, batch_digest, encode_batch_data, order_signatures, sign_batch
from l1.types import BatchCommitment, L2BlockData
from primitives.crypto import keccak256, private_key_to_address
from primitives.types import Address
from tests.anvil import DEV_KEYS, running_anvil

L2_CHAIN_ID = 7331


def transfers(count: int, seed: int) -> tuple[bytes, ...]:
    """``count`` signed transfers from distinct senders, as wallets send them."""
    rng = random.Random(seed)
    txs = []
    for i in range(count):
        key = keccak256(b"bench l1 sender %d %d" % (seed, i))
        tx = Account.sign_transaction(
            {
                "chainId": L2_CHAIN_ID,
                "nonce": rng.randrange(0, 50),
                "to": Web3.to_checksum_address(rng.randbytes(20)),
                "value": rng.randrange(10**15, 10**19),
                "gas": 21_000,
                "maxFeePerGas": 2_000_000_000 + rng.randrange(10**9),
                "maxPriorityFeePerGas": rng.randrange(10**9),
                "type": 2,
            },
            key,
        )
        txs.append(bytes(tx.raw_transaction))
    return tuple(txs)


def measure(url: str, tx_count: int, validators: int, batches: int) -> dict[str, float]:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    keys = [keccak256(b"bench validator %d" % i) for i in range(validators)]
    genesis_root = keccak256(b"bench genesis")
    address = deploy_batch_inbox(
        w3, DEV_KEYS[0], L2_CHAIN_ID, genesis_root,
        [private_key_to_address(k) for k in keys], [1] * validators,
    )
    client = Web3L1Client(w3, address, DEV_KEYS[1])
    domain = client.domain()
    prev_root, gas, calldata, l1_txs, payload = genesis_root, 0, 0, 0, 0
    for n in range(1, batches + 1):
        block = L2BlockData(
            number=n, timestamp=1_700_000_000 + n, coinbase=Address(b"\xc0" * 20),
            gas_limit=30_000_000, base_fee_per_gas=1_000_000_000, transactions=transfers(tx_count, n),
        )
        data = encode_batch_data([block])
        commitment = BatchCommitment(
            batch_number=n, prev_state_root=prev_root, state_root=keccak256(b"root %d" % n),
            first_block=n, last_block=n, data_hash=batch_data_hash(data),
        )
        digest = batch_digest(domain, commitment)
        signatures = order_signatures(digest, [sign_batch(digest, k) for k in keys])
        before = w3.eth.block_number
        client.commit_batch(commitment, data, signatures)
        for number in range(before + 1, w3.eth.block_number + 1):
            block_info: Any = w3.eth.get_block(number, full_transactions=True)
            for tx in block_info["transactions"]:
                gas += int(w3.eth.get_transaction_receipt(tx["hash"])["gasUsed"])
                calldata += len(tx["input"])
                l1_txs += 1
        payload += len(data)
        prev_root = commitment.state_root
    l2_txs = tx_count * batches
    return {
        "raw_bytes_per_tx": sum(len(t) for t in transfers(tx_count, 1)) / tx_count,
        "payload_bytes_per_tx": payload / l2_txs,
        "calldata_bytes_per_tx": calldata / l2_txs,
        "l1_txs_per_batch": l1_txs / batches,
        "gas_per_batch": gas / batches,
        "gas_per_tx": gas / l2_txs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, nargs="+", default=[100, 1000], help="transfers per batch")
    parser.add_argument("--validators", type=int, nargs="+", default=[1, 4], help="signers per batch")
    parser.add_argument("--batches", type=int, default=3, help="batches measured per setting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_anvil(Path(tmp)) as anvil:
        version = anvil.rpc("web3_clientVersion")
        print(f"machine: {platform.machine()} {platform.processor() or ''} {platform.node()}; "
              f"python {platform.python_version()}; L1: {version} (Prague rules, EIP-7623 calldata floor)")
        print(f"{'L2 txs/batch':>12} {'validators':>10} {'raw B/tx':>9} {'posted B/tx':>11} "
              f"{'L1 txs':>6} {'L1 gas/batch':>12} {'L1 gas/L2 tx':>12}")
        for tx_count in args.txs:
            for validators in args.validators:
                m = measure(anvil.url, tx_count, validators, args.batches)
                print(f"{tx_count:>12} {validators:>10} {m['raw_bytes_per_tx']:>9.1f} "
                      f"{m['payload_bytes_per_tx']:>11.1f} {m['l1_txs_per_batch']:>6.1f} "
                      f"{m['gas_per_batch']:>12,.0f} {m['gas_per_tx']:>12,.1f}")


if __name__ == "__main__":
    main()
