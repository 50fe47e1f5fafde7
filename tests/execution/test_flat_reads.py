"""The reference executor reads a flat pre-state through it (one get an account or slot) and
gives exactly what it gives walking the trie: calls (eth_call, eth_estimateGas), traces and
blocks on random states and random programs."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor_gpu.reference import PyEvmExecutor
from executor_gpu.tracing import ReferenceTracer
from executor_gpu.types import AccountChange, AccountOverride, CallMessage, StateDiff, TraceOptions
from node.db import schema
from node.db.memory import MemoryKV
from node.db.state import GenesisAccount, StateDB, StateView
from primitives.errors import L2NodeError
from primitives.types import Address
from tests.native.chain import ENV, address, make_tx
from tests.native.programs import program, push

RICH = 10**24
PEERS = [0xC0DE0001, 0xC0DE0002, 0xC0DE0003]
_T = TypeVar("_T")


def contract(n: int) -> Address:
    return Address(PEERS[n].to_bytes(20, "big"))


class CountingKV(MemoryKV):
    """Counts the gets of trie nodes and code (the keys under ``schema.STATE_NODE_PREFIX``)."""

    node_gets = 0

    def get(self, key: bytes) -> bytes | None:
        if key.startswith(schema.STATE_NODE_PREFIX):
            self.node_gets += 1
        return super().get(key)


def two_views(
    alloc: Mapping[Address, GenesisAccount], diff: StateDiff
) -> tuple[StateView, StateView, CountingKV]:
    """The state after genesis ``alloc`` and a block's ``diff``: read flat, and through the
    trie only (the same root)."""
    kv = CountingKV()
    state = StateDB(kv)
    batch = kv.write_batch()
    root = state.genesis(alloc, batch)
    state.commit(batch)
    batch = kv.write_batch()
    root = state.apply(root, diff, batch)
    state.commit(batch)
    flat, trie = state.at(root), StateView(kv, root)
    assert flat.reads_flat and not trie.reads_flat
    return flat, trie, kv


@functools.cache
def reference() -> PyEvmExecutor:
    return PyEvmExecutor()


@functools.cache
def tracer() -> ReferenceTracer:
    return ReferenceTracer()


@contextmanager
def deep_stack() -> Iterator[None]:
    """py-evm recurses in Python for every call frame: deep EVM call chains need more stack."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 30_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def outcome(run: Callable[[], _T]) -> _T | str:
    """What ``run`` returns, or the error it raises (a rejected trace), to compare."""
    try:
        return run()
    except L2NodeError as exc:
        return f"{type(exc).__name__}: {exc}"


OVERRIDES = st.one_of(
    st.none(),
    st.builds(
        AccountOverride,
        balance=st.one_of(st.none(), st.integers(0, 10**20)),
        nonce=st.one_of(st.none(), st.integers(0, 5)),
        state=st.one_of(st.none(), st.dictionaries(st.integers(0, 4), st.integers(0, 9), max_size=2)),
        state_diff=st.dictionaries(st.integers(0, 4), st.integers(0, 9), max_size=2),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codes=st.lists(program([*PEERS, 0xDEAD]), min_size=3, max_size=3),
    storage=st.lists(st.dictionaries(st.integers(0, 4), st.integers(1, 2**256 - 1), max_size=4),
                     min_size=3, max_size=3),
    changed=st.dictionaries(st.integers(0, 6), st.integers(0, 3), max_size=4),
    calls=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from([0, 1, 10**9]), st.binary(max_size=40),
                  st.sampled_from([60_000, 1_000_000]), st.sampled_from([0, 10]), OVERRIDES),
        min_size=1, max_size=3,
    ),
)
def test_calls_traces_and_blocks_read_flat_as_they_read_the_trie(
    codes: list[bytes], storage: list[dict[int, int]], changed: dict[int, int],
    calls: list[tuple[int, int, bytes, int, int, AccountOverride | None]],
) -> None:
    alloc = {address(i): GenesisAccount(balance=RICH, nonce=i) for i in range(2)} | {
        contract(n): GenesisAccount(balance=10**9, code=code, storage=slots)
        for n, (code, slots) in enumerate(zip(codes, storage))
    }
    # A block after genesis: slots changed and cleared, so the flat tables have a history.
    diff = StateDiff({
        contract(0): AccountChange(nonce=0, balance=10**9, storage={
            slot: value for slot, value in changed.items()
        }),
        address(0): AccountChange(nonce=0, balance=RICH - 1),
    })
    flat, trie, _ = two_views(alloc, diff)
    with deep_stack():
        for target, value, data, gas, price, override in calls:
            message = CallMessage(
                sender=address(target % 2), to=contract(target), gas=gas, value=value, data=data,
                gas_price=price, overrides={} if override is None else {contract(target): override},
            )
            traced = TraceOptions(struct_logs=True)
            for run in (
                functools.partial(reference().call, block_env=ENV, message=message),
                functools.partial(tracer().trace_call, block_env=ENV, message=message, options=traced),
            ):
                assert outcome(functools.partial(run, flat)) == outcome(functools.partial(run, trie))
        txs = [make_tx(i % 2, i // 2 + i % 2, contract(target), value=value, data=data, gas=gas)
               for i, (target, value, data, gas, _, _) in enumerate(calls)]
        assert reference().execute(flat, ENV, txs) == reference().execute(trie, ENV, txs)


def test_a_call_on_a_flat_state_reads_no_trie_node() -> None:
    # SLOAD of slots 0-3, BALANCE of three accounts, then RETURN of the sum.
    reads = b"".join(push(slot) + b"\x54" for slot in range(4))
    reads += b"".join(push(int.from_bytes(address(i), "big")) + b"\x31" for i in range(3))
    code = reads + b"\x01" * 6 + push(0) + b"\x52" + push(32) + push(0) + b"\xf3"
    alloc = {address(i): GenesisAccount(balance=1000 + i) for i in range(40)} | {
        contract(0): GenesisAccount(code=code, storage={slot: slot + 1 for slot in range(20)}),
    }
    flat, trie, kv = two_views(alloc, StateDiff({}))
    message = CallMessage(sender=address(0), to=contract(0), gas=100_000)
    results, node_gets = [], []
    for view in (flat, trie):
        kv.node_gets = 0
        results.append(reference().call(view, ENV, message))
        node_gets.append(kv.node_gets)
    expected = (1 + 2 + 3 + 4 + 1000 + 1001 + 1002).to_bytes(32, "big")
    assert results[0] == results[1] and results[0].output == expected
    # Flat: the contract's code is the only node-store get; the trie walks every path.
    assert node_gets[0] == 1 and node_gets[1] > 10
