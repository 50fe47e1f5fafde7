"""Decoding of JSON-RPC parameters and hex encoding of results, with geth's rules.

Quantities are 0x-hex without leading zeros; data is 0x-hex with an even number of digits.
Every decoder raises InvalidParams with a message saying what is wrong; ``Args`` adds which
argument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from executor_gpu.types import AccountOverride
from primitives.transactions import AccessListEntry
from primitives.types import UINT64_MAX, UINT256_MAX, Address, Hash32
from rpc.errors import SERVER_ERROR, InvalidParams, RpcError

T = TypeVar("T")

_HEX = re.compile(r"0[xX]([0-9a-fA-F]*)")

MAX_TOPICS = 4
"""A log has at most four topics, so a filter has at most four positions."""


def quantity(value: int) -> str:
    """Encode an integer as a JSON-RPC quantity."""
    return hex(value)


def data(value: bytes) -> str:
    """Encode bytes as JSON-RPC data."""
    return "0x" + value.hex()


def _hex_digits(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidParams(f"expected a 0x-prefixed hex string, got {kind_of(value)}")
    match = _HEX.fullmatch(value)
    if match is None:
        if value[:2] not in ("0x", "0X"):
            raise InvalidParams("hex string without 0x prefix")
        raise InvalidParams("invalid hex string")
    return match.group(1)


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"


def parse_quantity(value: object, limit: int = UINT256_MAX) -> int:
    """A quantity of at most ``limit``."""
    digits = _hex_digits(value)
    if not digits:
        raise InvalidParams('hex string "0x" is not a quantity')
    if len(digits) > 1 and digits[0] == "0":
        raise InvalidParams("hex number with leading zero digits")
    # Check the length first so that a huge string is never converted.
    if len(digits) > (limit.bit_length() + 3) // 4 or int(digits, 16) > limit:
        raise InvalidParams(f"hex number > {limit.bit_length()} bits")
    return int(digits, 16)


def parse_u64(value: object) -> int:
    """A 64-bit quantity (block numbers, gas, nonces, indexes)."""
    return parse_quantity(value, UINT64_MAX)


def parse_data(value: object) -> bytes:
    """Arbitrary data."""
    digits = _hex_digits(value)
    if len(digits) % 2:
        raise InvalidParams("hex string of odd length")
    return bytes.fromhex(digits)


def _fixed(value: object, size: int, what: str) -> bytes:
    raw = parse_data(value)
    if len(raw) != size:
        raise InvalidParams(f"hex string has length {2 * len(raw)}, want {2 * size} for {what}")
    return raw


def parse_address(value: object) -> Address:
    """A 20-byte address, checksummed or not (geth does not check EIP-55 either)."""
    return Address(_fixed(value, 20, "address"))


def parse_hash(value: object) -> Hash32:
    """A 32-byte hash."""
    return Hash32(_fixed(value, 32, "hash"))


def parse_bool(value: object) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise InvalidParams(f"expected a boolean, got {kind_of(value)}")
    return value


def parse_storage_slot(value: object) -> int:
    """A storage key: any hex of at most 32 bytes, leading zeros allowed (as geth)."""
    digits = _hex_digits(value)
    if not digits or len(digits) > 64:
        raise InvalidParams("storage key must be 1 to 64 hex digits")
    return int(digits, 16)


MAX_PROOF_SLOTS = 1024
"""Most storage keys one eth_getProof call may ask for (each costs a trie walk)."""


def parse_storage_slots(value: object) -> list[int]:
    """A list of storage keys (eth_getProof), each as ``parse_storage_slot``."""
    if not isinstance(value, list):
        raise InvalidParams(f"expected a list of storage keys, got {kind_of(value)}")
    if len(value) > MAX_PROOF_SLOTS:
        raise InvalidParams(f"at most {MAX_PROOF_SLOTS} storage keys")
    return [parse_storage_slot(item) for item in value]


def parse_count(value: object) -> int:
    """A quantity or a plain JSON integer (eth_feeHistory's blockCount; l2_getBatch for curl users)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= UINT64_MAX:
            raise InvalidParams("count out of range")
        return value
    return parse_u64(value)


@dataclass(frozen=True)
class BlockId:
    """A block as the caller named it, before it is resolved against the chain."""

    number: int | None = None
    """Height; None names the head (latest, pending) or a tagged block (safe, finalized)."""
    block_hash: Hash32 | None = None
    """Hash, when the block was named by hash (EIP-1898)."""
    pending: bool = False
    """True for the "pending" tag (pending nonces count pooled transactions)."""
    tag: str | None = None
    """"safe" or "finalized" (resolved by rpc.tags), else None."""


LATEST = BlockId()
"""The head block."""

_TAGS = {
    "latest": LATEST,
    "safe": BlockId(tag="safe"),
    "finalized": BlockId(tag="finalized"),
    "pending": BlockId(pending=True),
    "earliest": BlockId(number=0),
}


def parse_block_number(value: object) -> BlockId:
    """A block tag or a hex height (eth_getBlockByNumber and friends)."""
    if isinstance(value, str) and value in _TAGS:
        return _TAGS[value]
    return BlockId(number=parse_u64(value))


def parse_block_ref(value: object) -> BlockId:
    """A tag, a hex height, a block hash, or an EIP-1898 object {blockNumber} | {blockHash}."""
    if isinstance(value, str) and len(value) == 66:
        return BlockId(block_hash=parse_hash(value))
    if not isinstance(value, dict):
        return parse_block_number(value)
    if "blockNumber" in value and "blockHash" in value:
        raise InvalidParams("cannot specify both blockHash and blockNumber, choose one")
    if "blockNumber" in value:
        return parse_block_number(value["blockNumber"])
    if "blockHash" in value:
        # requireCanonical is accepted and needs nothing: every stored block is final.
        if "requireCanonical" in value:
            parse_bool(value["requireCanonical"])
        return BlockId(block_hash=parse_hash(value["blockHash"]))
    raise InvalidParams("block object needs blockNumber or blockHash")


def parse_field(obj: dict[str, object], key: str, parse: Callable[[object], T]) -> T | None:
    """``obj[key]`` decoded, or None when absent or null; errors name the field."""
    value = obj.get(key)
    if value is None:
        return None
    try:
        return parse(value)
    except InvalidParams as exc:
        raise InvalidParams(f"{key}: {exc.message}") from None


@dataclass(frozen=True)
class CallRequest:
    """The transaction object of eth_call / eth_estimateGas; None where not given."""

    sender: Address | None
    """``from``."""
    to: Address | None
    """``to``; None deploys ``data`` as init code."""
    gas: int | None
    """``gas``."""
    gas_price: int | None
    """``gasPrice`` (legacy pricing)."""
    max_fee_per_gas: int | None
    """``maxFeePerGas`` (EIP-1559 pricing)."""
    max_priority_fee_per_gas: int | None
    """``maxPriorityFeePerGas`` (EIP-1559 pricing)."""
    value: int
    """``value`` in wei (0 when not given)."""
    data: bytes
    """``input`` or ``data`` (empty when not given)."""
    access_list: tuple[AccessListEntry, ...] = ()
    """``accessList`` (EIP-2930)."""


MAX_ACCESS_LIST_ITEMS = 10_000
"""Most addresses plus storage keys one call's access list may hold."""


def parse_access_list(value: object) -> tuple[AccessListEntry, ...]:
    """An EIP-2930 access list: [{address, storageKeys: [32-byte hex]}]."""
    if not isinstance(value, list):
        raise InvalidParams(f"expected an access list, got {kind_of(value)}")
    entries: list[AccessListEntry] = []
    items = 0
    for item in value:
        if not isinstance(item, dict):
            raise InvalidParams(f"expected an access list entry, got {kind_of(item)}")
        keys = item.get("storageKeys") or []
        if not isinstance(keys, list):
            raise InvalidParams(f"storageKeys: expected an array, got {kind_of(keys)}")
        items += 1 + len(keys)
        if items > MAX_ACCESS_LIST_ITEMS:
            raise InvalidParams(f"access list longer than {MAX_ACCESS_LIST_ITEMS} items")
        address = parse_field(item, "address", parse_address)
        if address is None:
            raise InvalidParams("access list entry without address")
        slots = tuple(int.from_bytes(parse_hash(key), "big") for key in keys)
        entries.append(AccessListEntry(address, slots))
    return tuple(entries)


PRECOMPILES = frozenset(Address(i.to_bytes(20, "big")) for i in range(1, 11))
"""Cancun's precompiles (0x01-0x0a): always warm, so never in an access list."""
MAX_OVERRIDE_ACCOUNTS = 1000
"""Most accounts one state override set may name."""


def _slots(value: object) -> dict[int, int]:
    if not isinstance(value, dict):
        raise InvalidParams(f"expected an object of storage slots, got {kind_of(value)}")
    return {
        int.from_bytes(parse_hash(slot), "big"): int.from_bytes(parse_hash(word), "big")
        for slot, word in value.items()
    }


def parse_state_overrides(value: object) -> dict[Address, AccountOverride]:
    """eth_call's state override set: {address: {nonce, balance, code, state | stateDiff}}."""
    if not isinstance(value, dict):
        raise InvalidParams(f"expected a state override object, got {kind_of(value)}")
    if len(value) > MAX_OVERRIDE_ACCOUNTS:
        raise InvalidParams(f"at most {MAX_OVERRIDE_ACCOUNTS} overridden accounts")
    overrides: dict[Address, AccountOverride] = {}
    for key, fields in value.items():
        address = parse_address(key)
        if not isinstance(fields, dict):
            raise InvalidParams(f"expected an account override object, got {kind_of(fields)}")
        unknown = set(fields) - {
            "nonce", "balance", "code", "state", "stateDiff", "movePrecompileToAddress"
        }
        if unknown:
            raise InvalidParams(f"unknown account override field {min(unknown)}")
        if fields.get("state") is not None and fields.get("stateDiff") is not None:
            raise InvalidParams(
                f"account {key} has both 'state' and 'stateDiff'"
            )
        overrides[address] = AccountOverride(
            nonce=parse_field(fields, "nonce", parse_u64),
            balance=parse_field(fields, "balance", parse_quantity),
            code=parse_field(fields, "code", parse_data),
            state=parse_field(fields, "state", _slots),
            state_diff=parse_field(fields, "stateDiff", _slots) or {},
            move_precompile_to=parse_field(fields, "movePrecompileToAddress", parse_address),
        )
    for address, override in overrides.items():
        target = override.move_precompile_to
        # go-ethereum's checks and wording (-32000: its plain errors).
        if target is not None and address not in PRECOMPILES:
            raise RpcError(SERVER_ERROR, f"account 0x{address.hex()} is not a precompile")
        if target is not None and target in overrides:
            raise RpcError(SERVER_ERROR, f"account 0x{target.hex()} is already overridden")
    return overrides


def parse_call(value: object) -> CallRequest:
    """A call object; unknown fields (nonce, chainId, type, ...) are ignored, as geth does."""
    if not isinstance(value, dict):
        raise InvalidParams(f"expected a transaction call object, got {kind_of(value)}")
    input_data = parse_field(value, "input", parse_data)
    legacy_data = parse_field(value, "data", parse_data)
    if input_data is not None and legacy_data is not None and input_data != legacy_data:
        raise InvalidParams(
            'both "data" and "input" are set and not equal. Please use "input" to pass '
            "transaction call data"
        )
    request = CallRequest(
        sender=parse_field(value, "from", parse_address),
        to=parse_field(value, "to", parse_address),
        gas=parse_field(value, "gas", parse_u64),
        gas_price=parse_field(value, "gasPrice", parse_quantity),
        max_fee_per_gas=parse_field(value, "maxFeePerGas", parse_quantity),
        max_priority_fee_per_gas=parse_field(value, "maxPriorityFeePerGas", parse_quantity),
        value=parse_field(value, "value", parse_quantity) or 0,
        data=input_data if input_data is not None else legacy_data or b"",
        access_list=parse_field(value, "accessList", parse_access_list) or (),
    )
    dynamic = request.max_fee_per_gas is not None or request.max_priority_fee_per_gas is not None
    if request.gas_price is not None and dynamic:
        raise InvalidParams("both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified")
    if (
        request.max_fee_per_gas is not None
        and request.max_priority_fee_per_gas is not None
        and request.max_priority_fee_per_gas > request.max_fee_per_gas
    ):
        raise InvalidParams("maxFeePerGas must be no less than maxPriorityFeePerGas")
    return request


@dataclass(frozen=True)
class LogQuery:
    """eth_getLogs criteria as the caller gave them, before tags are resolved."""

    from_block: BlockId
    """First block (inclusive); the head when not given."""
    to_block: BlockId
    """Last block (inclusive); the head when not given."""
    block_hash: Hash32 | None
    """The one block to search, instead of a range."""
    addresses: tuple[Address, ...]
    """Emitters to match; empty matches all."""
    topics: tuple[tuple[Hash32, ...] | None, ...]
    """Per position: any of these topics, or None for a wildcard."""


def _addresses(value: object) -> tuple[Address, ...]:
    if isinstance(value, list):
        return tuple(parse_address(item) for item in value)
    return (parse_address(value),)


def _topic_position(value: object) -> tuple[Hash32, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return (parse_hash(value),)
    # A null inside an OR-list, or an empty list, matches anything (as geth).
    if not value or any(item is None for item in value):
        return None
    return tuple(parse_hash(item) for item in value)


def _topics(value: object) -> tuple[tuple[Hash32, ...] | None, ...]:
    if not isinstance(value, list):
        raise InvalidParams(f"expected an array of topics, got {kind_of(value)}")
    if len(value) > MAX_TOPICS:
        raise InvalidParams("exceed max topics")
    return tuple(_topic_position(item) for item in value)


def parse_log_query(value: object) -> LogQuery:
    """An eth_getLogs filter object."""
    if not isinstance(value, dict):
        raise InvalidParams(f"expected a filter object, got {kind_of(value)}")
    block_hash = parse_field(value, "blockHash", parse_hash)
    from_block = parse_field(value, "fromBlock", parse_block_number)
    to_block = parse_field(value, "toBlock", parse_block_number)
    if block_hash is not None and (from_block is not None or to_block is not None):
        raise InvalidParams(
            "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
        )
    return LogQuery(
        from_block=from_block or LATEST,
        to_block=to_block or LATEST,
        block_hash=block_hash,
        addresses=parse_field(value, "address", _addresses) or (),
        topics=parse_field(value, "topics", _topics) or (),
    )


MAX_PERCENTILES = 100
"""Most reward percentiles one eth_feeHistory call may ask for (geth's limit)."""


def parse_percentiles(value: object) -> tuple[float, ...]:
    """Reward percentiles: numbers in [0, 100], non-decreasing."""
    if not isinstance(value, list):
        raise InvalidParams(f"expected an array of percentiles, got {kind_of(value)}")
    if len(value) > MAX_PERCENTILES:
        raise InvalidParams(f"too many percentiles, at most {MAX_PERCENTILES}")
    result: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise InvalidParams(f"invalid reward percentile: expected a number, got {kind_of(item)}")
        percentile = float(item)
        if not (math.isfinite(percentile) and 0 <= percentile <= 100):
            raise InvalidParams(f"invalid reward percentile: {item}")
        if result and percentile < result[-1]:
            raise InvalidParams(f"invalid reward percentile: {item} after {result[-1]}")
        result.append(percentile)
    return tuple(result)


class Args:
    """The positional parameters of one call; decoding errors name the argument."""

    def __init__(self, params: object, most: int) -> None:
        if params is None:
            values: Sequence[object] = ()
        elif isinstance(params, list):
            values = params
        else:
            raise InvalidParams("non-array args")
        if len(values) > most:
            raise InvalidParams(f"too many arguments, want at most {most}")
        self._values = values

    def _present(self, index: int) -> bool:
        return index < len(self._values) and self._values[index] is not None

    def _decode(self, index: int, parse: Callable[[object], T]) -> T:
        try:
            return parse(self._values[index])
        except InvalidParams as exc:
            raise InvalidParams(f"invalid argument {index}: {exc.message}") from None

    def required(self, index: int, parse: Callable[[object], T]) -> T:
        """Argument ``index``, which must be given and not null."""
        if not self._present(index):
            raise InvalidParams(f"missing value for required argument {index}")
        return self._decode(index, parse)

    def optional(self, index: int, parse: Callable[[object], T], default: T) -> T:
        """Argument ``index``, or ``default`` when absent or null."""
        return self._decode(index, parse) if self._present(index) else default
