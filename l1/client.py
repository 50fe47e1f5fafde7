"""The batch contract through web3.py, against any Ethereum JSON-RPC endpoint or eth-tester.

The client signs its own EIP-1559 transactions with the poster key and tracks
that key's nonce itself, so it needs no unlocked account on the L1 node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ABIError
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.exceptions import ValidationError
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import Nonce, TxParams, TxReceipt, Wei

from l1.api import L1Rejected
from l1.types import BatchCommitment, BatchDomain, CommittedBatch
from primitives.crypto import keccak256
from primitives.errors import Halt, RetryLater
from primitives.types import Address, Hash32, to_address, to_hash32

ARTIFACT = "BatchInbox.json"
"""Compiled contract (contracts/artifacts/), built by contracts/build.js."""
RECEIPT_TIMEOUT_S = 120.0
"""How long a send waits for its receipt before giving up with RetryLater."""
GAS_MARGIN_PERCENT = 25
"""Headroom over the gas estimate, for state that changes before inclusion."""

# OSError covers requests' connection errors and timeouts (HTTPProvider).
_TRANSIENT = (OSError, ProviderConnectionError, RequestTimedOut, TimeExhausted, TooManyRequests)


def load_artifact() -> dict[str, Any]:
    """The committed BatchInbox artifact: {contractName, abi, bytecode, solcVersion, ...}."""
    text = resources.files("contracts").joinpath("artifacts", ARTIFACT).read_text("utf-8")
    artifact: dict[str, Any] = json.loads(text)
    return artifact


class Web3L1Client:
    """L1Client for a deployed BatchInbox; read-only (a watcher) without ``poster_key``."""

    def __init__(
        self,
        w3: Web3,
        contract_address: Address,
        poster_key: bytes | None = None,
        *,
        receipt_timeout_s: float = RECEIPT_TIMEOUT_S,
    ) -> None:
        abi = load_artifact()["abi"]
        self._contract = w3.eth.contract(
            address=Web3.to_checksum_address(contract_address), abi=abi
        )
        account = None if poster_key is None else Account.from_key(poster_key)
        self._sender = _Sender(w3, account, _ErrorDecoder(abi), receipt_timeout_s)
        self._w3 = w3
        self._domain: BatchDomain | None = None

    @property
    def contract_address(self) -> Address:
        """Address of the BatchInbox this client talks to."""
        return to_address(bytes.fromhex(self._contract.address[2:]))

    def domain(self) -> BatchDomain:
        """L1 chain id, contract address and the contract's L2 chain id (read once)."""
        if self._domain is None:
            with self._sender.l1_errors():
                self._domain = BatchDomain(
                    l1_chain_id=self._w3.eth.chain_id,
                    contract=self.contract_address,
                    l2_chain_id=int(self._contract.functions.l2ChainId().call()),
                )
        return self._domain

    def latest_batch(self) -> CommittedBatch | None:
        """The last committed batch, or None when none is committed yet."""
        with self._sender.l1_errors():
            latest = int(self._contract.functions.latestBatchNumber().call())
        return self.batch(latest) if latest > 0 else None

    def batch(self, number: int) -> CommittedBatch | None:
        """Committed batch ``number``, or None when it is not committed."""
        if number < 1:
            return None
        with self._sender.l1_errors():
            if number > self._contract.functions.latestBatchNumber().call():
                return None
            l1_block = int(self._contract.functions.getBatch(number).call()[4])
            logs = self._contract.events.BatchCommitted.get_logs(
                argument_filters={"batchNumber": number}, from_block=l1_block, to_block=l1_block
            )
        if len(logs) != 1:
            # The L1 block changed between the two reads (a reorg): ask again later.
            raise RetryLater(f"batch {number}: L1 block {l1_block} has {len(logs)} commit events")
        event = logs[0]["args"]
        return CommittedBatch(
            batch_number=number,
            prev_state_root=to_hash32(event["prevStateRoot"]),
            state_root=to_hash32(event["newStateRoot"]),
            first_block=int(event["firstBlock"]),
            last_block=int(event["lastBlock"]),
            data_hash=to_hash32(event["dataHash"]),
            l1_tx_hash=to_hash32(bytes(logs[0]["transactionHash"])),
            l1_block_number=l1_block,
        )

    def batch_data(self, batch: CommittedBatch) -> bytes:
        """The payload of ``batch``: the ``data`` argument of its commitBatch transaction."""
        with self._sender.l1_errors():
            try:
                tx = self._w3.eth.get_transaction(HexBytes(batch.l1_tx_hash))
            except TransactionNotFound:
                raise RetryLater(
                    f"batch {batch.batch_number}: L1 transaction 0x{batch.l1_tx_hash.hex()} "
                    "is gone (an L1 reorg?)"
                ) from None
        _, args = self._contract.decode_function_input(tx["input"])
        data = bytes(args["data"])
        if keccak256(data) != batch.data_hash:
            raise RetryLater(
                f"batch {batch.batch_number}: data in L1 transaction 0x{batch.l1_tx_hash.hex()} "
                "does not match the committed data hash (an L1 reorg?)"
            )
        return data

    def commit_batch(
        self, commitment: BatchCommitment, data: bytes, signatures: Sequence[bytes]
    ) -> Hash32:
        """Send commitBatch and wait for its receipt; returns the L1 transaction hash.

        Raises L1Rejected when the contract refuses the batch, RetryLater on
        connection trouble, a transaction the L1 node refuses, or no receipt in time.
        """
        call = self._contract.functions.commitBatch(
            commitment.batch_number,
            commitment.prev_state_root,
            commitment.state_root,
            commitment.first_block,
            commitment.last_block,
            data,
            list(signatures),
        )
        return to_hash32(bytes(self._sender.send(call)["transactionHash"]))


def deploy_batch_inbox(
    w3: Web3,
    deployer_key: bytes,
    l2_chain_id: int,
    genesis_root: Hash32,
    signers: Sequence[Address],
    weights: Sequence[int],
) -> Address:
    """Deploy BatchInbox with the genesis validator set; returns its address once mined."""
    artifact = load_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    constructor = factory.constructor(
        l2_chain_id, genesis_root, [Web3.to_checksum_address(s) for s in signers], list(weights)
    )
    sender = _Sender(w3, Account.from_key(deployer_key), _ErrorDecoder(artifact["abi"]))
    address = sender.send(constructor)["contractAddress"]
    assert address is not None, "a successful creation receipt names the contract"
    return to_address(bytes.fromhex(address[2:]))


class _ErrorDecoder:
    """Turns the revert data of the contract's custom errors into readable text."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors = {
            function_abi_to_4byte_selector(cast(ABIError, entry)): entry
            for entry in abi
            if entry["type"] == "error"
        }

    def describe(self, data: bytes) -> str:
        entry = self._errors.get(data[:4])
        if entry is None:
            return f"revert data 0x{data.hex()}"
        types = [arg["type"] for arg in entry["inputs"]]
        values = abi_decode(types, data[4:])
        args = ", ".join(
            f"{arg['name']}={'0x' + v.hex() if isinstance(v, bytes) else v}"
            for arg, v in zip(entry["inputs"], values)
        )
        return f"{entry['name']}({args})"


class _Sender:
    """Builds, signs and sends EIP-1559 transactions from one key, tracking its nonce."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount | None,
        errors: _ErrorDecoder,
        receipt_timeout_s: float = RECEIPT_TIMEOUT_S,
    ) -> None:
        self._w3 = w3
        self._account = account
        self._errors = errors
        self._receipt_timeout_s = receipt_timeout_s
        # Read from the chain before the first send and again after any failed one.
        self._nonce: int | None = None

    def send(self, call: ContractFunction | ContractConstructor) -> TxReceipt:
        """Send ``call`` and wait for a successful receipt."""
        if self._account is None:
            raise Halt("this L1 client is read-only: it has no poster key to send with")
        with self.l1_errors():
            params: TxParams = {"from": self._account.address}
            # The estimate runs the call: a batch the contract refuses fails here, before any fee.
            gas = call.estimate_gas(params) * (100 + GAS_MARGIN_PERCENT) // 100
            base_fee = int(self._w3.eth.get_block("latest")["baseFeePerGas"])
            tip = int(self._w3.eth.max_priority_fee)
            if self._nonce is None:
                self._nonce = self._w3.eth.get_transaction_count(self._account.address, "pending")
            fields: TxParams = {
                "from": self._account.address,
                "nonce": Nonce(self._nonce),
                "gas": gas,
                # Twice the base fee survives six full blocks of base fee increases.
                "maxFeePerGas": Wei(2 * base_fee + tip),
                "maxPriorityFeePerGas": Wei(tip),
                "chainId": self._w3.eth.chain_id,
                "type": 2,
            }
            tx = call.build_transaction(fields)
            signed = self._account.sign_transaction(cast(dict[str, Any], tx))
            try:
                tx_hash = self._w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3RPCError, ValidationError) as exc:
                # Nonce races, low funds, fee too low: nothing was sent; read the nonce again.
                self._nonce = None
                raise RetryLater(f"L1 refused the transaction: {exc}") from exc
            self._nonce += 1
            try:
                receipt = self._w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=self._receipt_timeout_s
                )
            except TimeExhausted:
                self._nonce = None  # the pending count tells whether it is still queued
                raise
        if receipt["status"] != 1:
            raise L1Rejected(
                f"transaction 0x{bytes(tx_hash).hex()} reverted in L1 block "
                f"{receipt['blockNumber']}: {self._reason(call)}"
            )
        return receipt

    def _reason(self, call: ContractFunction | ContractConstructor) -> str:
        """Why ``call`` reverts now (it reverted when mined, after a successful estimate)."""
        try:
            with self.l1_errors():
                call.estimate_gas({} if self._account is None else {"from": self._account.address})
        except L1Rejected as exc:
            return str(exc)
        return "no reason (the call succeeds against the current L1 state)"

    @contextmanager
    def l1_errors(self) -> Iterator[None]:
        """Map web3's exceptions to the error tree: reverts and transient trouble."""
        try:
            yield
        except ContractLogicError as exc:
            raise L1Rejected(self._describe(exc)) from exc
        except _TRANSIENT as exc:
            raise RetryLater(f"L1 unavailable: {exc!r}") from exc

    def _describe(self, exc: ContractLogicError) -> str:
        data = exc.data
        if isinstance(data, str) and data.startswith("0x"):
            return self._errors.describe(bytes.fromhex(data[2:]))
        return str(exc.message or exc)
