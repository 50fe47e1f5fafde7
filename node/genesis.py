"""Genesis: the chain's first state, its parameters and its first validator set.

A genesis file is JSON, so operators, `l2node devnet` and the L1 watcher share one
description of block 0::

    {
      "chain_id": 7331,
      "timestamp": 1700000000,
      "gas_limit": 30000000,
      "base_fee_per_gas": 1000000000,
      "alloc": {"0x<address>": {"balance": "0x<wei>", "nonce": 0, "code": "0x", "storage": {"0x1": "0x2"}}},
      "validators": [{"address": "0x<address>", "weight": 1}],
      "epoch_length": 30
    }

Numbers may be JSON integers or 0x-hex strings. ``validators`` weights are the
bootstrap weights, in force until GPU proofs define new ones: ``epoch_length`` blocks per
GPU-weight epoch (node/epochs.py); 0 or absent keeps the bootstrap weights forever.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import coincurve
from eth_account import Account

from node.db.state import GenesisAccount
from primitives.crypto import SECP256K1_N, private_key_to_address
from primitives.errors import Halt, InvalidInput
from primitives.types import Address

if TYPE_CHECKING:
    from node.config import NodeConfig


@dataclass(frozen=True)
class GenesisValidator:
    """A member of the first validator set."""

    address: Address
    """Address of the validator's signing key."""
    weight: int
    """Voting weight until the first GPU proofs replace it (positive)."""


@dataclass(frozen=True)
class Genesis:
    """Block 0: parameters, prefunded state and the first validators."""

    chain_id: int
    """L2 chain id wallets sign for."""
    timestamp: int
    """Timestamp of block 0."""
    gas_limit: int
    """Block gas limit."""
    base_fee_per_gas: int
    """Base fee of block 0 in wei."""
    alloc: Mapping[Address, GenesisAccount]
    """Accounts that exist at block 0."""
    validators: tuple[GenesisValidator, ...]
    """The first validator set (at least one)."""
    epoch_length: int = 0
    """Blocks per GPU-weight epoch; 0: the genesis weights hold forever."""


def development_keys(mnemonic: str, count: int) -> list[bytes]:
    """Private keys m/44'/60'/0'/0/i for i < count, as hardhat and anvil derive them.

    One seed and one parent key, then one HMAC per key (BIP-32): thousands per second,
    where deriving each path from the mnemonic again takes milliseconds a key.
    """
    Account.enable_unaudited_hdwallet_features()
    # eth_account checks the mnemonic (words, checksum) and gives the first key to match.
    first = bytes(Account.from_mnemonic(mnemonic, account_path="m/44'/60'/0'/0/0").key)
    normalized = unicodedata.normalize("NFKD", mnemonic)
    seed = hashlib.pbkdf2_hmac("sha512", normalized.encode(), b"mnemonic", 2048)
    digest = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
    key, chain = digest[:32], digest[32:]
    for index in (44 | _HARDENED, 60 | _HARDENED, 0 | _HARDENED, 0):
        key, chain = _child_key(key, chain, index)
    keys = [_child_key(key, chain, i)[0] for i in range(count)]
    if keys and keys[0] != first:
        raise Halt("BIP-32 derivation disagrees with eth_account's")
    return keys


_HARDENED = 0x8000_0000


def _child_key(key: bytes, chain: bytes, index: int) -> tuple[bytes, bytes]:
    """BIP-32 private child derivation (the invalid-key case, odds 2^-127, is ignored)."""
    if index & _HARDENED:
        data = b"\0" + key
    else:
        data = coincurve.PrivateKey(key).public_key.format(compressed=True)
    digest = hmac.new(chain, data + index.to_bytes(4, "big"), hashlib.sha512).digest()
    child = (int.from_bytes(digest[:32], "big") + int.from_bytes(key, "big")) % SECP256K1_N
    return child.to_bytes(32, "big"), digest[32:]


def development_accounts(mnemonic: str, count: int) -> list[Address]:
    """Addresses of ``development_keys``."""
    return [private_key_to_address(key) for key in development_keys(mnemonic, count)]


def chain_genesis(config: NodeConfig) -> Genesis:
    """The genesis a node runs: ``[genesis] file`` when set, else the devnet preset's."""
    if config.genesis.file:
        return load_genesis(Path(config.genesis.file))
    from node.config import validator_key

    key = validator_key(config.validator)
    return Genesis(
        chain_id=config.chain.chain_id,
        timestamp=config.chain.genesis_timestamp,
        gas_limit=config.chain.gas_limit,
        base_fee_per_gas=config.chain.initial_base_fee,
        alloc={
            address: GenesisAccount(balance=config.genesis.balance_wei)
            for address in development_accounts(config.genesis.mnemonic, config.genesis.accounts)
        },
        validators=(GenesisValidator(private_key_to_address(key), 1),),
    )


def genesis_weights(genesis: Genesis) -> dict[Address, int]:
    """The first validator set as address -> weight."""
    return {v.address: v.weight for v in genesis.validators}


def genesis_to_json(genesis: Genesis) -> str:
    """The genesis file text for ``genesis`` (inverse of ``parse_genesis``)."""
    return json.dumps(
        {
            "chain_id": genesis.chain_id,
            "timestamp": genesis.timestamp,
            "gas_limit": genesis.gas_limit,
            "base_fee_per_gas": genesis.base_fee_per_gas,
            "alloc": {
                "0x" + address.hex(): {
                    "balance": hex(account.balance),
                    "nonce": account.nonce,
                    "code": "0x" + account.code.hex(),
                    "storage": {hex(k): hex(v) for k, v in account.storage.items()},
                }
                for address, account in genesis.alloc.items()
            },
            "validators": [
                {"address": "0x" + v.address.hex(), "weight": v.weight} for v in genesis.validators
            ],
            "epoch_length": genesis.epoch_length,
        },
        indent=2,
    )


def load_genesis(path: Path) -> Genesis:
    """Read and check a genesis file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read genesis {path}: {exc}") from exc
    return parse_genesis(text, str(path))


def parse_genesis(text: str, where: str = "genesis") -> Genesis:
    """Parse genesis JSON; InvalidInput names the first bad field."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected a JSON object")
    alloc_raw = _field(raw, "alloc", dict, where)
    validators_raw = _field(raw, "validators", list, where)
    if not validators_raw:
        raise InvalidInput(f"{where}: validators must not be empty")
    alloc = {
        _address(addr, f"{where}: alloc key"): GenesisAccount(
            balance=_number(account.get("balance", 0), f"{where}: alloc {addr} balance"),
            nonce=_number(account.get("nonce", 0), f"{where}: alloc {addr} nonce"),
            code=_hex_bytes(account.get("code", "0x"), f"{where}: alloc {addr} code"),
            storage={
                _number(k, f"{where}: alloc {addr} storage key"):
                    _number(v, f"{where}: alloc {addr} storage value")
                for k, v in _field(account, "storage", dict, f"{where}: alloc {addr}", {}).items()
            },
        )
        for addr, account in alloc_raw.items()
        if _is_object(account, f"{where}: alloc {addr}")
    }
    validators = []
    for index, entry in enumerate(validators_raw):
        what = f"{where}: validators[{index}]"
        if not _is_object(entry, what):
            continue
        weight = _number(entry.get("weight", 1), f"{what} weight")
        if weight <= 0:
            raise InvalidInput(f"{what}: weight must be positive")
        validators.append(GenesisValidator(_address(entry.get("address"), what), weight))
    if len({v.address for v in validators}) != len(validators):
        raise InvalidInput(f"{where}: duplicate validator address")
    return Genesis(
        chain_id=_number(_field(raw, "chain_id", (int, str), where), f"{where}: chain_id"),
        timestamp=_number(_field(raw, "timestamp", (int, str), where), f"{where}: timestamp"),
        gas_limit=_number(_field(raw, "gas_limit", (int, str), where), f"{where}: gas_limit"),
        base_fee_per_gas=_number(
            _field(raw, "base_fee_per_gas", (int, str), where), f"{where}: base_fee_per_gas"
        ),
        alloc=alloc,
        validators=tuple(validators),
        epoch_length=_number(raw.get("epoch_length", 0), f"{where}: epoch_length"),
    )


_MISSING: Any = object()


def _field(raw: Mapping[str, Any], name: str, kind: Any, where: str, default: Any = _MISSING) -> Any:
    value = raw.get(name, default)
    if value is _MISSING:
        raise InvalidInput(f"{where}: missing {name!r}")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInput(f"{where}: {name!r} has the wrong type")
    return value


def _is_object(value: Any, what: str) -> bool:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what}: expected an object")
    return True


def _number(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            number = int(value, 16) if value.startswith("0x") else int(value)
        except ValueError:
            pass
        else:
            if number >= 0:
                return number
    raise InvalidInput(f"{what}: expected a non-negative integer, got {value!r}")


def _hex_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise InvalidInput(f"{what}: expected 0x-prefixed hex, got {value!r}")


def _address(value: Any, what: str) -> Address:
    data = _hex_bytes(value, what)
    if len(data) != 20:
        raise InvalidInput(f"{what}: an address has 20 bytes, got {len(data)}")
    return Address(data)
