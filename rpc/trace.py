"""Methods that re-run execution step by step: eth_createAccessList and debug_trace*.

Traces come from the node's tracer (the py-evm reference executor) and are printed in the
shapes go-ethereum prints: the default struct logger, ``callTracer`` and ``prestateTracer``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from executor_gpu.types import (
    AccountOverride,
    AccountSnapshot,
    CallFrame,
    CallMessage,
    Deadline,
    TraceOptions,
    TraceStep,
    TxTrace,
)
from primitives.errors import TransactionRejected
from primitives.transactions import AccessListEntry
from primitives.types import Address, Hash32
from rpc.api import NodeBackend
from rpc.codec import (
    LATEST,
    PRECOMPILES,
    Args,
    BlockId,
    CallRequest,
    data,
    parse_block_number,
    parse_block_ref,
    parse_call,
    parse_hash,
    parse_state_overrides,
    quantity,
)
from rpc.errors import SERVER_ERROR, InvalidParams, RpcError, revert_reason
from rpc.tags import block_number

MAX_ACCESS_LIST_ROUNDS = 16
"""eth_createAccessList re-runs until the list stops growing; a bound for pathological code."""
TRACERS = ("callTracer", "prestateTracer")
"""Named tracers served besides the default struct logger."""

ACCESSES_ONLY = TraceOptions()
"""A trace without steps: the call tree and the accessed accounts."""

JsonObject = dict[str, object]


@dataclass(frozen=True)
class TraceConfig:
    """debug_trace*'s options object, decoded."""

    tracer: str | None
    """None for the struct logger, else one of TRACERS."""
    options: TraceOptions
    """What to record."""
    only_top_call: bool = False
    """callTracer: no sub-calls."""
    with_log: bool = False
    """callTracer: frames carry their logs."""
    diff_mode: bool = False
    """prestateTracer: pre and post of the changed accounts."""
    state_overrides: Mapping[Address, AccountOverride] = field(default_factory=dict)
    """debug_traceCall's stateOverrides."""


def _flag(config: Mapping[str, object], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise InvalidParams(f"{key}: expected a boolean")
    return value


def parse_trace_config(value: object) -> TraceConfig:
    """geth's TraceConfig / TraceCallConfig object."""
    if not isinstance(value, dict):
        raise InvalidParams("expected a tracer config object")
    tracer = value.get("tracer")
    if tracer is not None and tracer not in TRACERS:
        raise InvalidParams(f"unknown tracer {tracer!r}: use the default, {', '.join(TRACERS)}")
    sub = value.get("tracerConfig") or {}
    if not isinstance(sub, dict):
        raise InvalidParams("tracerConfig: expected an object")
    limit = value.get("limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidParams("limit: expected a non-negative integer")
    defaults = TraceOptions()
    options = TraceOptions(
        struct_logs=tracer is None,
        memory=_flag(value, "enableMemory", False),
        stack=not _flag(value, "disableStack", False),
        storage=not _flag(value, "disableStorage", False),
        return_data=_flag(value, "enableReturnData", False),
        step_limit=min(limit, defaults.step_limit) if limit else defaults.step_limit,
        truncate=0 < limit <= defaults.step_limit,
    )
    return TraceConfig(
        tracer=tracer,
        options=options,
        only_top_call=_flag(sub, "onlyTopCall", False),
        with_log=_flag(sub, "withLog", False),
        diff_mode=_flag(sub, "diffMode", False),
        state_overrides=_overrides(value.get("stateOverrides")),
    )


def _overrides(value: object) -> dict[Address, AccountOverride]:
    if value is None:
        return {}
    try:
        return parse_state_overrides(value)
    except InvalidParams as exc:
        raise InvalidParams(f"stateOverrides: {exc.message}") from None


DEFAULT_CONFIG = parse_trace_config({})


# -- rendering ---------------------------------------------------------------------------------


def _word_hex(value: int) -> str:
    return value.to_bytes(32, "big").hex()


def struct_log(step: TraceStep) -> JsonObject:
    """One step as geth's struct logger prints it."""
    result: JsonObject = {
        "pc": step.pc, "op": step.op, "gas": step.gas, "gasCost": step.gas_cost,
        "depth": step.depth,
    }
    if step.error is not None:
        result["error"] = step.error
    if step.stack is not None:
        result["stack"] = [hex(value) for value in step.stack]
    if step.return_data:
        result["returnData"] = data(step.return_data)
    if step.memory is not None:
        result["memory"] = [step.memory[i : i + 32].hex() for i in range(0, len(step.memory), 32)]
    if step.storage is not None:
        result["storage"] = {_word_hex(k): _word_hex(v) for k, v in step.storage.items()}
    if step.refund:
        result["refund"] = step.refund
    return result


def call_frame(frame: CallFrame, config: TraceConfig) -> JsonObject:
    """A callTracer frame."""
    result: JsonObject = {
        "type": frame.call_type,
        "from": data(frame.sender),
        "to": data(frame.to),
        "gas": quantity(frame.gas),
        "gasUsed": quantity(frame.gas_used),
        "input": data(frame.input),
    }
    if frame.value is not None:
        result["value"] = quantity(frame.value)
    if frame.output:
        result["output"] = data(frame.output)
    if frame.error is not None:
        result["error"] = frame.error
        reason = revert_reason(frame.output) if frame.error == "execution reverted" else None
        if reason is not None:
            result["revertReason"] = reason
    if frame.calls and not config.only_top_call:
        result["calls"] = [call_frame(call, config) for call in frame.calls]
    if config.with_log and frame.logs:
        result["logs"] = [
            {"address": data(log.address), "topics": [data(t) for t in log.topics],
             "data": data(log.data), "position": quantity(len(frame.calls))}
            for log in frame.logs
        ]
    return result


def _account(snapshot: AccountSnapshot, fields: Sequence[str] = ("balance", "nonce", "code"),
             slots: Sequence[int] | None = None) -> JsonObject:
    result: JsonObject = {}
    if "balance" in fields:
        result["balance"] = quantity(snapshot.balance)
    if "nonce" in fields and snapshot.nonce:
        result["nonce"] = snapshot.nonce
    if "code" in fields and snapshot.code:
        result["code"] = data(snapshot.code)
    storage = {
        slot: value for slot, value in snapshot.storage.items() if slots is None or slot in slots
    }
    if storage:
        result["storage"] = {data(bytes.fromhex(_word_hex(k))): data(bytes.fromhex(_word_hex(v)))
                             for k, v in storage.items()}
    return result


def prestate(trace: TxTrace, diff_mode: bool) -> JsonObject:
    """prestateTracer's answer: every touched account before the transaction, or (diffMode)
    the changed accounts before and the changed fields after."""
    if not diff_mode:
        return {data(address): _account(snapshot) for address, snapshot in trace.pre.items()}
    pre: JsonObject = {}
    post: JsonObject = {}
    for address, before in trace.pre.items():
        after = trace.post.get(address)
        if after is None:
            pre[data(address)] = _account(before)
            continue
        changed = [
            name for name in ("balance", "nonce", "code")
            if getattr(before, name) != getattr(after, name)
        ]
        slots = [slot for slot, value in after.storage.items() if before.storage.get(slot) != value]
        if not changed and not slots:
            continue
        created = before.nonce == 0 and not before.balance and not before.code
        if not created:
            pre[data(address)] = _account(before, slots=slots)
        post[data(address)] = _account(after, changed, slots)
    return {"pre": pre, "post": post}


def render_trace(trace: TxTrace, config: TraceConfig, gas_limit: int) -> JsonObject:
    """A traced transaction or call in the shape its tracer prints."""
    if config.tracer == "callTracer":
        # The outermost frame counts the whole transaction, intrinsic gas included.
        root = call_frame(trace.call, config)
        root["gas"] = quantity(gas_limit)
        root["gasUsed"] = quantity(trace.gas_used)
        return root
    if config.tracer == "prestateTracer":
        return prestate(trace, config.diff_mode)
    return {
        "gas": trace.gas_used,
        "failed": trace.failed,
        "returnValue": data(trace.output),
        "structLogs": [struct_log(step) for step in trace.steps],
    }


def access_list_json(entries: Sequence[AccessListEntry]) -> list[JsonObject]:
    """An access list as wallets send it."""
    return [
        {"address": data(entry.address),
         "storageKeys": [data(slot.to_bytes(32, "big")) for slot in entry.storage_keys]}
        for entry in entries
    ]


# -- methods -----------------------------------------------------------------------------------


def _merged(
    base: Sequence[AccessListEntry], accessed: Mapping[Address, tuple[int, ...]],
    excluded: frozenset[Address],
) -> tuple[AccessListEntry, ...]:
    """``base`` plus what a run accessed, as go-ethereum's access list tracer adds them:
    excluded addresses come in only with storage keys."""
    slots: dict[Address, dict[int, None]] = {}
    for entry in base:
        if entry.address not in excluded or entry.storage_keys:
            slots.setdefault(entry.address, {}).update(dict.fromkeys(entry.storage_keys))
    for address, keys in accessed.items():
        if address not in excluded or keys:
            slots.setdefault(address, {}).update(dict.fromkeys(keys))
    return tuple(AccessListEntry(address, tuple(keys)) for address, keys in slots.items())


def _as_sets(entries: Sequence[AccessListEntry]) -> dict[Address, frozenset[int]]:
    return {entry.address: frozenset(entry.storage_keys) for entry in entries}


class TraceMethods:
    """eth_createAccessList and the debug_trace* methods over one NodeBackend."""

    def __init__(
        self,
        backend: NodeBackend,
        state_number: Callable[[BlockId], int],
        message: Callable[[CallRequest, int], CallMessage],
        call_gas: Callable[[CallRequest, int], int],
    ) -> None:
        """``state_number`` resolves a block argument, ``message`` prices a call request,
        ``call_gas`` is a request's gas (the block gas limit when not given)."""
        self._backend = backend
        self._state_number = state_number
        self._message = message
        self._call_gas = call_gas

    def methods(self) -> dict[str, tuple[int, Callable[[Args, Deadline], object]]]:
        """name -> (most arguments, handler); all are expensive, each ends by its deadline."""
        return {
            "eth_createAccessList": (2, self._create_access_list),
            "debug_traceCall": (3, self._trace_call),
            "debug_traceTransaction": (2, self._trace_transaction),
            "debug_traceBlockByNumber": (2, self._trace_block_by_number),
            "debug_traceBlockByHash": (2, self._trace_block_by_hash),
        }

    def _create_access_list(self, args: Args, deadline: Deadline) -> object:
        request = args.required(0, parse_call)
        number = self._state_number(args.optional(1, parse_block_ref, LATEST))
        message = self._message(request, self._call_gas(request, number))
        excluded = PRECOMPILES | {message.sender}
        if message.to is not None:
            excluded |= {message.to}
        entries = _merged(message.access_list, {}, excluded)
        for _ in range(MAX_ACCESS_LIST_ROUNDS):
            trace = self._traced(replace(message, access_list=entries), number, deadline)
            # A creation's own address is the transaction's "to" (go-ethereum excludes it).
            if message.to is None:
                excluded |= {trace.call.to}
            found = _merged(entries, trace.accessed, excluded)
            if _as_sets(found) == _as_sets(entries):
                break
            entries = found
        result: JsonObject = {
            "accessList": access_list_json(entries), "gasUsed": quantity(trace.gas_used),
        }
        if trace.failed:
            error = trace.call.error or "execution failed"
            reason = revert_reason(trace.output) if error == "execution reverted" else None
            result["error"] = error if reason is None else f"{error}: {reason}"
        return result

    def _traced(self, message: CallMessage, number: int, deadline: Deadline,
                options: TraceOptions = ACCESSES_ONLY) -> TxTrace:
        try:
            return self._backend.trace_call(message, number, options, deadline)
        except TransactionRejected as exc:
            raise RpcError(SERVER_ERROR, f"failed to apply transaction: {exc}") from None

    def _trace_call(self, args: Args, deadline: Deadline) -> object:
        request = args.required(0, parse_call)
        number = self._state_number(args.optional(1, parse_block_ref, LATEST))
        config = args.optional(2, parse_trace_config, DEFAULT_CONFIG)
        message = replace(self._message(request, self._call_gas(request, number)),
                          overrides=config.state_overrides)
        trace = self._traced(message, number, deadline, config.options)
        return render_trace(trace, config, message.gas)

    def _trace_transaction(self, args: Args, deadline: Deadline) -> object:
        tx_hash = args.required(0, parse_hash)
        config = args.optional(1, parse_trace_config, DEFAULT_CONFIG)
        receipt = self._backend.receipt(tx_hash)
        if receipt is None:
            raise RpcError(SERVER_ERROR, "transaction not found")
        location = receipt.location
        (trace,) = self._backend.trace_block(
            location.block_number, config.options, location.index, deadline
        )
        return render_trace(trace, config, receipt.tx.gas_limit)

    def _trace_block(self, number: int, config: TraceConfig, deadline: Deadline) -> object:
        if number == 0:
            raise RpcError(SERVER_ERROR, "genesis is not traceable")
        view = self._backend.block_by_number(number)
        if view is None:
            raise RpcError(SERVER_ERROR, f"block #{number} not found")
        traces = self._backend.trace_block(number, config.options, None, deadline)
        return [
            {"txHash": data(tx.hash), "result": render_trace(trace, config, tx.gas_limit)}
            for tx, trace in zip(view.transactions, traces, strict=True)
        ]

    def _trace_block_by_number(self, args: Args, deadline: Deadline) -> object:
        block_id = args.required(0, parse_block_number)
        config = args.optional(1, parse_trace_config, DEFAULT_CONFIG)
        number = block_number(self._backend, block_id)
        if number > self._backend.head_number():
            raise RpcError(SERVER_ERROR, f"block #{number} not found")
        return self._trace_block(number, config, deadline)

    def _trace_block_by_hash(self, args: Args, deadline: Deadline) -> object:
        block_hash: Hash32 = args.required(0, parse_hash)
        config = args.optional(1, parse_trace_config, DEFAULT_CONFIG)
        view = self._backend.block_by_hash(block_hash)
        if view is None:
            raise RpcError(SERVER_ERROR, f"block 0x{block_hash.hex()} not found")
        return self._trace_block(view.header.number, config, deadline)
