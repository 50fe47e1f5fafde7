"""The JSON-RPC methods: decode parameters, ask the NodeBackend, render the answer.

Every method is synchronous and may block on the backend; the server runs it off the event loop.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from executor_gpu.types import AccountOverride, CallMessage, CallResult, Deadline
from primitives.clock import SystemClock
from primitives.crypto import keccak256
from primitives.errors import ExecutionAborted, ExecutionReverted, L2NodeError
from primitives.types import ZERO_ADDRESS, Address, Hash32
from rpc import render
from rpc.api import NodeBackend
from rpc.chaininfo import ChainInfoMethods
from rpc.codec import (
    LATEST,
    Args,
    BlockId,
    CallRequest,
    data,
    parse_address,
    parse_block_number,
    parse_block_ref,
    parse_bool,
    parse_call,
    parse_count,
    parse_data,
    parse_hash,
    parse_log_query,
    parse_percentiles,
    parse_state_overrides,
    parse_storage_slot,
    parse_storage_slots,
    parse_u64,
    quantity,
)
from rpc.errors import (
    LIMIT_EXCEEDED,
    METHOD_NOT_FOUND,
    RESOURCE_NOT_FOUND,
    SERVER_ERROR,
    InvalidParams,
    RpcError,
    execution_reverted,
    header_not_found,
)
from rpc.filters import FilterMethods, FilterTable
from rpc.simulate import SimulateMethods
from rpc.tags import block_number
from rpc.trace import TraceMethods
from rpc.txpool import PoolMethods
from rpc.types import DEFAULT_LIMITS, BlockView, FeeHistory, LogFilter, RpcLimits

MAX_LOG_BLOCK_RANGE = 10_000
"""Most blocks one eth_getLogs call may scan."""
MIN_BLOB_BASE_FEE = 1
"""EIP-4844's blob base fee at zero excess blob gas."""
MAX_FEE_HISTORY_BLOCKS = 1024
"""Most blocks one eth_feeHistory answer covers; larger counts are cut (as geth)."""
_ADMITTING = object()

Admit = Callable[[Sequence[bytes]], Sequence[Hash32 | L2NodeError]]
"""Admits raw transactions together: each one's hash, or why it was refused."""


def send_raw_transactions(calls: Sequence[Args | object], admit: Admit) -> list[object | Exception]:
    """Answers to several eth_sendRawTransaction calls (their Args, or raw params), the
    well-formed ones admitted together by ``admit``."""
    answers: list[object | Exception] = []
    raws: list[bytes] = []
    for call in calls:
        try:
            args = call if isinstance(call, Args) else Args(call, 1)
            raws.append(args.required(0, parse_data))
            answers.append(_ADMITTING)
        except RpcError as exc:
            answers.append(exc)
    admitted = iter(admit(raws) if raws else ())
    for index, answer in enumerate(answers):
        if answer is _ADMITTING:
            sent = next(admitted)
            answers[index] = sent if isinstance(sent, Exception) else data(sent)
    return answers
"""Placeholder for an answer the backend gives later."""
NO_PERCENTILES: tuple[float, ...] = ()
"""eth_feeHistory without reward percentiles."""
_NONE: Mapping[Address, AccountOverride] = MappingProxyType({})
"""No state overrides."""


@dataclass(frozen=True)
class Method:
    """A JSON-RPC method."""

    most_args: int
    """Number of positional parameters it takes at most."""
    run: Callable[[Args], object]
    """Decodes the parameters and returns the JSON-ready result."""


@dataclass(frozen=True)
class ExpensiveMethod:
    """A JSON-RPC method that may take seconds of CPU: only a few run at once (the server
    holds a slot for them, RpcLimits.expensive_calls), each by a deadline."""

    most_args: int
    """Number of positional parameters it takes at most."""
    run: Callable[[Args, Deadline], object]
    """Decodes the parameters and returns the JSON-ready result by the deadline it is given."""


def _no_notifications(args: Args) -> object:
    # Subscriptions live on a WebSocket connection (rpc/ws.py), as in geth.
    raise RpcError(METHOD_NOT_FOUND, "notifications not supported")


def _reverted(result: CallResult) -> bool:
    # Only REVERT returns data from a failed call; an empty revert is known by its error text.
    return not result.succeeded and (
        bool(result.output) or (result.error or "").startswith("execution reverted")
    )


class RpcMethods:
    """All methods the server answers, over one NodeBackend."""

    def __init__(
        self,
        backend: NodeBackend,
        limits: RpcLimits = DEFAULT_LIMITS,
        stopping: threading.Event | None = None,
        filters: FilterTable | None = None,
    ) -> None:
        """``stopping``: set when the server shuts down; running calls then stop at once.
        ``filters``: the server's installed polling filters (default: a table of its own)."""
        self._backend = backend
        self._limits = limits
        self._stopping = threading.Event() if stopping is None else stopping
        self.methods: dict[str, Method | ExpensiveMethod] = {
            "web3_clientVersion": Method(0, lambda _: backend.client_version),
            "web3_sha3": Method(1, lambda a: data(keccak256(a.required(0, parse_data)))),
            "net_version": Method(0, lambda _: str(backend.chain_id)),
            "net_listening": Method(0, lambda _: True),
            "net_peerCount": Method(0, lambda _: quantity(backend.peer_count())),
            "eth_chainId": Method(0, lambda _: quantity(backend.chain_id)),
            "eth_syncing": Method(0, lambda _: False),
            "eth_mining": Method(0, lambda _: False),
            "eth_accounts": Method(0, lambda _: []),
            "eth_coinbase": Method(0, self._coinbase),
            "eth_blockNumber": Method(0, lambda _: quantity(backend.head_number())),
            "eth_gasPrice": Method(0, lambda _: quantity(backend.gas_price())),
            "eth_maxPriorityFeePerGas": Method(0, lambda _: quantity(backend.max_priority_fee())),
            # No blob gas is ever used here: the blob base fee stays EIP-4844's minimum.
            "eth_blobBaseFee": Method(0, lambda _: quantity(MIN_BLOB_BASE_FEE)),
            "eth_feeHistory": Method(3, self._fee_history),
            "eth_getBlockByNumber": Method(2, self._block_by_number),
            "eth_getBlockByHash": Method(2, self._block_by_hash),
            "eth_getBlockTransactionCountByNumber": Method(1, self._tx_count_by_number),
            "eth_getBlockTransactionCountByHash": Method(1, self._tx_count_by_hash),
            "eth_getTransactionByBlockNumberAndIndex": Method(2, self._tx_by_number_and_index),
            "eth_getTransactionByBlockHashAndIndex": Method(2, self._tx_by_hash_and_index),
            "eth_getTransactionByHash": Method(1, self._transaction),
            "eth_getTransactionReceipt": Method(1, self._receipt),
            "eth_getBlockReceipts": Method(1, self._block_receipts),
            "eth_getTransactionCount": Method(2, self._nonce),
            "eth_getBalance": Method(2, self._balance),
            "eth_getCode": Method(2, self._code),
            "eth_getStorageAt": Method(3, self._storage),
            "eth_getProof": Method(3, self._proof),
            "eth_call": ExpensiveMethod(3, self._call),
            "eth_estimateGas": ExpensiveMethod(3, self._estimate_gas),
            "eth_sendRawTransaction": Method(1, self._send_raw_transaction),
            # A range of up to MAX_LOG_BLOCK_RANGE blocks; the scan itself has no deadline.
            "eth_getLogs": ExpensiveMethod(1, lambda a, _: self._logs(a)),
            "l2_getBatch": Method(1, self._batch),
            "l2_latestCommittedBatch": Method(0, self._latest_committed_batch),
            "l2_getValidators": Method(1, self._validators),
            "eth_subscribe": Method(2, _no_notifications),
            "eth_unsubscribe": Method(1, _no_notifications),
        }
        tracing = TraceMethods(backend, self._state_number, self._message, self._call_gas)
        polling = FilterMethods(backend, FilterTable(SystemClock()) if filters is None else filters)
        pool = PoolMethods(backend, self._block)
        info = ChainInfoMethods(backend, self._state_number, self._call_gas, self._estimate_gas)
        simulate = SimulateMethods(backend, self._state_number, limits.gas_cap)
        for extra in (polling.methods(), pool.methods(), info.methods()):
            self.methods.update((name, Method(most, run)) for name, (most, run) in extra.items())
        # Traces, eth_simulateV1 and eth_fillTransaction run calls: a slot and a deadline,
        # as eth_call.
        for costly in (tracing.methods(), info.expensive_methods(), simulate.expensive_methods()):
            self.methods.update(
                (name, ExpensiveMethod(most, run)) for name, (most, run) in costly.items()
            )

    def extended(self, extra: Mapping[str, Method]) -> RpcMethods:
        """A copy that also answers ``extra`` (a WebSocket connection's eth_subscribe)."""
        twin = copy.copy(self)
        twin.methods = {**self.methods, **extra}
        return twin

    def dispatch(self, name: str, params: object, deadline: Deadline | None = None) -> object:
        """Run method ``name``; raises RpcError (or a backend error) when it fails.

        ``deadline`` (from ``new_deadline``) is given by a caller holding a slot for
        expensive methods, which then must end by it; without one they are refused "busy".
        """
        method = self.methods.get(name)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"the method {name} does not exist/is not available")
        args = Args(params, method.most_args)
        if isinstance(method, Method):
            return method.run(args)
        if deadline is None:
            raise RpcError(LIMIT_EXCEEDED, "server busy: too many expensive calls, retry later")
        if deadline.passed():  # earlier calls of its batch used up the time
            raise self._aborted()
        try:
            return method.run(args, deadline)
        except ExecutionAborted:
            raise self._aborted() from None

    def new_deadline(self) -> Deadline:
        """The deadline of expensive calls starting now (RpcLimits.evm_timeout); all are
        cancelled when ``stopping`` is set."""
        return Deadline(time.monotonic() + self._limits.evm_timeout, self._stopping)

    def _aborted(self) -> RpcError:
        # go-ethereum's wording: "execution aborted (timeout = 5s)".
        return RpcError(
            SERVER_ERROR, f"execution aborted (timeout = {self._limits.evm_timeout:g}s)"
        )

    # -- resolving block names ---------------------------------------------------------------

    def _block(self, block_id: BlockId) -> BlockView | None:
        if block_id.block_hash is not None:
            return self._backend.block_by_hash(block_id.block_hash)
        number = block_number(self._backend, block_id)
        return self._backend.block_by_number(number)

    def _state_number(self, block_id: BlockId) -> int:
        """Height whose post-state ``block_id`` names; "header not found" when there is none."""
        if block_id.block_hash is not None:
            view = self._backend.block_by_hash(block_id.block_hash)
            if view is None:
                raise header_not_found()
            return view.header.number
        number = block_number(self._backend, block_id)
        if number > self._backend.head_number():
            raise header_not_found()
        return number

    # -- blocks and transactions -------------------------------------------------------------

    def _block_by_number(self, args: Args) -> object:
        view = self._block(args.required(0, parse_block_number))
        full = args.required(1, parse_bool)
        return None if view is None else render.block(view, full)

    def _block_by_hash(self, args: Args) -> object:
        view = self._backend.block_by_hash(args.required(0, parse_hash))
        full = args.required(1, parse_bool)
        return None if view is None else render.block(view, full)

    def _tx_count_by_number(self, args: Args) -> object:
        view = self._block(args.required(0, parse_block_number))
        return None if view is None else quantity(len(view.transactions))

    def _tx_count_by_hash(self, args: Args) -> object:
        view = self._backend.block_by_hash(args.required(0, parse_hash))
        return None if view is None else quantity(len(view.transactions))

    def _tx_in_block(self, view: BlockView | None, index: int) -> object:
        if view is None or index >= len(view.transactions):
            return None
        return render.block_transaction(view, view.header.hash, index)

    def _tx_by_number_and_index(self, args: Args) -> object:
        view = self._block(args.required(0, parse_block_number))
        return self._tx_in_block(view, args.required(1, parse_u64))

    def _tx_by_hash_and_index(self, args: Args) -> object:
        view = self._backend.block_by_hash(args.required(0, parse_hash))
        return self._tx_in_block(view, args.required(1, parse_u64))

    def _transaction(self, args: Args) -> object:
        tx_hash = args.required(0, parse_hash)
        found = self._backend.transaction(tx_hash)
        if found is None:
            return None
        tx, location = found
        if location is None:
            return render.transaction(tx, None, tx.max_fee_per_gas)
        return render.transaction(tx, location, self._paid_gas_price(tx_hash))

    def _paid_gas_price(self, tx_hash: Hash32) -> int:
        receipt = self._backend.receipt(tx_hash)
        if receipt is None:
            raise RuntimeError(f"included transaction {tx_hash.hex()} has no receipt")
        return receipt.effective_gas_price

    def _receipt(self, args: Args) -> object:
        view = self._backend.receipt(args.required(0, parse_hash))
        return None if view is None else render.receipt(view)

    def _block_receipts(self, args: Args) -> object:
        view = self._block(args.required(0, parse_block_ref))
        if view is None:
            return None
        return [render.receipt(r) for r in self._backend.block_receipts(view.header.number)]

    def _send_raw_transaction(self, args: Args) -> object:
        (outcome,) = self.send_raw_transactions([args])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def send_raw_transactions(self, calls: Sequence[Args | object]) -> list[object | Exception]:
        """Answers to several eth_sendRawTransaction calls (their Args, or raw params),
        admitted together: one pass over the pool and one durable write for all of them."""
        return send_raw_transactions(calls, self._backend.send_raw_transactions)

    # -- state -------------------------------------------------------------------------------

    def _nonce(self, args: Args) -> object:
        address = args.required(0, parse_address)
        block_id = args.optional(1, parse_block_ref, LATEST)
        if block_id.pending:
            return quantity(self._backend.pending_nonce(address))
        account = self._backend.state_at(self._state_number(block_id)).get_account(address)
        return quantity(0 if account is None else account.nonce)

    def _balance(self, args: Args) -> object:
        address = args.required(0, parse_address)
        number = self._state_number(args.optional(1, parse_block_ref, LATEST))
        account = self._backend.state_at(number).get_account(address)
        return quantity(0 if account is None else account.balance)

    def _code(self, args: Args) -> object:
        address = args.required(0, parse_address)
        number = self._state_number(args.optional(1, parse_block_ref, LATEST))
        return data(self._backend.state_at(number).get_code(address))

    def _storage(self, args: Args) -> object:
        address = args.required(0, parse_address)
        slot = args.required(1, parse_storage_slot)
        number = self._state_number(args.optional(2, parse_block_ref, LATEST))
        value = self._backend.state_at(number).get_storage(address, slot)
        return data(value.to_bytes(32, "big"))

    def _proof(self, args: Args) -> object:
        address = args.required(0, parse_address)
        slots = args.required(1, parse_storage_slots)
        number = self._state_number(args.required(2, parse_block_ref))
        return render.account_proof(self._backend.proof(number, address, slots))

    def _call_gas(self, request: CallRequest, number: int) -> int:
        """The gas a call request may use: its own, else the block's gas limit."""
        if request.gas is not None:
            return request.gas
        view = self._backend.block_by_number(number)
        if view is None:
            raise header_not_found()
        return view.header.gas_limit

    def _message(
        self, request: CallRequest, gas: int, overrides: Mapping[Address, AccountOverride] = _NONE
    ) -> CallMessage:
        """The CallMessage for ``request``, priced as geth prices calls."""
        if request.gas_price is not None:
            gas_price = request.gas_price
        else:
            fee_cap = request.max_fee_per_gas or 0
            tip = request.max_priority_fee_per_gas or 0
            # No price given means a free call that needs no balance for gas.
            gas_price = 0
            if fee_cap or tip:
                gas_price = min(tip + self._backend.next_base_fee(), fee_cap)
        return CallMessage(
            sender=request.sender or ZERO_ADDRESS,
            to=request.to,
            gas=min(gas, self._limits.gas_cap),
            value=request.value,
            data=request.data,
            gas_price=gas_price,
            access_list=request.access_list,
            overrides=overrides,
        )

    def _call(self, args: Args, deadline: Deadline) -> object:
        request = args.required(0, parse_call)
        number = self._state_number(args.optional(1, parse_block_ref, LATEST))
        overrides = args.optional(2, parse_state_overrides, _NONE)
        gas_cap = self._limits.gas_cap
        message = self._message(
            request, gas_cap if request.gas is None else request.gas, overrides
        )
        result = self._backend.call(message, number, deadline)
        if result.succeeded:
            return data(result.output)
        if _reverted(result):
            raise execution_reverted(result.output)
        raise RpcError(SERVER_ERROR, result.error or "execution failed")

    def _estimate_gas(self, args: Args, deadline: Deadline) -> object:
        request = args.required(0, parse_call)
        number = self._state_number(args.optional(1, parse_block_ref, LATEST))
        overrides = args.optional(2, parse_state_overrides, _NONE)
        message = self._message(request, self._call_gas(request, number), overrides)
        try:
            return quantity(self._backend.estimate_gas(message, number, deadline))
        except ExecutionReverted as exc:
            # A revert is code 3 with its data, as geth answers; other failures are -32000.
            if exc.data or str(exc).startswith("execution reverted"):
                raise execution_reverted(exc.data) from None
            raise RpcError(SERVER_ERROR, str(exc)) from None

    # -- fees, logs, batches -----------------------------------------------------------------

    def _fee_history(self, args: Args) -> object:
        count = args.required(0, parse_count)
        newest_id = args.required(1, parse_block_number)
        percentiles = args.optional(2, parse_percentiles, NO_PERCENTILES)
        head = self._backend.head_number()
        newest = block_number(self._backend, newest_id)
        if newest > head:
            raise RpcError(
                SERVER_ERROR, f"request beyond head block: requested {newest}, head {head}"
            )
        count = min(count, newest + 1, MAX_FEE_HISTORY_BLOCKS)
        if count == 0:
            return render.fee_history(FeeHistory(0, (), (), ()), with_rewards=False)
        history = self._backend.fee_history(count, newest, percentiles)
        return render.fee_history(history, with_rewards=bool(percentiles))

    def _logs(self, args: Args) -> object:
        query = args.required(0, parse_log_query)
        if query.block_hash is not None:
            view = self._backend.block_by_hash(query.block_hash)
            if view is None:
                raise RpcError(RESOURCE_NOT_FOUND, "unknown block")
            first = last = view.header.number
        else:
            head = self._backend.head_number()
            first = block_number(self._backend, query.from_block)
            last = block_number(self._backend, query.to_block)
            if first > head or last > head:
                raise InvalidParams("block range extends beyond current head block")
            if first > last:
                raise InvalidParams("invalid block range params")
            if last - first + 1 > MAX_LOG_BLOCK_RANGE:
                raise RpcError(
                    LIMIT_EXCEEDED, f"query exceeds max block range {MAX_LOG_BLOCK_RANGE}"
                )
        log_filter = LogFilter(first, last, query.addresses, query.topics)
        return [render.log(found) for found in self._backend.logs(log_filter)]

    def _batch(self, args: Args) -> object:
        view = self._backend.batch(args.required(0, parse_count))
        return None if view is None else render.batch(view)

    def _latest_committed_batch(self, args: Args) -> object:
        view = self._backend.latest_committed_batch()
        return None if view is None else render.batch(view)

    def _validators(self, args: Args) -> object:
        """The validator set deciding the block after ``block`` (default latest): its epoch,
        the seed that draws its proposers (sequencer.leader) and each validator's weight
        (genesis weights, then verified GPU work)."""
        number = self._state_number(args.optional(0, parse_block_ref, LATEST))
        epoch, weights = self._backend.validators(number + 1)
        return {
            "epoch": quantity(epoch),
            "seed": data(self._backend.leader_seed(number + 1)),
            "validators": [
                {"address": data(address), "weight": quantity(weight)}
                for address, weight in sorted(weights.items())
            ],
        }

    def _coinbase(self, args: Args) -> object:
        # Blocks are proposed by validators, not mined by this RPC endpoint's owner.
        raise RpcError(SERVER_ERROR, "etherbase must be explicitly specified")
