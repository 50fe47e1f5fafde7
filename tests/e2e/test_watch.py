"""`l2node watch` against a real L1: anvil, a running `l2node run` posting batches, and forgery.

The contract is deployed (`l2node deploy-contract`) with the devnet validator, whose
key is public, so this test can also sign a forged batch, as a compromised validator
set would.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from eth_account import Account
from web3 import Web3

from l1.client import Web3L1Client, deploy_batch_inbox
from l1.codec import batch_data_hash, batch_digest, encode_batch_data, sign_batch
from l1.keystore import write_keystore
from l1.types import BatchCommitment, L2BlockData
from node.config import load_config
from node.db.chain import ChainStore
from node.db.leveldb import LevelDBKV
from node.genesis import chain_genesis, development_keys, genesis_to_json
from primitives.crypto import keccak256
from primitives.types import Address, Hash32
from sequencer.fees import next_base_fee
from tests.anvil import DEV_KEYS, Anvil, anvil  # noqa: F401 (the fixture)
from tests.nodeproc import l2node_command, l2node_env, running_node

MNEMONIC = "test test test test test test test test test test test junk"
BATCHES = 3
"""Batches the node posts before it is stopped (4 blocks each)."""


def watch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        l2node_command("watch", *args), check=False, capture_output=True, text=True, timeout=120,
        env=l2node_env(), cwd=cwd,
    )


def forge_next_batch(url: str, contract: Address, validator_key: bytes, watch_dir: Path) -> Hash32:
    """Commit an empty block after the last verified one, with a made-up state root."""
    kv = LevelDBKV(watch_dir / "chain")
    try:
        chain = ChainStore(kv)
        head = chain.head_number()
        assert head is not None
        parent = chain.header(head)
        assert parent is not None
    finally:
        kv.close()
    block = L2BlockData(
        number=parent.number + 1,
        timestamp=parent.timestamp + 1,
        coinbase=parent.coinbase,
        gas_limit=parent.gas_limit,
        base_fee_per_gas=next_base_fee(parent.gas_used, parent.gas_limit, parent.base_fee_per_gas),
        transactions=(),
    )
    client = Web3L1Client(Web3(Web3.HTTPProvider(url)), contract, DEV_KEYS[2])
    latest = client.latest_batch()
    assert latest is not None and latest.last_block == parent.number
    data = encode_batch_data([block])
    forged = keccak256(b"forged state")
    commitment = BatchCommitment(
        batch_number=latest.batch_number + 1, prev_state_root=latest.state_root,
        state_root=forged, first_block=block.number, last_block=block.number,
        data_hash=batch_data_hash(data),
    )
    signature = sign_batch(batch_digest(client.domain(), commitment), validator_key)
    client.commit_batch(commitment, data, [signature])
    return forged


def test_watch_verifies_a_running_nodes_batches_and_reports_a_forged_one(
    anvil: Anvil, tmp_path: Path  # noqa: F811 (the fixture)
) -> None:
    preset = load_config(None)
    genesis = chain_genesis(preset)
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(genesis_to_json(genesis))
    keystore, deployer, password = (
        tmp_path / "poster.json", tmp_path / "deployer.json", tmp_path / "password"
    )
    write_keystore(keystore, DEV_KEYS[0], "test password")
    write_keystore(deployer, DEV_KEYS[1], "test password")
    password.write_text("test password\n")
    deployed = subprocess.run(
        l2node_command("deploy-contract", "--l1-rpc", anvil.url, "--keystore", str(deployer),
                       "--password-file", str(password), "--genesis", str(genesis_file)),
        check=True, capture_output=True, text=True, timeout=120, env=l2node_env(),
    )
    contract = Address(bytes.fromhex(deployed.stdout.strip().removeprefix("0x")))
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    config = f"""
[chain]
block_time = 0.25
[genesis]
file = "{genesis_file}"
[l1]
rpc_url = "{anvil.url}"
contract = "0x{contract.hex()}"
poster_keystore = "{keystore}"
poster_password_file = "{password}"
blocks_per_batch = 4
poll_interval = 0.3
"""
    reader = Web3L1Client(w3, contract)
    sender = development_keys(MNEMONIC, 2)[1]
    with running_node(tmp_path / "node", config=config) as node:
        for nonce in range(6):
            tx = {"chainId": genesis.chain_id, "nonce": nonce, "to": "0x" + "12" * 20,
                  "value": 1 + nonce, "gas": 21_000, "maxFeePerGas": 10**10,
                  "maxPriorityFeePerGas": 10**9}
            raw = "0x" + bytes(Account.sign_transaction(tx, sender).raw_transaction).hex()
            assert "result" in node.rpc("eth_sendRawTransaction", [raw])
            time.sleep(0.1)
        deadline = time.monotonic() + 40
        while (latest := reader.latest_batch()) is None or latest.batch_number < BATCHES:
            assert time.monotonic() < deadline, f"no {BATCHES} batches on L1:\n{node.log_tail()}"
            time.sleep(0.2)
    posted = reader.latest_batch()
    assert posted is not None

    common = ("--l1-rpc", anvil.url, "--contract", "0x" + contract.hex(),
              "--genesis", str(genesis_file), "--data-dir", str(tmp_path / "watch"))
    first = watch(*common, "--strict", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split()[1] for line in lines] == [str(n) for n in range(1, posted.batch_number + 1)]
    assert all(" OK root 0x" in line for line in lines), first.stdout
    assert lines[-1].endswith(posted.state_root.hex())
    assert sum(int(line.split()[5]) for line in lines) == 6

    validator_key = bytes.fromhex(preset.validator.private_key.removeprefix("0x"))
    forged = forge_next_batch(anvil.url, contract, validator_key, tmp_path / "watch")
    second = watch(*common, "--strict", cwd=tmp_path)
    assert second.returncode == 1, second.stderr
    assert len(second.stdout.splitlines()) == 1, second.stdout  # resumed: only the new batch
    line = second.stdout.strip()
    assert line.startswith(f"batch {posted.batch_number + 1} ")
    assert f"MISMATCH expected 0x{posted.state_root.hex()} posted 0x{forged.hex()}" in line

    # Re-verify from batch 2 on: the earlier verdicts again, then the same mismatch.
    third = watch(*common, "--strict", "--from-batch", "2", cwd=tmp_path)
    assert third.returncode == 1, third.stderr
    statuses = [line.split()[6] for line in third.stdout.splitlines()]
    assert statuses == ["OK"] * (posted.batch_number - 1) + ["MISMATCH"]


def test_watch_refuses_a_genesis_that_is_not_the_contracts(
    anvil: Anvil, tmp_path: Path  # noqa: F811 (the fixture)
) -> None:
    genesis = chain_genesis(load_config(None))
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(genesis_to_json(genesis))
    contract = deploy_batch_inbox(
        Web3(Web3.HTTPProvider(anvil.url)), DEV_KEYS[1], genesis.chain_id,
        keccak256(b"another genesis"), [v.address for v in genesis.validators], [1],
    )
    result = watch("--l1-rpc", anvil.url, "--contract", "0x" + contract.hex(),
                   "--genesis", str(genesis_file), "--data-dir", str(tmp_path / "watch"),
                   cwd=tmp_path)
    assert result.returncode == 2
    assert "wrong --genesis or --contract" in result.stderr
    assert result.stdout == ""


def test_watch_refuses_an_address_without_code(
    anvil: Anvil, tmp_path: Path  # noqa: F811 (the fixture)
) -> None:
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(genesis_to_json(chain_genesis(load_config(None))))
    empty = "0x" + "42" * 20
    result = watch("--l1-rpc", anvil.url, "--contract", empty, "--genesis", str(genesis_file),
                   "--data-dir", str(tmp_path / "watch"), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(f"--contract {empty} has no contract code on L1 (chain id 31337): "
                         "is it the BatchInbox address, on this L1?")
    assert not (tmp_path / "watch").exists()  # refused before anything was written
