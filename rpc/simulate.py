"""eth_simulateV1 (ethereum/execution-apis, src/eth/execute.yaml): blocks of calls, each on
the state the ones before it left, with block and state overrides, answered as blocks.

Parameters are decoded and the blocks' numbers and times settled here, with the
specification's error codes; the node runs the calls on the reference executor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from executor_gpu.types import Deadline, SimulatedCall, SimulatedCallResult
from primitives.errors import TransactionRejected
from primitives.types import ZERO_ADDRESS, ZERO_HASH, Hash32
from rpc import render
from rpc.api import NodeBackend
from rpc.codec import (
    LATEST,
    Args,
    BlockId,
    data,
    kind_of,
    parse_address,
    parse_block_ref,
    parse_bool,
    parse_call,
    parse_field,
    parse_hash,
    parse_quantity,
    parse_state_overrides,
    parse_u64,
    quantity,
)
from rpc.errors import (
    EXECUTION_REVERTED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    SERVER_ERROR,
    InvalidParams,
    RpcError,
    code_by_phrase,
    execution_reverted,
)
from rpc.types import (
    BlockView,
    LogView,
    SimulatedBlockSpec,
    SimulatedBlockView,
    TxLocation,
    Withdrawal,
)

MAX_SIMULATED_BLOCKS = 256
"""Most blocks one eth_simulateV1 call may build, gaps included (the specification's
recommendation, BLOCKHASH's reach; go-ethereum's limit)."""
TIMESTAMP_INCREMENT = 1
"""Seconds between simulated blocks whose time is not given (the specification's default)."""

CLIENT_LIMIT_EXCEEDED = -38026
"""The request asks for more than this node allows."""
BLOCK_NUMBER_INVALID = -38020
"""Block numbers do not increase."""
BLOCK_TIMESTAMP_INVALID = -38021
"""Block timestamps do not increase."""
VM_EXECUTION_ERROR = -32015
"""A call halted for any reason but REVERT."""
REJECTION_CODES = (
    ("nonce too low", -38010),
    ("nonce too high", -38011),
    ("max fee per gas less than block base fee", -38012),
    ("intrinsic gas too low", -38013),
    ("insufficient funds", -38014),
    ("block gas limit reached", -38015),
    ("max initcode size exceeded", -38025),
    ("max priority fee per gas higher than max fee per gas", INVALID_PARAMS),
)
"""eth_simulateV1's codes for a call that cannot run, by the phrase of go-ethereum's message
that says why; anything else is an internal error (-32603), as go-ethereum answers it."""

_BLOCK_OVERRIDES = frozenset({
    "number", "time", "gasLimit", "feeRecipient", "prevRandao", "baseFeePerGas",
    "withdrawals",
})
_CALL_FIELDS = frozenset({
    "type", "nonce", "to", "from", "gas", "value", "input", "data", "gasPrice",
    "maxPriorityFeePerGas", "maxFeePerGas", "accessList", "chainId", "maxFeePerBlobGas",
    "blobVersionedHashes", "authorizationList",
})


@dataclass(frozen=True)
class _RequestedBlock:
    """One entry of blockStateCalls as given, before numbers and times are settled."""

    number: int | None
    """blockOverrides.number."""
    timestamp: int | None
    """blockOverrides.time."""
    spec: SimulatedBlockSpec
    """Everything else (its number and timestamp 0 until settled)."""


def rejection_error(rejected: TransactionRejected) -> RpcError:
    """The eth_simulateV1 error for a call that cannot run."""
    message = str(rejected)
    return RpcError(code_by_phrase(message, REJECTION_CODES, INTERNAL_ERROR), message)


def settle_blocks(
    requested: Sequence[_RequestedBlock], base_number: int, base_timestamp: int
) -> list[SimulatedBlockSpec]:
    """The blocks to build on top of block ``base_number``: numbers increase, one by one
    (a skipped number gets an empty block, as go-ethereum does), and times increase."""
    settled: list[SimulatedBlockSpec] = []
    number, timestamp = base_number, base_timestamp
    for block in requested:
        wanted = number + 1 if block.number is None else block.number
        if wanted <= number:
            raise RpcError(BLOCK_NUMBER_INVALID,
                           f"block numbers must be in order: {wanted} <= {number}")
        if wanted - base_number > MAX_SIMULATED_BLOCKS:
            raise RpcError(CLIENT_LIMIT_EXCEEDED, "too many blocks")
        for gap in range(number + 1, wanted):
            timestamp += TIMESTAMP_INCREMENT
            settled.append(SimulatedBlockSpec(gap, timestamp, None, None, None, ZERO_HASH,
                                              (), {}, ()))
        number = wanted
        if block.timestamp is None:
            timestamp += TIMESTAMP_INCREMENT
        elif block.timestamp <= timestamp:
            raise RpcError(BLOCK_TIMESTAMP_INVALID,
                           f"block timestamps must be in order: {block.timestamp} <= {timestamp}")
        else:
            timestamp = block.timestamp
        settled.append(replace(block.spec, number=number, timestamp=timestamp))
    return settled


def _object(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise InvalidParams(f"{what}: expected an object, got {kind_of(value)}")
    return value


def _list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise InvalidParams(f"{what}: expected an array, got {kind_of(value)}")
    return value


def _prev_randao(value: object) -> Hash32:
    # go-ethereum reads a 32-byte hash; the specification says a uint256: take both.
    if isinstance(value, str) and len(value) == 66:
        return parse_hash(value)
    return Hash32(parse_quantity(value).to_bytes(32, "big"))


def _withdrawal(value: object) -> Withdrawal:
    fields = _object(value, "withdrawal")
    index = parse_field(fields, "index", parse_u64)
    validator = parse_field(fields, "validatorIndex", parse_u64)
    address = parse_field(fields, "address", parse_address)
    amount = parse_field(fields, "amount", parse_u64)
    if index is None or validator is None or address is None or amount is None:
        raise InvalidParams("withdrawal: index, validatorIndex, address and amount are required")
    return Withdrawal(index, validator, address, amount)


def _call(value: object) -> SimulatedCall:
    fields = _object(value, "call")
    unknown = set(fields) - _CALL_FIELDS
    if unknown:
        raise InvalidParams(f"call: unknown field {min(unknown)}")
    if fields.get("type") not in (None, "0x0", "0x1", "0x2"):
        raise InvalidParams(f"call: transaction type {fields['type']} not supported")
    # Blob and EIP-7702 calls belong to rules this chain does not run; a blob fee cap alone
    # (which wallets fill in) changes nothing without blobs.
    for unsupported in ("blobVersionedHashes", "authorizationList"):
        if fields.get(unsupported):
            raise InvalidParams(f"call: {unsupported} is not supported on this chain")
    request = parse_call(fields)
    if request.gas_price is not None:
        fee_cap = tip = request.gas_price
    else:
        fee_cap = request.max_fee_per_gas or 0
        tip = request.max_priority_fee_per_gas or 0
    return SimulatedCall(
        sender=request.sender or ZERO_ADDRESS,
        to=request.to,
        gas=request.gas,
        value=request.value,
        data=request.data,
        max_fee_per_gas=fee_cap,
        max_priority_fee_per_gas=tip,
        access_list=request.access_list,
        nonce=parse_field(fields, "nonce", parse_u64),
    )


def _requested_block(value: object) -> _RequestedBlock:
    fields = _object(value, "blockStateCall")
    unknown = set(fields) - {"blockOverrides", "stateOverrides", "calls"}
    if unknown:
        raise InvalidParams(f"blockStateCall: unknown field {min(unknown)}")
    overrides = _object(fields.get("blockOverrides") or {}, "blockOverrides")
    unknown = set(overrides) - _BLOCK_OVERRIDES
    if unknown:
        # blobBaseFee, beaconRoot...: nothing here would read them (no blobs on this L2).
        raise InvalidParams(f"blockOverrides: {min(unknown)} is not supported")
    withdrawals = _list(overrides.get("withdrawals") or [], "withdrawals")
    calls = _list(fields.get("calls") or [], "calls")
    spec = SimulatedBlockSpec(
        number=0,
        timestamp=0,
        gas_limit=parse_field(overrides, "gasLimit", parse_u64),
        coinbase=parse_field(overrides, "feeRecipient", parse_address),
        base_fee_per_gas=parse_field(overrides, "baseFeePerGas", parse_quantity),
        prev_randao=parse_field(overrides, "prevRandao", _prev_randao) or ZERO_HASH,
        withdrawals=tuple(_withdrawal(item) for item in withdrawals),
        overrides=parse_field(fields, "stateOverrides", parse_state_overrides) or {},
        calls=tuple(_call(item) for item in calls),
    )
    return _RequestedBlock(
        number=parse_field(overrides, "number", parse_u64),
        timestamp=parse_field(overrides, "time", parse_u64),
        spec=spec,
    )


@dataclass(frozen=True)
class SimulatePayload:
    """eth_simulateV1's first parameter, decoded."""

    blocks: tuple[_RequestedBlock, ...]
    """blockStateCalls."""
    trace_transfers: bool
    """traceTransfers: report ETH transfers as ERC-20 Transfer logs."""
    validation: bool
    """validation: check calls as transactions are checked."""
    full_transactions: bool
    """returnFullTransactions."""


def parse_payload(value: object) -> SimulatePayload:
    """eth_simulateV1's payload object."""
    fields = _object(value, "payload")
    unknown = set(fields) - {"blockStateCalls", "traceTransfers", "validation",
                             "returnFullTransactions"}
    if unknown:
        raise InvalidParams(f"unknown field {min(unknown)}")
    if fields.get("blockStateCalls") is None:
        raise InvalidParams("blockStateCalls: missing value")
    blocks = _list(fields["blockStateCalls"], "blockStateCalls")
    # Refused before anything of them is decoded.
    if len(blocks) > MAX_SIMULATED_BLOCKS:
        raise RpcError(CLIENT_LIMIT_EXCEEDED, "too many blocks")
    return SimulatePayload(
        blocks=tuple(_requested_block(block) for block in blocks),
        trace_transfers=parse_field(fields, "traceTransfers", parse_bool) or False,
        validation=parse_field(fields, "validation", parse_bool) or False,
        full_transactions=parse_field(fields, "returnFullTransactions", parse_bool) or False,
    )


def _call_result(
    result: SimulatedCallResult, location: TxLocation, tx_hash: Hash32, first_log_index: int
) -> dict[str, object]:
    answer: dict[str, object] = {
        # A failed call's output is its error's data (go-ethereum's choice).
        "returnData": data(result.output if result.succeeded else b""),
        "logs": [
            render.log(LogView(log, location, tx_hash, first_log_index + offset))
            for offset, log in enumerate(result.reported_logs if result.succeeded else ())
        ],
        "gasUsed": quantity(result.gas_used),
        "maxUsedGas": quantity(result.max_used_gas),
        "status": quantity(int(result.succeeded)),
    }
    if result.succeeded:
        return answer
    if result.output or (result.error or "").startswith("execution reverted"):
        reverted = execution_reverted(result.output)
        answer["error"] = {"code": EXECUTION_REVERTED, "message": reverted.message,
                           "data": reverted.data}
    else:
        # The specification's wording for halts other than REVERT.
        answer["error"] = {"code": VM_EXECUTION_ERROR,
                           "message": f"vm execution error: {result.error or 'unknown'}"}
    return answer


def render_block(view: SimulatedBlockView, full_transactions: bool) -> dict[str, object]:
    """A simulated block as eth_getBlockByNumber would show it, with its calls' outcomes."""
    header = view.header
    block_hash = header.hash
    calls: list[dict[str, object]] = []
    log_index = 0
    for index, (tx, result) in enumerate(zip(view.transactions, view.calls, strict=True)):
        location = TxLocation(block_hash, header.number, index, header.timestamp)
        calls.append(_call_result(result, location, tx.hash, log_index))
        log_index += len(result.reported_logs) if result.succeeded else 0
    answer = render.block(BlockView(header, view.transactions), full_transactions)
    answer["withdrawals"] = [
        {"index": quantity(w.index), "validatorIndex": quantity(w.validator_index),
         "address": data(w.address), "amount": quantity(w.amount)}
        for w in view.withdrawals
    ]
    answer["calls"] = calls
    return answer


class SimulateMethods:
    """eth_simulateV1 over a NodeBackend, bounded as eth_call is (gas cap and deadline)."""

    def __init__(
        self, backend: NodeBackend, state_number: Callable[[BlockId], int], gas_cap: int
    ) -> None:
        """``state_number`` resolves a block argument; ``gas_cap``: the most gas all calls of
        one request use together (RpcLimits.gas_cap)."""
        self._backend = backend
        self._state_number = state_number
        self._gas_cap = gas_cap

    def expensive_methods(self) -> dict[str, tuple[int, Callable[[Args, Deadline], object]]]:
        """name -> (most arguments, handler)."""
        return {"eth_simulateV1": (2, self._simulate)}

    def _simulate(self, args: Args, deadline: Deadline) -> object:
        payload = args.required(0, parse_payload)
        block_id = args.optional(1, parse_block_ref, LATEST)
        try:
            number = self._state_number(block_id)
        except RpcError as missing:
            # The specification's tests (go-ethereum's) answer -32000 here.
            raise RpcError(SERVER_ERROR, missing.message) from None
        base = self._backend.block_by_number(number)
        if base is None:
            raise RpcError(SERVER_ERROR, "header not found")
        header = base.header
        blocks = settle_blocks(payload.blocks, header.number, header.timestamp)
        try:
            views = self._backend.simulate(
                blocks, number, payload.validation, payload.trace_transfers, self._gas_cap,
                deadline,
            )
        except TransactionRejected as rejected:
            raise rejection_error(rejected) from None
        return [render_block(view, payload.full_transactions) for view in views]
