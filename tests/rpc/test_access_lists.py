"""Access lists on a real node: eth_estimateGas charges them, eth_createAccessList builds them,
and type-1 / type-2 transactions carrying them are included with the estimated gas."""

from __future__ import annotations

from typing import Any

import pytest
import rlp

from node.db.state import GenesisAccount
from primitives.crypto import keccak256
from primitives.types import Address
from tests.node.helpers import USERS
from tests.rpc.realnode import TOKEN_SOURCE, RealChain
from tests.solc import compile_contract

OTHER = Address(bytes.fromhex("42" * 20))
PROBE = Address(bytes.fromhex("5e" * 20))
WATCHED = Address(bytes.fromhex("77" * 20))
# BALANCE(WATCHED); STATICCALL(gas, 0x01, 0, 0, 0, 0); SLOAD(5); STOP
PROBE_CODE = (
    b"\x73" + WATCHED + b"\x31\x50"
    + bytes.fromhex("6000600060006000600161fffffa50")
    + bytes.fromhex("60055450")
    + b"\x00"
)


def hexa(address: bytes) -> str:
    return "0x" + address.hex()


def slot_key(slot: int) -> str:
    return "0x" + slot.to_bytes(32, "big").hex()


@pytest.fixture(scope="module")
def chain() -> RealChain:
    return RealChain({PROBE: GenesisAccount(code=PROBE_CODE)})


@pytest.fixture(scope="module")
def token(chain: RealChain) -> str:
    _, bytecode = compile_contract(TOKEN_SOURCE, "TestToken")
    tx_hash = chain.send(0, data=bytecode + (10**24).to_bytes(32, "big").hex(), gas=2_000_000)
    chain.mine()
    receipt = chain.rpc("eth_getTransactionReceipt", tx_hash)
    assert receipt["status"] == "0x1"
    address: str = receipt["contractAddress"]
    return address


def transfer_data(to: Address, amount: int) -> str:
    selector = keccak256(b"transfer(address,uint256)")[:4]
    return "0x" + (selector + to.rjust(32, b"\0") + amount.to_bytes(32, "big")).hex()


def balance_slot(holder: Address) -> int:
    """Solidity's slot of balanceOf[holder] (the mapping is the second state variable)."""
    return int.from_bytes(keccak256(holder.rjust(32, b"\0") + (1).to_bytes(32, "big")), "big")


def test_estimate_counts_access_list_like_anvil(chain: RealChain) -> None:
    call: dict[str, Any] = {"from": hexa(USERS[0]), "to": hexa(OTHER), "value": "0x1"}
    assert chain.rpc("eth_estimateGas", call) == hex(21_000)
    call["accessList"] = [{"address": hexa(OTHER), "storageKeys": [slot_key(1), slot_key(2)]}]
    # One address and two keys: 21,000 + 2,400 + 2 * 1,900 (anvil answers the same).
    assert chain.rpc("eth_estimateGas", call) == hex(27_200)


@pytest.mark.parametrize("tx_type", [1, 2])
def test_typed_transactions_with_access_lists_are_included(chain: RealChain, tx_type: int) -> None:
    access_list = [{"address": hexa(OTHER), "storageKeys": [slot_key(7)]}]
    call = {"from": hexa(USERS[1]), "to": hexa(OTHER), "value": "0x5", "accessList": access_list}
    gas = int(chain.rpc("eth_estimateGas", call), 16)
    assert gas == 21_000 + 2_400 + 1_900
    fields: dict[str, Any] = {"type": tx_type, "to": hexa(OTHER), "value": 5, "gas": gas,
                              "accessList": access_list}
    if tx_type == 1:
        fields["gasPrice"] = 10 * 10**9
    tx_hash = chain.send(1, **fields)
    chain.mine()
    receipt = chain.rpc("eth_getTransactionReceipt", tx_hash)
    assert receipt["status"] == "0x1" and receipt["gasUsed"] == hex(gas)
    assert receipt["type"] == hex(tx_type)
    tx = chain.rpc("eth_getTransactionByHash", tx_hash)
    assert tx["accessList"] == access_list


def test_create_access_list_for_a_token_transfer(chain: RealChain, token: str) -> None:
    call = {"from": hexa(USERS[0]), "to": token, "data": transfer_data(OTHER, 5)}
    result = chain.rpc("eth_createAccessList", call)
    assert "error" not in result
    # The token itself stays (its slots are accessed); the sender is excluded.
    assert result["accessList"] == [{
        "address": token,
        "storageKeys": [slot_key(balance_slot(USERS[0])), slot_key(balance_slot(OTHER))],
    }]
    with_list = {**call, "accessList": result["accessList"]}
    assert chain.rpc("eth_estimateGas", with_list) == result["gasUsed"]
    without = int(chain.rpc("eth_estimateGas", call), 16)
    # The token address is the transaction's "to" (already warm): its 2,400 buys nothing,
    # each key saves 2,100 - 1,900 - 100 = 100 on its cold SLOAD.
    assert int(result["gasUsed"], 16) == without + 2_400 - 2 * 100
    tx_hash = chain.send(0, to=token, data=transfer_data(OTHER, 5),
                         gas=int(result["gasUsed"], 16), accessList=result["accessList"])
    chain.mine()
    assert chain.rpc("eth_getTransactionReceipt", tx_hash)["status"] == "0x1"


def test_create_access_list_excludes_sender_target_and_precompiles(chain: RealChain) -> None:
    call = {"from": hexa(USERS[2]), "to": hexa(PROBE)}
    result = chain.rpc("eth_createAccessList", call)
    # BALANCE(WATCHED) lists WATCHED; the call to ecrecover (0x01) does not list it; the
    # probe's own slot 5 is listed under the probe.
    assert result["accessList"] == [
        {"address": hexa(WATCHED), "storageKeys": []},
        {"address": hexa(PROBE), "storageKeys": [slot_key(5)]},
    ]
    assert chain.rpc("eth_estimateGas", {**call, "accessList": result["accessList"]}) == (
        result["gasUsed"]
    )


def test_create_access_list_reports_a_revert(chain: RealChain, token: str) -> None:
    call = {"from": hexa(USERS[3]), "to": token, "data": transfer_data(OTHER, 1)}
    result = chain.rpc("eth_createAccessList", call)
    assert result["error"] == "execution reverted: insufficient balance"
    assert result["accessList"][0]["address"] == token


def test_bad_access_lists_are_invalid_params(chain: RealChain) -> None:
    base = {"from": hexa(USERS[0]), "to": hexa(OTHER)}
    bad: object
    for bad in ("0x12", [{"storageKeys": []}], [{"address": hexa(OTHER), "storageKeys": ["0x1"]}],
                [{"address": hexa(OTHER), "storageKeys": "0x00"}]):
        error = chain.rpc.error("eth_estimateGas", {**base, "accessList": bad})
        assert error["code"] == -32602, (bad, error)
        assert "accessList" in error["message"]


def test_eth_call_state_overrides(chain: RealChain, token: str) -> None:
    # balanceOf(OTHER) read through an override of its slot; the real value is untouched.
    selector = keccak256(b"balanceOf(address)")[:4]
    call = {"to": token, "data": "0x" + (selector + OTHER.rjust(32, b"\0")).hex()}
    override = {token: {"stateDiff": {slot_key(balance_slot(OTHER)): slot_key(12345)}}}
    assert int(chain.rpc("eth_call", call, "latest", override), 16) == 12345
    assert int(chain.rpc("eth_call", call, "latest"), 16) < 12345
    # Code and balance overrides: an account with no code gets PROBE's; a poor sender pays.
    poor = hexa(bytes.fromhex("99" * 20))
    paid = {"from": poor, "to": hexa(OTHER), "value": hex(10**18)}
    assert chain.rpc.error("eth_call", paid, "latest")["code"] == -32000
    assert chain.rpc("eth_call", paid, "latest", {poor: {"balance": hex(10**19)}}) == "0x"
    assert chain.rpc.error("eth_call", call, "latest", {token: {"state": {}, "stateDiff": {}}})[
        "code"] == -32602
    # "state" replaces the whole storage: the holder's balance slot is gone, slot 0 is new.
    total = {"to": token, "data": "0x" + keccak256(b"totalSupply()")[:4].hex()}
    mine = {"to": token, "data": "0x" + (selector + USERS[0].rjust(32, b"\0")).hex()}
    replaced = {token: {"state": {slot_key(0): slot_key(42)}}}
    assert int(chain.rpc("eth_call", total, "latest", replaced), 16) == 42
    assert int(chain.rpc("eth_call", mine, "latest", replaced), 16) == 0
    assert int(chain.rpc("eth_call", mine, "latest"), 16) > 0
    # "code" puts the token's code at an empty address, with the storage it is given there.
    code = chain.rpc("eth_getCode", token, "latest")
    clone = hexa(bytes.fromhex("c1" * 20))
    cloned = {clone: {"code": code, "stateDiff": {slot_key(0): slot_key(7)}}}
    assert int(chain.rpc("eth_call", {**total, "to": clone}, "latest", cloned), 16) == 7
    assert chain.rpc("eth_call", {**total, "to": clone}, "latest") == "0x"


def test_create_access_list_for_a_deployment(chain: RealChain) -> None:
    _, bytecode = compile_contract(TOKEN_SOURCE, "TestToken")
    sender = USERS[2]
    call = {"from": hexa(sender), "data": bytecode + (10**6).to_bytes(32, "big").hex()}
    result = chain.rpc("eth_createAccessList", call)
    nonce = int(chain.rpc("eth_getTransactionCount", hexa(sender), "latest"), 16)
    created = Address(keccak256(rlp.encode([sender, nonce]))[12:])
    # The new contract's own address is excluded, but its slots are listed (as geth does):
    # totalSupply (slot 0) and the deployer's balance.
    assert result["accessList"] == [{"address": hexa(created), "storageKeys": [
        slot_key(0), slot_key(balance_slot(sender))]}]
    assert "error" not in result
    assert chain.rpc("eth_estimateGas", {**call, "accessList": result["accessList"]}) == (
        result["gasUsed"])
