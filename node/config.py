"""Node configuration: a TOML preset (configs/devnet.toml by default) plus CLI overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from primitives.errors import InvalidInput


@dataclass(frozen=True)
class ChainConfig:
    """The L2 chain's parameters."""

    chain_id: int
    """Chain id wallets sign for."""
    block_time: float
    """Seconds between blocks."""
    gas_limit: int
    """Block gas limit."""
    initial_base_fee: int
    """Base fee of the genesis block in wei; EIP-1559 adjusts it per block."""
    genesis_timestamp: int
    """Timestamp of block 0 (fixed, so the genesis hash is reproducible)."""


@dataclass(frozen=True)
class GenesisConfig:
    """Prefunded accounts."""

    mnemonic: str
    """BIP-39 mnemonic whose first ``accounts`` keys (m/44'/60'/0'/0/i) are funded."""
    accounts: int
    """How many accounts to fund."""
    balance_wei: int
    """Balance of each."""
    file: str = ""
    """Genesis JSON (see node/genesis.py); when set it replaces the preset's chain and accounts."""


@dataclass(frozen=True)
class ValidatorConfig:
    """This node's validator identity."""

    private_key: str
    """Hex key that signs blocks and batches (devnet presets only; keystores come later)."""


@dataclass(frozen=True)
class ExecutorConfig:
    """Which executor runs blocks."""

    kind: str
    """reference | native-cpu | native-cuda | auto."""


@dataclass(frozen=True)
class MempoolConfig:
    """Transaction pool limits."""

    max_per_sender: int
    """Most pooled transactions per sender."""
    max_total: int
    """Most pooled transactions overall."""
    price_bump_percent: int
    """Fee increase a replacement needs."""
    min_tip: int
    """Lowest priority fee accepted, in wei."""
    max_txs_per_block: int
    """Most transactions per block."""


@dataclass(frozen=True)
class RpcConfig:
    """JSON-RPC listener."""

    host: str
    """Interface to bind."""
    port: int
    """TCP port."""


@dataclass(frozen=True)
class L1Config:
    """Where batches are committed."""

    rpc_url: str
    """Ethereum JSON-RPC endpoint; empty for the in-process L1."""
    contract: str
    """Batch contract address; empty to deploy one at start."""
    blocks_per_batch: int
    """L2 blocks per L1 commitment."""
    poll_interval: float
    """Seconds between poster steps."""
    poster_keystore: str = ""
    """Ethereum keystore (v3 JSON) of the key paying L1 gas when ``rpc_url`` is set
    (`l2node keys new` / `l2node keys import`)."""
    poster_password_file: str = ""
    """File holding the keystore's password; else env L2NODE_KEYSTORE_PASSWORD, else a prompt."""
    poster_key: str = ""
    """Refused with ``rpc_url``: raw keys do not belong in config files (use ``poster_keystore``)."""
    max_chunk_bytes: int = 120 * 1024
    """Most batch data per L1 transaction (L1 nodes refuse transactions over 128 KiB)."""
    confirmations: int = 6
    """L1 blocks on top of a commitment before the poster forgets the batch."""
    stuck_blocks: int = 3
    """L1 blocks a poster transaction may stay pending before its fees are bumped."""


@dataclass(frozen=True)
class NodeConfig:
    """Everything `l2node run` needs."""

    chain: ChainConfig
    """Chain parameters."""
    genesis: GenesisConfig
    """Prefunded accounts."""
    validator: ValidatorConfig
    """Validator identity."""
    executor: ExecutorConfig
    """Executor choice."""
    mempool: MempoolConfig
    """Pool limits."""
    rpc: RpcConfig
    """RPC listener."""
    l1: L1Config
    """L1 commitment."""
    data_dir: Path = Path(".l2node")
    """Where LevelDB lives."""


_SECTIONS: dict[str, type[Any]] = {
    "chain": ChainConfig,
    "genesis": GenesisConfig,
    "validator": ValidatorConfig,
    "executor": ExecutorConfig,
    "mempool": MempoolConfig,
    "rpc": RpcConfig,
    "l1": L1Config,
}


def default_preset() -> dict[str, Any]:
    """The devnet preset shipped in configs/devnet.toml."""
    text = resources.files("configs").joinpath("devnet.toml").read_text()
    return tomllib.loads(text)


def load_config(path: Path | None = None, **overrides: Any) -> NodeConfig:
    """Devnet preset, overlaid by the TOML file at ``path``, then by ``overrides``.

    ``overrides`` keys are "section.field" with dots replaced by "__" (rpc__port=8546),
    or "data_dir".
    """
    raw = default_preset()
    if path is not None:
        try:
            user = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput(f"cannot read config {path}: {exc}") from exc
        for section, values in user.items():
            if section not in _SECTIONS or not isinstance(values, dict):
                raise InvalidInput(f"config {path}: unknown section [{section}]")
            raw[section].update(values)
    data_dir = Path(overrides.pop("data_dir", None) or ".l2node")
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        raw[section][field] = value
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw[name]) - known
        if unknown:
            raise InvalidInput(f"config [{name}]: unknown keys {sorted(unknown)}")
        try:
            sections[name] = cls(**raw[name])
        except TypeError as exc:
            raise InvalidInput(f"config [{name}]: {exc}") from exc
    return NodeConfig(data_dir=data_dir, **sections)
