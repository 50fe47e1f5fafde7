"""Node configuration: a TOML preset (configs/devnet.toml by default) plus CLI overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from node.db.state import StateOptions
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
    """Hex key that signs blocks, votes and batches (devnet presets only; keystores come later)."""
    key_file: str = ""
    """File holding the hex key instead (an operator's setup); when set it wins over ``private_key``."""
    challenge_seconds: float = 0.0
    """At most this many seconds of GPU challenge per epoch; 0: until the challenge window's
    honest stop (sequencer/election.py), which alone bounds the weight a proof earns."""
    challenge_device: str = "auto"
    """cuda | cpu | auto: where the challenge runs (a CPU proof weighs what it computed)."""


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
class P2PConfig:
    """Membership in a validator network (off: a single validator that finalizes alone)."""

    enabled: bool = False
    """Run consensus with the genesis validators over libp2p."""
    listen: str = "/ip4/127.0.0.1/tcp/9000"
    """Multiaddr to listen on."""
    bootstrap: tuple[str, ...] = ()
    """Multiaddrs (with /p2p/<peer id>) of peers to stay connected to."""
    identity_file: str = ""
    """This node's libp2p key (hex Ed25519 seed), created on first start; empty: DATA_DIR/p2p.key."""
    tx_batch_interval: float = 0.05
    """Seconds between gossip messages carrying the transactions accepted meanwhile."""


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
    p2p: P2PConfig = P2PConfig()
    """Validator network."""
    state: StateOptions = dataclasses.field(default_factory=StateOptions)
    """Flat state cache and unwind depth."""
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
    "p2p": P2PConfig,
    "state": StateOptions,
}


_FILE_KEYS = {
    "genesis": ("file",),
    "validator": ("key_file",),
    "p2p": ("identity_file",),
    "l1": ("poster_keystore", "poster_password_file"),
}
"""Config keys that name files."""


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
            for key in _FILE_KEYS.get(section, ()):
                # Files named in a config are relative to it, not to where the node starts.
                if isinstance(values.get(key), str) and values[key]:
                    values[key] = str(Path(path).parent / values[key])
            raw.setdefault(section, {}).update(values)
    data_dir = Path(overrides.pop("data_dir", None) or ".l2node")
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        raw.setdefault(section, {})[field] = value
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        values = raw.get(name, {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InvalidInput(f"config [{name}]: unknown keys {sorted(unknown)}")
        # TOML arrays arrive as lists; frozen configs hold tuples.
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        try:
            sections[name] = cls(**values)
        except TypeError as exc:
            raise InvalidInput(f"config [{name}]: {exc}") from exc
    return NodeConfig(data_dir=data_dir, **sections)


def validator_key(config: ValidatorConfig) -> bytes:
    """The validator's 32-byte private key, from ``key_file`` when set, else ``private_key``."""
    if config.key_file:
        try:
            text = Path(config.key_file).read_text().strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read validator.key_file: {exc}") from exc
        return hex_key(text, f"key in {config.key_file}")
    return hex_key(config.private_key, "validator.private_key")


def hex_key(value: str, what: str) -> bytes:
    """A 32-byte key written as hex (0x optional); InvalidInput names ``what`` otherwise."""
    try:
        key = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise InvalidInput(f"{what} is not hex") from None
    if len(key) != 32:
        raise InvalidInput(f"{what} must be 32 bytes")
    return key
