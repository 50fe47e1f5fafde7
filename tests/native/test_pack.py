"""The C packer of transactions (evm_pack_transactions) packs what it takes exactly as the
Python packer does, and leaves the rest to it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from executor_gpu.native_tx import _PACK, _Columns, _pack_in_c, _pack_in_python
from executor_gpu.types import BlockEnv
from primitives.transactions import AccessListEntry, Transaction
from primitives.types import UINT256_MAX
from tests.native.chain import CHAIN_ID, ENV, address, make_tx

_TYPED = [
    make_tx(0, 0, address(9), value=5),
    make_tx(1, 3, address(9), data=b"\x00\x01\x00\xff" * 10, gas=30_000, tx_type=1, max_fee=9),
    make_tx(2, 0, None, data=b"\x60\x00\x00", gas=100_000),  # a creation
    make_tx(3, 7, address(8), value=UINT256_MAX, max_fee=UINT256_MAX, tip=UINT256_MAX),  # upfront over 2^256
    make_tx(4, 0, address(9), value=2**200 + 3, max_fee=2**100, tip=2**99),
    make_tx(5, 0, address(9), gas=20_000),  # intrinsic gas too low
    make_tx(6, 0, address(9), max_fee=6, tip=1),  # under the base fee
    make_tx(7, 0, address(9), chain_id=1),  # another chain
    make_tx(8, 0, None, data=b"\x01" * 49153, gas=2_000_000),  # init code too large
    make_tx(9, 0, address(9), gas=0),
]
"""Typed transactions without access lists, every check that reads no state failing once."""


def _both(txs: list[Transaction], env: BlockEnv) -> None:
    c = _pack_in_c(txs, env)
    assert (c.status != _PACK["PACK_SLOW"]).all()
    python = _Columns(np.zeros_like(c.records), np.zeros_like(c.prices), np.zeros_like(c.tips),
                      np.zeros_like(c.status), np.zeros_like(c.data), 0)
    suspects = _pack_in_python(txs, env, np.arange(len(txs)), python)
    assert (c.records == python.records).all()
    assert (c.prices == python.prices).all()
    assert (c.tips == python.tips).all()
    assert c.data[: c.size].tobytes() == python.data[: python.size].tobytes()
    assert ((c.status == _PACK["PACK_SUSPECT"]) == suspects).all()


def test_the_c_packer_packs_typed_transactions_as_python_does() -> None:
    _both(_TYPED, ENV)


def test_prices_when_the_base_fee_plus_the_tip_exceeds_256_bits() -> None:
    env = replace(ENV, base_fee_per_gas=UINT256_MAX - 5)
    _both([make_tx(0, 0, address(9), max_fee=UINT256_MAX, tip=10),
           make_tx(1, 0, address(9), max_fee=UINT256_MAX - 1, tip=3)], env)


def test_legacy_and_access_list_transactions_are_left_to_python() -> None:
    entries = (AccessListEntry(address(9), (1,)),)
    txs = [make_tx(0, 0, address(9), tx_type=0), make_tx(1, 0, address(9), access_list=entries),
           make_tx(2, 0, address(9))]
    assert _pack_in_c(txs, ENV).status.tolist() == [_PACK["PACK_SLOW"], _PACK["PACK_SLOW"], _PACK["PACK_OK"]]


def test_a_chain_id_over_64_bits_packs_everything_in_python() -> None:
    env = replace(ENV, chain_id=2**64 + CHAIN_ID)
    assert (_pack_in_c(_TYPED, env).status == _PACK["PACK_SLOW"]).all()
