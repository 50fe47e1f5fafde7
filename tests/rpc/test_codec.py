"""Parameter decoding and revert decoding, without a server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_abi.abi import encode
from hypothesis import given
from hypothesis import strategies as st

from primitives.types import UINT64_MAX, UINT256_MAX
from rpc.codec import (
    Args,
    BlockId,
    parse_address,
    parse_block_number,
    parse_block_ref,
    parse_bool,
    parse_call,
    parse_data,
    parse_hash,
    parse_log_query,
    parse_percentiles,
    parse_quantity,
    parse_storage_slot,
    parse_u64,
    quantity,
)
from rpc.errors import InvalidParams, revert_reason


@given(st.integers(min_value=0, max_value=UINT256_MAX))
def test_quantity_round_trip(value: int) -> None:
    assert parse_quantity(quantity(value)) == value


@given(st.binary(max_size=100))
def test_data_round_trip(value: bytes) -> None:
    assert parse_data("0x" + value.hex()) == value
    assert parse_data("0x" + value.hex().upper()) == value


@pytest.mark.parametrize(
    ("parse", "value", "fragment"),
    [
        (parse_quantity, "0x", '"0x"'),
        (parse_quantity, "0x01", "leading zero"),
        (parse_quantity, "12", "without 0x prefix"),
        (parse_quantity, "-0x1", "without 0x prefix"),
        (parse_quantity, "0xg", "invalid hex"),
        (parse_quantity, "0x1_0", "invalid hex"),
        (parse_quantity, " 0x1", "without 0x prefix"),
        (parse_quantity, 5, "got a number"),
        (parse_quantity, True, "got a boolean"),
        (parse_quantity, "0x1" + "0" * 64, "256 bits"),
        (parse_u64, hex(UINT64_MAX + 1), "64 bits"),
        (parse_data, "0x123", "odd length"),
        (parse_data, "0xzz", "invalid hex"),
        (parse_data, None, "got null"),
        (parse_address, "0x" + "11" * 19, "want 40 for address"),
        (parse_address, "0x" + "11" * 21, "want 40 for address"),
        (parse_address, ["0x" + "11" * 20], "got an array"),
        (parse_hash, "0x" + "11" * 31, "want 64 for hash"),
        (parse_storage_slot, "0x" + "1" * 65, "1 to 64 hex digits"),
        (parse_block_number, "latests", "without 0x prefix"),
        (parse_block_number, {"blockNumber": "0x1"}, "got an object"),
        (parse_block_ref, {"blockNumber": "0x1", "blockHash": "0x" + "00" * 32}, "both"),
        (parse_block_ref, {}, "blockNumber or blockHash"),
        (parse_block_ref, {"blockHash": "0x" + "00" * 32, "requireCanonical": "yes"}, "boolean"),
        (parse_call, "0x00", "call object"),
        (parse_call, {"to": "0x00"}, "to: hex string has length 2"),
        (parse_call, {"data": "0x01", "input": "0x02"}, "not equal"),
        (parse_call, {"gasPrice": "0x1", "maxFeePerGas": "0x1"}, "both gasPrice"),
        (parse_call, {"maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x2"}, "no less than"),
        (parse_log_query, {"blockHash": "0x" + "00" * 32, "fromBlock": "0x1"}, "choose one"),
        (parse_log_query, {"topics": [None] * 5}, "exceed max topics"),
        (parse_log_query, {"topics": "0x00"}, "array of topics"),
        (parse_log_query, {"address": ["0x00"]}, "address: hex string has length 2"),
        (parse_percentiles, [50, 10], "after"),
        (parse_percentiles, [101], "invalid reward percentile"),
        (parse_percentiles, [float("nan")], "invalid reward percentile"),
        (parse_percentiles, ["50"], "expected a number"),
        (parse_percentiles, [1.0] * 101, "too many"),
    ],
)
def test_rejects(parse: Callable[[object], object], value: object, fragment: str) -> None:
    with pytest.raises(InvalidParams) as error:
        parse(value)
    assert error.value.code == -32602
    assert fragment in error.value.message


def test_accepts() -> None:
    checksummed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert parse_address(checksummed) == parse_address(checksummed.lower())
    assert parse_address(checksummed) == parse_address("0X" + checksummed[2:].upper())
    assert parse_storage_slot("0x" + "00" * 31 + "07") == parse_storage_slot("0x7") == 7
    assert parse_block_number("earliest") == BlockId(number=0)
    assert parse_block_number("safe") == BlockId(tag="safe")
    assert parse_block_number("finalized") == BlockId(tag="finalized")
    assert parse_block_number("pending").pending
    block_hash = "0x" + "ab" * 32
    assert parse_block_ref(block_hash) == BlockId(block_hash=parse_hash(block_hash))
    assert parse_block_ref({"blockHash": block_hash, "requireCanonical": True}) == BlockId(
        block_hash=parse_hash(block_hash)
    )
    assert parse_block_ref({"blockNumber": "0x2"}) == BlockId(number=2)
    call = parse_call({"input": "0x01", "data": "0x01", "nonce": "junk", "value": "0x5"})
    assert call.data == b"\x01" and call.value == 5 and call.to is None
    query = parse_log_query({"topics": [None, [], ["0x" + "11" * 32, None], "0x" + "22" * 32]})
    assert query.topics == (None, None, None, (parse_hash("0x" + "22" * 32),))
    assert parse_percentiles([0, 0, 25.5, 100]) == (0.0, 0.0, 25.5, 100.0)


def test_args_name_the_argument() -> None:
    with pytest.raises(InvalidParams, match="too many arguments, want at most 1"):
        Args(["0x1", "0x2"], 1)
    with pytest.raises(InvalidParams, match="non-array args"):
        Args({"a": 1}, 1)
    args = Args(["0x1", None], 3)
    assert args.required(0, parse_u64) == 1
    assert args.optional(1, parse_u64, 9) == 9
    assert args.optional(2, parse_u64, 8) == 8
    with pytest.raises(InvalidParams, match="missing value for required argument 1"):
        args.required(1, parse_u64)
    with pytest.raises(InvalidParams, match="invalid argument 0: expected a boolean"):
        Args([5], 1).required(0, parse_bool)


@pytest.mark.parametrize("reason", ["nope", "", "ünïcode reason", "x" * 100])
def test_revert_reason_error_string(reason: str) -> None:
    output = bytes.fromhex("08c379a0") + encode(["string"], [reason])
    assert revert_reason(output) == reason


def test_revert_reason_panic_and_garbage() -> None:
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x12])
    assert revert_reason(panic) == "division or modulo by zero"
    unknown = bytes.fromhex("4e487b71") + encode(["uint256"], [0x99])
    assert revert_reason(unknown) == "unknown panic code: 0x99"
    good = bytes.fromhex("08c379a0") + encode(["string"], ["nope"])
    assert revert_reason(good[:-40]) is None
    assert revert_reason(b"") is None
    assert revert_reason(bytes.fromhex("deadbeef") + bytes(64)) is None
    huge_offset = bytes.fromhex("08c379a0") + (2**255).to_bytes(32, "big") + bytes(32)
    assert revert_reason(huge_offset) is None


@given(st.binary(max_size=200))
def test_revert_reason_never_raises(output: bytes) -> None:
    reason = revert_reason(bytes.fromhex("08c379a0") + output)
    assert reason is None or isinstance(reason, str)
