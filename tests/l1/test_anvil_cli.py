"""The operator's L1 commands against a real L1 (anvil): keystores, deploy-contract, run --l1-rpc."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from l1.client import Web3L1Client, load_artifact
from l1.keystore import read_keystore
from node.config import load_config
from node.genesis import chain_genesis
from primitives.errors import InvalidInput
from primitives.types import to_address
from tests.anvil import DEV_KEYS, Anvil
from tests.nodeproc import TEST_CONFIG, l2node_command, l2node_env, running_node

PASSWORD = "correct horse battery staple"


def l2node(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        l2node_command(*args), check=False, input=stdin, capture_output=True, text=True,
        timeout=120,
        env={**l2node_env(), **(env or {})},
    )


def import_key(tmp_path: Path, key: bytes, name: str = "poster.json") -> tuple[Path, Path]:
    """A keystore of ``key`` made by `l2node keys import`, and its password file."""
    password_file = tmp_path / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    keystore = tmp_path / name
    done = l2node("keys", "import", "--light-kdf", "--out", str(keystore), "--password-file",
                  str(password_file), stdin="0x" + key.hex() + "\n")
    assert done.returncode == 0, done.stderr
    return keystore, password_file


def test_keys_new_and_import_round_trip(tmp_path: Path) -> None:
    keystore, password_file = import_key(tmp_path, DEV_KEYS[2])
    assert read_keystore(keystore, PASSWORD) == DEV_KEYS[2]
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    assert json.loads(keystore.read_text())["version"] == 3
    with pytest.raises(InvalidInput, match="MAC mismatch"):
        read_keystore(keystore, "wrong password")

    created = tmp_path / "new.json"
    done = l2node("keys", "new", "--out", str(created), env={"L2NODE_KEYSTORE_PASSWORD": "s3cret"})
    assert done.returncode == 0, done.stderr
    address = done.stdout.split()[0]
    keystore_json = json.loads(created.read_text())
    assert keystore_json["crypto"]["kdfparams"]["n"] == 2**18  # full strength without --light-kdf
    key = read_keystore(created, "s3cret")
    assert Account.from_key(key).address.lower() == address.lower()
    assert key.hex() not in done.stdout + done.stderr

    # Never overwritten; a bad key or no password source is a clear error.
    again = l2node("keys", "new", "--out", str(created), "--password-file", str(password_file))
    assert again.returncode == 2 and "not overwriting" in again.stderr
    bad = l2node("keys", "import", "--out", str(tmp_path / "bad.json"), "--password-file",
                 str(password_file), stdin="0x1234\n")
    assert bad.returncode == 2 and "32 bytes" in bad.stderr
    no_password = l2node("keys", "new", "--out", str(tmp_path / "np.json"))
    assert no_password.returncode == 2 and "L2NODE_KEYSTORE_PASSWORD" in no_password.stderr


def deploy(anvil: Anvil, tmp_path: Path) -> tuple[str, Path, Path]:
    keystore, password_file = import_key(tmp_path, DEV_KEYS[0], "deployer.json")
    done = l2node("deploy-contract", "--l1-rpc", anvil.url, "--keystore", str(keystore),
                  "--password-file", str(password_file))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1], keystore, password_file


def test_run_refuses_a_raw_poster_key_for_a_real_l1(anvil: Anvil, tmp_path: Path) -> None:
    config = tmp_path / "raw.toml"
    config.write_text(f'[l1]\nrpc_url = "{anvil.url}"\nposter_key = "0x{DEV_KEYS[1].hex()}"\n')
    done = l2node("run", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert "raw keys are refused" in done.stderr and DEV_KEYS[1].hex() not in done.stderr


def wait_batch(node: Any, covering: int, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch = node.rpc("l2_latestCommittedBatch").get("result")
        if batch is not None and int(batch["lastBlock"], 16) >= covering:
            return batch  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"no batch covers block {covering}:\n{node.log_tail()}"
        time.sleep(0.3)


def test_deployed_contract_takes_the_node_batches_through_an_l1_outage(anvil: Anvil, tmp_path: Path) -> None:
    address, _, password_file = deploy(anvil, tmp_path)
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    client = Web3L1Client(w3, to_address(bytes.fromhex(address[2:])))
    genesis = chain_genesis(load_config())
    assert client.domain().l2_chain_id == genesis.chain_id
    contract: Any = w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact()["abi"])
    signers, weights = contract.functions.validators().call()
    assert [bytes.fromhex(s[2:]) for s in signers] == [v.address for v in genesis.validators]
    assert weights == [v.weight for v in genesis.validators]
    # The node's genesis root is the deployed one, or its first batch would not continue it.
    poster_keystore, _ = import_key(tmp_path, DEV_KEYS[1])
    config = TEST_CONFIG + (
        f'rpc_url = "{anvil.url}"\ncontract = "{address}"\n'
        f'poster_keystore = "{poster_keystore}"\nposter_password_file = "{password_file}"\n'
        "confirmations = 1\n"
    )
    with running_node(tmp_path / "node", config=config) as node:
        wait_batch(node, covering=4)
        anvil.stop()  # L1 gone for a while; the L2 keeps producing blocks
        time.sleep(3)
        head = int(node.rpc("eth_blockNumber")["result"], 16)
        anvil.start()
        batch = wait_batch(node, covering=head + 4)
        assert node.process.poll() is None
    latest = client.latest_batch()
    assert latest is not None and latest.batch_number >= int(batch["number"], 16)
    expected_first = 1
    for n in range(1, latest.batch_number + 1):  # contiguous: nothing lost
        committed = client.batch(n)
        assert committed is not None and committed.first_block == expected_first
        expected_first = committed.last_block + 1
    poster = Account.from_key(DEV_KEYS[1]).address
    for number in range(w3.eth.block_number + 1):  # no doubled or reverted commitment
        block: Any = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] == poster:
                assert w3.eth.get_transaction_receipt(tx["hash"])["status"] == 1
