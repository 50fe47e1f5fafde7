"""`l2node devnet --validators 4` as real processes over libp2p: transactions sent to
different nodes end up once in one chain that every node agrees on; a validator killed
with SIGKILL does not stop finality; restarted, it catches up."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from l1.client import Web3L1Client
from node.devnet import NODE_LINE, devnet_validator_key
from node.genesis import development_keys
from primitives.crypto import private_key_to_address
from primitives.types import Address
from tests.nodeproc import l2node_command, l2node_env, post_json

MNEMONIC = "test test test test test test test test test test test junk"
RECIPIENT = "0x" + "42" * 20
EPOCH = 40
"""Blocks per GPU-weight epoch: 10 s at 0.25 s per block, a challenge of 1.25 s in each."""


@dataclass
class Member:
    index: int
    pid: int
    url: str
    p2p: str
    log: Path

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        answer = post_json(self.url, {"jsonrpc": "2.0", "id": 1, "method": method,
                                      "params": params or []})
        assert "result" in answer, answer
        return answer["result"]

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def block(self, number: int) -> dict[str, Any]:
        block: dict[str, Any] = self.rpc("eth_getBlockByNumber", [hex(number), False])
        return block


def _ports_free(base: int) -> bool:
    for port in [*range(base, base + 4), *range(base + 100, base + 104),
                 *range(base + 300, base + 304)]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(what: str, condition: Callable[[], bool], timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass  # a node not answering yet
        time.sleep(0.25)
    tails = "\n".join(f"--- {p}\n" + "\n".join(p.read_text().splitlines()[-15:]) for p in logs)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


@contextmanager
def devnet(
    directory: Path, epoch_length: int = EPOCH
) -> Iterator[tuple[list[Member], str, subprocess.Popen[str]]]:
    """The devnet's members and the line that says what it does with L1."""
    base = next(b for b in (random.randrange(20_000, 32_000) for _ in range(50)) if _ports_free(b))
    process = subprocess.Popen(
        l2node_command("devnet", "--validators", "4", "--base-port", str(base),
                       "--data-dir", str(directory), "--block-time", "0.25",
                       "--epoch-length", str(epoch_length)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=l2node_env(),
    )
    try:
        members: list[Member] = []
        assert process.stdout is not None
        while len(members) < 4:
            line = process.stdout.readline()
            assert line, f"devnet exited early with {process.wait()}"
            match = NODE_LINE.match(line)
            if match:
                index, pid, url, addr, log = match.groups()
                members.append(Member(int(index), int(pid), url, addr, Path(log)))
        l1_line = process.stdout.readline()
        yield members, l1_line, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_four_validators_agree_survive_a_kill_and_the_killed_one_catches_up(
    tmp_path: Path,
) -> None:
    with devnet(tmp_path / "devnet") as (members, l1_line, process):
        logs = [m.log for m in members]
        _wait("all nodes at block 2", lambda: min(m.head() for m in members) >= 2, 90, logs)

        # One transfer from each of four wallets, each sent to a different node.
        keys = development_keys(MNEMONIC, 4)
        hashes = []
        for member, key in zip(members, keys):
            tx = {"chainId": 7331, "nonce": 0, "to": RECIPIENT, "value": 10**18 + member.index,
                  "gas": 21_000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}
            raw = Account.sign_transaction(tx, key).raw_transaction
            hashes.append(member.rpc("eth_sendRawTransaction", ["0x" + raw.hex()]))
        expected = hex(sum(10**18 + i for i in range(4)))

        def everyone_has_everything() -> bool:
            return all(m.rpc("eth_getBalance", [RECIPIENT, "latest"]) == expected for m in members)

        _wait("every transfer on every node", everyone_has_everything, 60, logs)
        for member in members:
            blocks = [member.rpc("eth_getTransactionReceipt", [h])["blockHash"] for h in hashes]
            assert blocks == [members[0].rpc("eth_getTransactionReceipt", [h])["blockHash"]
                              for h in hashes]
        common = min(m.head() for m in members)
        views = {(m.block(common)["hash"], m.block(common)["stateRoot"]) for m in members}
        assert len(views) == 1, views
        assert int(members[0].rpc("net_peerCount"), 16) == 3
        if "node 0 posts" in l1_line:  # anvil is installed (npm install): batches reach L1
            _wait("a batch on L1", lambda: members[0].rpc("l2_latestCommittedBatch") is not None,
                  60, logs)
            batch = members[0].rpc("l2_latestCommittedBatch")
            posted = members[2].block(int(batch["lastBlock"], 16))["stateRoot"]
            assert batch["stateRoot"] == posted
        else:
            assert "L1 posting off" in l1_line, l1_line

        # Epoch 1 runs on the work the validators proved in epoch 0 (CPU challenges here).
        def epoch_one() -> bool:
            return all(int(m.rpc("l2_getValidators")["epoch"], 16) >= 1 for m in members)

        _wait("GPU weights of epoch 1", epoch_one, 90, logs)
        epoch_one_set = members[0].rpc("l2_getValidators", [hex(EPOCH)])
        assert epoch_one_set["epoch"] == "0x1"
        assert all(m.rpc("l2_getValidators", [hex(EPOCH)]) == epoch_one_set for m in members)
        weights = {int(v["address"], 16): int(v["weight"], 16)
                   for v in epoch_one_set["validators"]}
        assert weights and all(w > 1 for w in weights.values()), weights

        # SIGKILL the validator with the least weight (every share is capped under 1/3): the
        # others keep finalizing.
        def weight_of(member: Member) -> int:
            return weights.get(int.from_bytes(private_key_to_address(
                devnet_validator_key(member.index)), "big"), 0)

        victim = min(members, key=weight_of)
        os.kill(victim.pid, signal.SIGKILL)
        alive = [m for m in members if m is not victim]
        killed_at = alive[0].head()
        _wait("finality without one node", lambda: min(m.head() for m in alive) >= killed_at + 8,
              60, logs)

        # Restarted on its database, it catches up and follows the same chain.
        config = victim.log.with_name(f"node{victim.index}.toml")
        with victim.log.open("ab") as log:
            restarted = subprocess.Popen(
                l2node_command("run", "--config", str(config),
                               "--data-dir", str(victim.log.with_name(f"node{victim.index}"))),
                stdout=log, stderr=subprocess.STDOUT, env=l2node_env(),
            )
        try:
            target = alive[0].head()
            _wait("the restarted node catching up", lambda: victim.head() >= target + 2, 90, logs)
            height = min(victim.head(), alive[0].head())
            assert victim.block(height)["hash"] == alive[0].block(height)["hash"]
            assert victim.rpc("eth_getBalance", [RECIPIENT, "latest"]) == expected
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(timeout=60) == 0
    assert process.returncode == 0


SHORT_EPOCH = 8
"""Blocks per epoch of the L1 test: 2 s at 0.25 s per block (a CPU challenge of 0.25 s), one
batch each (blocks_per_batch is 10)."""


# In the default run (the issue asks for it in CI): 51 s on a quiet 2-core box, 80-110 s on a
# loaded one; four nodes, anvil, then a full watch.
def test_each_epochs_weights_reach_l1_and_watch_strict_verifies_every_batch(
    tmp_path: Path,
) -> None:
    with devnet(tmp_path / "devnet", epoch_length=SHORT_EPOCH) as (members, l1_line, _process):
        # anvil comes with the npm packages the test run installs (scripts/test).
        match = re.search(r"L1 anvil (\S+), batch contract (0x[0-9a-f]{40}), node 0 posts", l1_line)
        assert match, f"no L1 in the devnet: {l1_line}"
        url, contract = match[1], match[2]
        l1 = Web3L1Client(Web3(Web3.HTTPProvider(url)), Address(bytes.fromhex(contract[2:])))
        logs = [m.log for m in members]
        assert l1.validator_set().epoch == 0

        # Epoch 2's set: its weights come from the proofs carried in epoch 1 (CPU work here).
        _wait("validator set 2 on L1", lambda: l1.validator_set().epoch >= 2, 150, logs)
        on_l1 = l1.validator_set()
        last_of_epoch_1 = 2 * SHORT_EPOCH  # l2_getValidators(n) is the set deciding n + 1
        # Node 0 posts the set; the others may still be a block or two behind it.
        _wait(f"every node at block {last_of_epoch_1}",
              lambda: all(m.head() >= last_of_epoch_1 for m in members), 60, logs)
        deciding = members[1].rpc("l2_getValidators", [hex(last_of_epoch_1)])
        assert int(deciding["epoch"], 16) == 2
        assert all(m.rpc("l2_getValidators", [hex(last_of_epoch_1)]) == deciding for m in members)
        l2_weights = {Address(bytes.fromhex(v["address"][2:])): int(v["weight"], 16)
                      for v in deciding["validators"]}
        assert on_l1.epoch == 2 and on_l1.weights == l2_weights, (on_l1, l2_weights)
        assert all(w > 1 for w in l2_weights.values()), l2_weights  # proven work, not genesis 1s
        # Batches of epoch 2 land only under set 2; wait for one so every set is exercised.
        _wait("a batch of epoch 2", lambda: (b := l1.latest_batch()) is not None
              and b.first_block > last_of_epoch_1, 60, logs)

        # Rebuilt from L1 alone: every batch verifies, its signers included. The validators
        # stop first (anvil stays), leaving the CPUs to the watcher's proof checks.
        for member in members:
            os.kill(member.pid, signal.SIGTERM)
        _wait("the validators to stop", lambda: not any(_alive(m.pid) for m in members), 60, logs)
        watched = subprocess.run(
            l2node_command("watch", "--l1-rpc", url, "--contract", contract,
                           "--genesis", str(tmp_path / "devnet" / "genesis.json"),
                           "--data-dir", str(tmp_path / "watch"), "--strict"),
            capture_output=True, text=True, timeout=240, env=l2node_env(), check=False,
        )
        assert watched.returncode == 0, watched.stdout + watched.stderr
        lines = watched.stdout.splitlines()
        assert lines and all(" OK root 0x" in line for line in lines), watched.stdout
        epochs_seen = {(int(line.split()[3].split("-")[0]) - 1) // SHORT_EPOCH for line in lines}
        assert epochs_seen >= {0, 1, 2}, lines
