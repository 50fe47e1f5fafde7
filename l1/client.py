"""The batch contract through web3.py, against any Ethereum JSON-RPC endpoint or eth-tester.

The client signs its own EIP-1559 transactions with the poster key and tracks
that key's nonce itself, so it needs no unlocked account on the L1 node.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ABIError, ChecksumAddress
from eth_utils.abi import function_abi_to_4byte_selector
from eth_utils.exceptions import ValidationError
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import (
    BlockNotFound,
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TooManyRequests,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import TxParams, TxReceipt

from l1.api import L1Rejected
from l1.codec import batch_data_hash, split_batch_data
from l1.types import (
    BatchCommitment,
    BatchDomain,
    CommittedBatch,
    L1Call,
    L1Fees,
    L1Head,
    L1Receipt,
    ValidatorSet,
)
from primitives.errors import Halt, InvalidInput, RetryLater
from primitives.types import Address, Hash32, to_address, to_hash32

ARTIFACT = "BatchInbox.json"
"""Compiled contract (contracts/artifacts/), built by contracts/build.js."""
RECEIPT_TIMEOUT_S = 120.0
"""How long a send waits for its receipt before giving up with RetryLater."""
GAS_MARGIN_PERCENT = 25
"""Headroom over the gas estimate, for state that changes before inclusion."""
MAX_PART_BYTES = 120 * 1024
"""Calldata per L1 transaction; L1 nodes refuse transactions over 128 KiB."""
MEMBER_GAS = 50_000
"""Bound on updateValidators' storage work per member: two new slots (array entry and
weight, 20,000 gas each) and the old member's weight cleared."""

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
        max_part_bytes: int = MAX_PART_BYTES,
        receipt_timeout_s: float = RECEIPT_TIMEOUT_S,
    ) -> None:
        abi = load_artifact()["abi"]
        self._contract = w3.eth.contract(
            address=Web3.to_checksum_address(contract_address), abi=abi
        )
        account = None if poster_key is None else Account.from_key(poster_key)
        self._sender = _Sender(w3, account, _ErrorDecoder(abi), receipt_timeout_s)
        self._w3 = w3
        self._max_part_bytes = max_part_bytes
        self._domain: BatchDomain | None = None
        self._deployed_at: int | None = None  # L1 block of the deployment (batch 0)
        self._set_history = _SetHistory((), -1, b"")
        self._set_history_lock = threading.Lock()

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

    def genesis_state_root(self) -> Hash32:
        """The contract's genesisStateRoot."""
        with self._sender.l1_errors():
            return to_hash32(bytes(self._contract.functions.genesisStateRoot().call()))

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
        log = self._commit_event(number, l1_block)
        event = log["args"]
        return CommittedBatch(
            batch_number=number,
            prev_state_root=to_hash32(event["prevStateRoot"]),
            state_root=to_hash32(event["newStateRoot"]),
            first_block=int(event["firstBlock"]),
            last_block=int(event["lastBlock"]),
            data_hash=to_hash32(event["dataHash"]),
            l1_tx_hash=to_hash32(bytes(log["transactionHash"])),
            l1_block_number=l1_block,
        )

    def batch_data(self, batch: CommittedBatch) -> bytes:
        """The payload of ``batch``: its BatchData events joined, checked against data_hash.

        The BatchCommitted event names the submitter, the number of parts and the L1
        block of the first; the parts are that submitter's last ``parts`` BatchData
        events for the batch up to the commit (part 0 starts over, so they are one run).
        """
        commit = self._commit_event(batch.batch_number, batch.l1_block_number)
        args = commit["args"]
        parts = int(args["parts"])
        with self._sender.l1_errors():
            logs = self._contract.events.BatchData.get_logs(
                argument_filters={"batchNumber": batch.batch_number, "submitter": args["submitter"]},
                from_block=int(args["dataFromL1Block"]),
                to_block=batch.l1_block_number,
            )
        position = (commit["blockNumber"], commit["logIndex"])
        run = [log for log in logs if (log["blockNumber"], log["logIndex"]) < position][-parts:]
        payload = b"".join(bytes(log["args"]["data"]) for log in run)
        if [int(log["args"]["part"]) for log in run] != list(range(parts)) or (
            batch_data_hash(payload) != batch.data_hash
        ):
            raise RetryLater(
                f"batch {batch.batch_number}: the data parts on L1 do not match the committed "
                "data hash (an L1 reorg?)"
            )
        return payload

    def commit_batch(
        self, commitment: BatchCommitment, data: bytes, signatures: Sequence[bytes]
    ) -> Hash32:
        """Send the batch's data parts and commitBatch, each once the one before is mined.

        Returns the commitBatch transaction hash. Raises L1Rejected when the contract
        refuses a call, RetryLater on connection trouble, a transaction the L1 node
        refuses, or no receipt in time.
        """
        receipt = None
        for call in self.batch_calls(commitment, data, signatures):
            receipt = self._sender.send(self._contract.address, call.data)
        assert receipt is not None, "a batch has at least the commit call"
        return to_hash32(bytes(receipt["transactionHash"]))

    def validator_set(self) -> ValidatorSet:
        """The validator set the contract checks signatures against now."""
        with self._sender.l1_errors():
            epoch = int(self._contract.functions.validatorEpoch().call())
            signers, weights = self._contract.functions.validators().call()
        return ValidatorSet(
            epoch=epoch,
            members=tuple(
                (to_address(bytes.fromhex(s[2:])), int(w)) for s, w in zip(signers, weights)
            ),
        )

    def validators_at(self, batch: CommittedBatch) -> ValidatorSet:
        """The set in force when ``batch`` was committed: the last ValidatorsUpdated event
        (the constructor emits epoch 0's) before its BatchCommitted event."""
        commit = self._commit_event(batch.batch_number, batch.l1_block_number)
        changes = self._set_changes(batch.l1_block_number)
        at = bisect.bisect_left(changes, (commit["blockNumber"], commit["logIndex"]),
                                key=lambda change: change.position)
        if at == 0:
            raise RetryLater(f"batch {batch.batch_number}: no validator set on L1 before it (a reorg?)")
        return changes[at - 1].validators

    def _set_changes(self, upto: int) -> tuple[_SetChange, ...]:
        """The contract's ValidatorsUpdated events up to L1 block ``upto`` at least, in order.

        Read once, then only the blocks past the last read (a chain's life of batches is not
        a quadratic scan); all again when the last block read left the chain (an L1 reorg)."""
        with self._set_history_lock, self._sender.l1_errors():
            history = self._set_history
            if history.last >= 0 and self._block_hash(history.last) != history.last_hash:
                history = _SetHistory((), -1, b"")
            if upto <= history.last:
                return history.changes
            if self._deployed_at is None:
                self._deployed_at = int(self._contract.functions.getBatch(0).call()[4])
            start = max(history.last + 1, self._deployed_at)
            tip = self._block_hash(upto)
            logs = self._contract.events.ValidatorsUpdated.get_logs(from_block=start, to_block=upto)
            if tip is None or self._block_hash(upto) != tip:
                raise RetryLater(f"L1 block {upto} changed while its validator sets were read (a reorg)")
            self._set_history = _SetHistory(history.changes + tuple(map(_set_change, logs)), upto, tip)
            return self._set_history.changes

    def _block_hash(self, number: int) -> bytes | None:
        """The hash of L1 block ``number`` now; None when the chain is shorter."""
        try:
            return bytes(self._w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            return None

    def batch_signatures(self, batch: CommittedBatch) -> tuple[bytes, ...]:
        """The signatures argument of ``batch``'s commitBatch transaction."""
        with self._sender.l1_errors():
            try:
                tx = self._w3.eth.get_transaction(HexBytes(batch.l1_tx_hash))
            except TransactionNotFound as exc:
                raise RetryLater(f"batch {batch.batch_number}: its commit transaction is gone "
                                 "(an L1 reorg?)") from exc
        relayed = InvalidInput(
            f"batch {batch.batch_number}: L1 transaction 0x{batch.l1_tx_hash.hex()} is not a "
            "commitBatch call to the contract (relayed by another contract?): its signatures "
            "cannot be read"
        )
        if tx.get("to") != self._contract.address:
            raise relayed
        try:
            function, args = self._contract.decode_function_input(bytes(tx["input"]))
        except ValueError:
            raise relayed from None
        if function.fn_name != "commitBatch":
            raise relayed
        return tuple(bytes(s) for s in args["signatures"])

    def update_validators(
        self, new_set: ValidatorSet, signatures: Sequence[bytes]
    ) -> Hash32:
        """Install ``new_set`` (its epoch is the current one + 1), signed by the current quorum
        over l1.codec.validators_digest; waits for the receipt, returns the L1 tx hash.
        For tools and tests; the poster sends ``validators_call``."""
        receipt = self._sender.send(
            self._contract.address, self.validators_call(new_set, signatures).data
        )
        return to_hash32(bytes(receipt["transactionHash"]))

    def validators_call(self, new_set: ValidatorSet, signatures: Sequence[bytes]) -> L1Call:
        """updateValidators installing ``new_set``; the gas bound adds the storage of the
        members (the old ones cleared, the new ones written)."""
        data = self._encode(
            "updateValidators",
            [
                new_set.epoch,
                [Web3.to_checksum_address(a) for a, _ in new_set.members],
                [w for _, w in new_set.members],
                list(signatures),
            ],
        )
        return L1Call(
            data=data,
            gas=_gas_bound(len(data), len(signatures)) + MEMBER_GAS * len(new_set.members),
            what=f"validator set {new_set.epoch}",
        )

    def batch_calls(
        self, commitment: BatchCommitment, data: bytes, signatures: Sequence[bytes]
    ) -> tuple[L1Call, ...]:
        """appendBatchData for every part but the last, then commitBatch with the last.

        The commit's share of ``max_part_bytes`` leaves room for the signatures.
        """
        number = commitment.batch_number
        signature_bytes = 96 * len(signatures)  # 65 bytes padded to 64 + length + offset
        head, tail = _split_for_commit(data, self._max_part_bytes, signature_bytes)
        calls = [
            L1Call(
                data=self._encode("appendBatchData", [number, index, part]),
                gas=_gas_bound(len(part), 0),
                what=f"batch {number} data part {index}",
            )
            for index, part in enumerate(head)
        ]
        commit = self._encode(
            "commitBatch",
            [
                number,
                commitment.prev_state_root,
                commitment.state_root,
                commitment.first_block,
                commitment.last_block,
                len(head),
                tail,
                list(signatures),
            ],
        )
        calls.append(
            L1Call(data=commit, gas=_gas_bound(len(commit), len(signatures)), what=f"commit batch {number}")
        )
        return tuple(calls)

    def head(self) -> L1Head:
        """Number and base fee of the latest L1 block."""
        with self._sender.l1_errors():
            block = self._w3.eth.get_block("latest")
        return L1Head(number=int(block["number"]), base_fee_per_gas=int(block["baseFeePerGas"]))

    def poster_nonce(self) -> int:
        """Transactions of the poster account mined so far (its next nonce without the pool)."""
        with self._sender.l1_errors():
            return self._w3.eth.get_transaction_count(self._sender.address(), "latest")

    def suggested_fees(self) -> L1Fees:
        """Fees for a transaction sent now: twice the base fee (six full blocks of rises) + tip."""
        with self._sender.l1_errors():
            tip = int(self._w3.eth.max_priority_fee)
            base_fee = int(self._w3.eth.get_block("latest")["baseFeePerGas"])
        return L1Fees(max_fee_per_gas=2 * base_fee + tip, max_priority_fee_per_gas=tip)

    def send(self, call: L1Call, nonce: int, fees: L1Fees) -> Hash32:
        """Sign ``call`` with the poster key at ``nonce`` and hand it to the L1 node; no waiting.

        Raises RetryLater when the node refuses it (fee too low, nonce taken, funds).
        """
        return self._sender.send_raw(self._contract.address, call, nonce, fees)

    def is_known(self, tx_hash: Hash32) -> bool:
        """Whether the L1 node has ``tx_hash``, pending or mined."""
        with self._sender.l1_errors():
            try:
                self._w3.eth.get_transaction(HexBytes(tx_hash))
            except TransactionNotFound:
                return False
        return True

    def simulate(self, call: L1Call) -> None:
        """Run ``call`` against the latest L1 state without sending; L1Rejected says why it reverts."""
        self._sender.simulate(self._contract.address, call.data)

    def receipt(self, tx_hash: Hash32) -> L1Receipt | None:
        """The receipt of ``tx_hash``, or None while it is not mined (or no longer is)."""
        with self._sender.l1_errors():
            try:
                receipt = self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None
        if receipt is None or receipt["blockNumber"] is None:
            return None
        return L1Receipt(
            tx_hash=tx_hash, block_number=int(receipt["blockNumber"]), success=receipt["status"] == 1
        )

    def _encode(self, function: str, args: list[Any]) -> bytes:
        return bytes(HexBytes(self._contract.encode_abi(function, args)))

    def _commit_event(self, number: int, l1_block: int) -> Any:
        with self._sender.l1_errors():
            logs = self._contract.events.BatchCommitted.get_logs(
                argument_filters={"batchNumber": number}, from_block=l1_block, to_block=l1_block
            )
        if len(logs) != 1:
            # The L1 block changed between the two reads (a reorg): ask again later.
            raise RetryLater(f"batch {number}: L1 block {l1_block} has {len(logs)} commit events")
        return logs[0]


@dataclass(frozen=True)
class _SetChange:
    """A validator set the contract installed, and where."""

    position: tuple[int, int]
    """L1 block number and log index of its ValidatorsUpdated event."""
    validators: ValidatorSet
    """The set."""


def _set_change(log: Any) -> _SetChange:
    args = log["args"]
    return _SetChange(
        position=(int(log["blockNumber"]), int(log["logIndex"])),
        validators=ValidatorSet(
            epoch=int(args["epoch"]),
            members=tuple((to_address(bytes.fromhex(s[2:])), int(w))
                          for s, w in zip(args["signers"], args["weights"])),
        ),
    )


@dataclass(frozen=True)
class _SetHistory:
    """The validator sets read from L1 so far."""

    changes: tuple[_SetChange, ...]
    """Every ValidatorsUpdated event up to ``last``, in order."""
    last: int
    """The last L1 block read (-1: none yet)."""
    last_hash: bytes
    """Its hash when read: another one there means a reorg."""


def _split_for_commit(
    data: bytes, max_part_bytes: int, reserved: int
) -> tuple[tuple[bytes, ...], bytes]:
    """Parts sent before the commit, and the commit's own part (which shares its room)."""
    if len(data) + reserved <= max_part_bytes:
        return (), data
    parts = split_batch_data(data, max_part_bytes)
    if len(parts[-1]) + reserved > max_part_bytes:
        # The last part and the signatures do not fit together: the commit carries no data.
        return parts, b""
    return parts[:-1], parts[-1]


def _gas_bound(calldata_bytes: int, signatures: int) -> int:
    """Gas limit for a BatchInbox call: more than it can use, whatever the data.

    Calldata costs at most 40 gas a byte (the EIP-7623 floor); execution adds the event
    copy (8 a byte) and hashing; the rest covers storage writes, and ecrecover per signature.
    Unused gas is not charged.
    """
    return 21_000 + 50 * calldata_bytes + 200_000 + 12_000 * signatures


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
    address = sender.send(None, bytes(HexBytes(constructor.data_in_transaction)))["contractAddress"]
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
    """Builds, signs and sends EIP-1559 transactions from one key."""

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

    def address(self) -> ChecksumAddress:
        return self._signer().address

    def send(self, to: str | None, data: bytes) -> TxReceipt:
        """Send ``data`` to ``to`` (None: create) at the pending nonce; wait for a successful receipt.

        The gas estimate runs the call first: a call the contract refuses fails here,
        before any fee, with the contract's reason.
        """
        account = self._signer()
        params: TxParams = {"from": account.address, "data": HexBytes(data)}
        if to is not None:
            params["to"] = Web3.to_checksum_address(to)
        with self.l1_errors():
            gas = self._w3.eth.estimate_gas(params) * (100 + GAS_MARGIN_PERCENT) // 100
            tip = int(self._w3.eth.max_priority_fee)
            base_fee = int(self._w3.eth.get_block("latest")["baseFeePerGas"])
            nonce = self._w3.eth.get_transaction_count(account.address, "pending")
            call = L1Call(data=data, gas=gas, what="")
            tx_hash = self._sign_and_send(to, call, nonce, L1Fees(2 * base_fee + tip, tip))
            receipt = self._w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self._receipt_timeout_s
            )
        if receipt["status"] != 1:
            raise L1Rejected(
                f"transaction 0x{tx_hash.hex()} reverted in L1 block {receipt['blockNumber']}: "
                f"{self._reason(params)}"
            )
        return receipt

    def simulate(self, to: str, data: bytes) -> None:
        """eth_call ``data`` to ``to`` from this key (or from no one, read-only)."""
        params: TxParams = {"to": Web3.to_checksum_address(to), "data": HexBytes(data)}
        if self._account is not None:
            params["from"] = self._account.address
        with self.l1_errors():
            self._w3.eth.call(params)

    def send_raw(self, to: str, call: L1Call, nonce: int, fees: L1Fees) -> Hash32:
        """Sign and send ``call`` as given; returns its hash without waiting."""
        with self.l1_errors():
            return self._sign_and_send(to, call, nonce, fees)

    def _sign_and_send(self, to: str | None, call: L1Call, nonce: int, fees: L1Fees) -> Hash32:
        fields: dict[str, Any] = {
            "nonce": nonce,
            "gas": call.gas,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            "chainId": self._w3.eth.chain_id,
            "data": call.data,
            "value": 0,
            "type": 2,
        }
        if to is not None:
            fields["to"] = Web3.to_checksum_address(to)
        signed = self._signer().sign_transaction(fields)
        try:
            self._w3.eth.send_raw_transaction(signed.raw_transaction)
        except (Web3RPCError, ValidationError) as exc:
            if "already known" in str(exc):
                return to_hash32(bytes(signed.hash))  # the node has this very transaction
            # Nonce taken, fee too low, low funds: nothing was sent.
            raise RetryLater(f"L1 refused the transaction: {exc}") from exc
        return to_hash32(bytes(signed.hash))

    def _signer(self) -> LocalAccount:
        if self._account is None:
            raise Halt("this L1 client is read-only: it has no poster key to send with")
        return self._account

    def _reason(self, params: TxParams) -> str:
        """Why the call reverts now (it reverted when mined, after a successful estimate)."""
        try:
            with self.l1_errors():
                self._w3.eth.estimate_gas(params)
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
