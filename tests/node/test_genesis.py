"""Genesis files: round trip, the devnet preset, and clear errors for bad files."""

from __future__ import annotations

import json

import pytest

from node.config import load_config
from node.db.state import GenesisAccount
from node.genesis import Genesis, GenesisValidator, chain_genesis, genesis_to_json, parse_genesis
from primitives.errors import InvalidInput
from primitives.types import Address

A = Address(bytes.fromhex("11" * 20))
B = Address(bytes.fromhex("22" * 20))


def sample() -> Genesis:
    return Genesis(
        chain_id=9, timestamp=5, gas_limit=30_000_000, base_fee_per_gas=7,
        alloc={A: GenesisAccount(balance=10**21, nonce=3, code=b"\x60\x00", storage={1: 2})},
        validators=(GenesisValidator(A, 2), GenesisValidator(B, 1)),
    )


def test_round_trip() -> None:
    assert parse_genesis(genesis_to_json(sample())) == sample()


def test_devnet_preset_funds_the_mnemonic_accounts_and_has_one_validator() -> None:
    genesis = chain_genesis(load_config())
    assert genesis.chain_id == 7331
    assert len(genesis.alloc) == 10
    assert len(genesis.validators) == 1


def test_genesis_file_replaces_the_preset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "genesis.json"
    path.write_text(genesis_to_json(sample()))
    assert chain_genesis(load_config(genesis__file=str(path))) == sample()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda g: g.pop("chain_id"), "missing 'chain_id'"),
        (lambda g: g.update(validators=[]), "validators must not be empty"),
        (lambda g: g["validators"].append(g["validators"][0]), "duplicate validator"),
        (lambda g: g["validators"][0].update(weight=0), "weight must be positive"),
        (lambda g: g["validators"][0].update(address="0x1234"), "20 bytes"),
        (lambda g: g.update(gas_limit="lots"), "gas_limit"),
        (lambda g: g["alloc"].update({"0x" + "33" * 20: {"balance": -1}}), "balance"),
        (lambda g: g["alloc"].update({"0x" + "33" * 20: {"code": "6000"}}), "code"),
    ],
)
def test_bad_files_name_the_field(mutate, message) -> None:  # type: ignore[no-untyped-def]
    raw = json.loads(genesis_to_json(sample()))
    mutate(raw)
    with pytest.raises(InvalidInput, match=message):
        parse_genesis(json.dumps(raw))


def test_not_json() -> None:
    with pytest.raises(InvalidInput, match="not JSON"):
        parse_genesis("{")


def test_the_validator_config_example_loads() -> None:
    from pathlib import Path

    config = load_config(Path(__file__).parents[2] / "configs" / "validator.toml")
    assert config.p2p.enabled and config.validator.key_file.endswith("configs/validator.key")
    assert config.p2p.bootstrap == ()


def test_development_keys_are_hardhats_and_anvils() -> None:
    from eth_account import Account

    from node.genesis import development_keys

    Account.enable_unaudited_hdwallet_features()
    mnemonic = "test test test test test test test test test test test junk"
    keys = development_keys(mnemonic, 300)
    for index in (0, 1, 9, 299):
        path = f"m/44'/60'/0'/0/{index}"
        assert keys[index] == bytes(Account.from_mnemonic(mnemonic, account_path=path).key)
    assert keys[0].hex() == "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
