"""Methods that describe the chain and the node rather than read one value: eth_baseFee,
eth_getStorageValues, eth_capabilities, eth_config (EIP-7910) and eth_fillTransaction."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from executor_gpu.types import Deadline
from primitives import rlp
from primitives.transactions import ACCESS_LIST_TX, DYNAMIC_FEE_TX, LEGACY_TX, encode_access_list
from primitives.types import ZERO_ADDRESS, Address
from rpc.api import NodeBackend
from rpc.codec import (
    LATEST,
    Args,
    BlockId,
    CallRequest,
    data,
    parse_address,
    parse_block_ref,
    parse_call,
    parse_storage_slot,
    parse_u64,
    quantity,
)
from rpc.errors import InvalidParams, header_not_found
from rpc.trace import access_list_json

JsonObject = dict[str, object]

MAX_STORAGE_VALUES = 1024
"""Most slots one eth_getStorageValues call may read, all accounts together."""
CANCUN_PRECOMPILES = {
    "ECREC": 1, "SHA256": 2, "RIPEMD160": 3, "ID": 4, "MODEXP": 5, "BN254_ADD": 6,
    "BN254_MUL": 7, "BN254_PAIRING": 8, "BLAKE2F": 9, "KZG_POINT_EVALUATION": 10,
}
"""EIP-7910's names of the precompiles this chain runs (Cancun's)."""
CANCUN_BLOB_SCHEDULE = {"target": 3, "max": 6, "baseFeeUpdateFraction": 3_338_477}
"""EIP-4844's blob parameters (no blob transactions are accepted here; the fee stays minimal)."""


def _storage_requests(value: object) -> dict[Address, list[int]]:
    if not isinstance(value, dict):
        raise InvalidParams("expected an object of address -> storage keys")
    if not value:
        raise InvalidParams("empty request")
    requests: dict[Address, list[int]] = {}
    total = 0
    for key, slots in value.items():
        if not isinstance(slots, list):
            raise InvalidParams(f"{key}: expected an array of storage keys")
        total += len(slots)
        if total > MAX_STORAGE_VALUES:
            raise InvalidParams(f"at most {MAX_STORAGE_VALUES} storage keys")
        requests[parse_address(key)] = [parse_storage_slot(slot) for slot in slots]
    return requests


class ChainInfoMethods:
    """The methods over one NodeBackend."""

    def __init__(
        self,
        backend: NodeBackend,
        state_number: Callable[[BlockId], int],
        call_gas: Callable[[CallRequest, int], int],
        estimate: Callable[[Args, Deadline], object],
    ) -> None:
        """``state_number`` resolves a block argument; ``call_gas`` is a request's gas cap;
        ``estimate`` is eth_estimateGas."""
        self._backend = backend
        self._state_number = state_number
        self._call_gas = call_gas
        self._estimate = estimate

    def methods(self) -> dict[str, tuple[int, Callable[[Args], object]]]:
        """name -> (most arguments, handler)."""
        return {
            "eth_baseFee": (0, lambda _: quantity(self._backend.next_base_fee())),
            "eth_getStorageValues": (2, self._storage_values),
            "eth_capabilities": (0, self._capabilities),
            "eth_config": (0, self._config),
        }

    def expensive_methods(self) -> dict[str, tuple[int, Callable[[Args, Deadline], object]]]:
        """name -> (most arguments, handler) of the ones that run calls, by a deadline."""
        return {"eth_fillTransaction": (1, self._fill)}

    def _storage_values(self, args: Args) -> object:
        requests = args.required(0, _storage_requests)
        state = self._backend.state_at(
            self._state_number(args.optional(1, parse_block_ref, LATEST)))
        return {
            data(address): [data(state.get_storage(address, slot).to_bytes(32, "big"))
                            for slot in slots]
            for address, slots in requests.items()
        }

    def _capabilities(self, args: Args) -> object:
        head = self._backend.block_by_number(self._backend.head_number())
        if head is None:
            raise header_not_found()
        # An archive: every block's state stays under its root, nothing is ever pruned.
        kept = {"disabled": False, "oldestBlock": "0x0"}
        return {
            "head": {"number": quantity(head.header.number), "hash": data(head.header.hash)},
            **{name: dict(kept) for name in
               ("state", "tx", "logs", "receipts", "blocks", "stateproofs")},
        }

    def _config(self, args: Args) -> object:
        genesis = self._backend.block_by_number(0)
        if genesis is None:
            raise header_not_found()
        # Every fork up to Cancun is active from genesis, so none enters the fork hash
        # (EIP-2124/6122): it is the CRC32 of the genesis hash alone. No fork is scheduled.
        fork_id = zlib.crc32(genesis.header.hash).to_bytes(4, "big")
        current = {
            "activationTime": genesis.header.timestamp,
            "blobSchedule": dict(CANCUN_BLOB_SCHEDULE),
            "chainId": quantity(self._backend.chain_id),
            "forkId": data(fork_id),
            "precompiles": {name: data(index.to_bytes(20, "big"))
                            for name, index in CANCUN_PRECOMPILES.items()},
            # Blocks run no system calls (no EIP-4788 beacon roots on this L2).
            "systemContracts": {},
        }
        return {"current": current, "next": None, "last": None}

    def _fill(self, args: Args, deadline: Deadline) -> object:
        request = args.required(0, parse_call)
        sender = request.sender or ZERO_ADDRESS
        nonce = self._backend.pending_nonce(sender)
        gas = request.gas
        if gas is None:
            gas = parse_u64(self._estimate(args, deadline))
        tip = request.max_priority_fee_per_gas
        if request.gas_price is not None:
            tx_type = ACCESS_LIST_TX if request.access_list else LEGACY_TX
            fee_cap = tip = request.gas_price
        else:
            tx_type = DYNAMIC_FEE_TX
            tip = self._backend.max_priority_fee() if tip is None else tip
            # geth's default cap: room for the base fee to double.
            fee_cap = request.max_fee_per_gas or 2 * self._backend.next_base_fee() + tip
            tip = min(tip, fee_cap)
        chain_id = self._backend.chain_id
        to = b"" if request.to is None else request.to
        access = encode_access_list(request.access_list)
        fields: list[rlp.Item]
        if tx_type == LEGACY_TX:
            fields = [nonce, fee_cap, gas, to, request.value, request.data, chain_id, 0, 0]
            raw = rlp.encode(fields)
        elif tx_type == ACCESS_LIST_TX:
            fields = [chain_id, nonce, fee_cap, gas, to, request.value, request.data, access,
                      0, 0, 0]
            raw = bytes([tx_type]) + rlp.encode(fields)
        else:
            fields = [chain_id, nonce, tip, fee_cap, gas, to, request.value, request.data,
                      access, 0, 0, 0]
            raw = bytes([tx_type]) + rlp.encode(fields)
        tx: JsonObject = {
            "type": quantity(tx_type), "nonce": quantity(nonce),
            "to": None if request.to is None else data(request.to), "gas": quantity(gas),
            "value": quantity(request.value), "input": data(request.data),
            "gasPrice": quantity(fee_cap), "chainId": quantity(chain_id),
        }
        if tx_type != LEGACY_TX:
            tx["accessList"] = access_list_json(request.access_list)
        if tx_type == DYNAMIC_FEE_TX:
            tx["maxFeePerGas"] = quantity(fee_cap)
            tx["maxPriorityFeePerGas"] = quantity(tip)
        return {"raw": data(raw), "tx": tx}
