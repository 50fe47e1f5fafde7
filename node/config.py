"""Node configuration: a TOML preset (configs/devnet.toml by default) plus CLI overrides."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Interval
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from node.db.state import StateOptions
from primitives.errors import InvalidInput
from rpc.types import RpcLimits
from sequencer.types import ConsensusConfig

# Value ranges, checked when the config is loaded (pydantic reads these annotations).
Port = Annotated[int, Interval(ge=1, le=65535)]
Count = Annotated[int, Ge(1)]
Amount = Annotated[int, Interval(ge=0, lt=2**256)]
Seconds = Annotated[float, Gt(0)]
ExecutorKind = Literal["reference", "native-cpu", "native-cuda", "auto"]


@dataclass(frozen=True)
class ChainConfig:
    """The L2 chain's parameters."""

    chain_id: Annotated[int, Interval(ge=1, lt=2**63)]
    """Chain id wallets sign for."""
    block_time: Seconds
    """Seconds between blocks."""
    gas_limit: Annotated[int, Interval(ge=21_000, lt=2**63)]
    """Block gas limit."""
    initial_base_fee: Amount
    """Base fee of the genesis block in wei; EIP-1559 adjusts it per block."""
    genesis_timestamp: Annotated[int, Interval(ge=0, lt=2**63)]
    """Timestamp of block 0 (fixed, so the genesis hash is reproducible)."""


@dataclass(frozen=True)
class GenesisConfig:
    """Prefunded accounts."""

    mnemonic: str
    """BIP-39 mnemonic whose first ``accounts`` keys (m/44'/60'/0'/0/i) are funded."""
    accounts: Annotated[int, Ge(0)]
    """How many accounts to fund."""
    balance_wei: Amount
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
    challenge_seconds: Annotated[float, Ge(0)] = 0.0
    """At most this many seconds of GPU challenge per epoch; 0: until the challenge window's
    honest stop (sequencer/election.py), which alone bounds the weight a proof earns."""
    challenge_device: Literal["cuda", "cpu", "auto"] = "auto"
    """cuda | cpu | auto: where the challenge runs (a CPU proof weighs what it computed)."""


@dataclass(frozen=True)
class ExecutorConfig:
    """Which executor runs blocks."""

    kind: ExecutorKind
    """reference | native-cpu | native-cuda | auto."""
    pipelined: bool = False
    """Single validator: execute each block while the one before's state root and write run
    (``Node.produce_pipelined``). Off by default: on the H100 host it gained nothing (the
    overlap hides only the C part of a block's root and write; see the README)."""


@dataclass(frozen=True)
class MempoolConfig:
    """Transaction pool limits."""

    max_per_sender: Count
    """Most pooled transactions per sender."""
    max_total: Count
    """Most pooled transactions overall."""
    price_bump_percent: Annotated[int, Ge(0)]
    """Fee increase a replacement needs."""
    min_tip: Amount
    """Lowest priority fee accepted, in wei."""
    max_txs_per_block: Count
    """Most transactions per block."""
    max_queued_per_sender: Annotated[int, Ge(0)] = 16
    """Most nonce-gapped (queued) transactions per sender."""
    max_queued: Annotated[int, Ge(0)] = 1_024
    """Most queued transactions overall (go-ethereum: global_queue)."""
    queued_lifetime: Seconds = 3 * 3600.0
    """Seconds before a queued transaction whose gap stays open is dropped."""


@dataclass(frozen=True)
class RpcConfig(RpcLimits):
    """JSON-RPC listener, and the limits of what one caller may make it spend."""

    host: str = "127.0.0.1"
    """Interface to bind."""
    port: Port = 8545
    """TCP port (HTTP and WebSocket)."""
    cors: tuple[str, ...] = ("*",)
    """Origins browsers may call from ("*": any), also checked on WebSocket upgrades."""
    hosts: tuple[str, ...] = ("*",)
    """Host header values accepted ("*": any; e.g. ["localhost"] against DNS rebinding)."""
    bind_retry: Annotated[float, Ge(0)] = 30.0
    """Seconds a taken port, RPC or libp2p, is retried with backoff before giving up (0: fail
    at once)."""
    fronts: Annotated[int, Ge(0)] | Literal["auto"] = 0
    """Front processes serving the port (HTTP, JSON, eth_sendRawTransaction's answers on other
    cores; everything else they pass to the node): 0 for none, "auto" for one per four cores
    beyond four (none below eight cores)."""


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
    tx_batch_interval: Seconds = 0.05
    """Seconds between gossip messages carrying the transactions accepted meanwhile."""


@dataclass(frozen=True)
class L1Config:
    """Where batches are committed."""

    rpc_url: str
    """Ethereum JSON-RPC endpoint; empty for the in-process L1."""
    contract: str
    """Batch contract address; empty to deploy one at start."""
    blocks_per_batch: Count
    """L2 blocks per L1 commitment."""
    poll_interval: Seconds
    """Seconds between poster steps."""
    poster_keystore: str = ""
    """Ethereum keystore (v3 JSON) of the key paying L1 gas when ``rpc_url`` is set
    (`l2node keys new` / `l2node keys import`)."""
    poster_password_file: str = ""
    """File holding the keystore's password; else env L2NODE_KEYSTORE_PASSWORD, else a prompt."""
    poster_key: str = ""
    """Refused with ``rpc_url``: raw keys do not belong in config files (use ``poster_keystore``)."""
    max_chunk_bytes: Count = 120 * 1024
    """Most batch data per L1 transaction (L1 nodes refuse transactions over 128 KiB)."""
    confirmations: Annotated[int, Ge(0)] = 6
    """L1 blocks on top of a commitment before the poster forgets the batch."""
    stuck_blocks: Count = 3
    """L1 blocks a poster transaction may stay pending before its fees are bumped."""


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus endpoint (GET /metrics on its own port)."""

    enabled: bool = False
    """Serve metrics (the devnet preset turns them on; a validator's config opts in)."""
    host: str = "127.0.0.1"
    """Interface to bind."""
    port: Port = 7300
    """TCP port."""


@dataclass(frozen=True)
class HealthConfig:
    """When GET /ready answers 503."""

    max_head_age_blocks: Annotated[float, Gt(0)] = 10.0
    """The head must have advanced within this many block times."""
    max_l1_lag_seconds: Seconds = 600.0
    """The oldest finalized block not yet committed to L1 may be at most this old (checked on
    a node that posts)."""


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
    consensus: ConsensusConfig = dataclasses.field(default_factory=ConsensusConfig)
    """Timeouts of the consensus rounds (with [p2p] enabled)."""
    state: StateOptions = dataclasses.field(default_factory=StateOptions)
    """Flat state cache and unwind depth."""
    metrics: MetricsConfig = MetricsConfig()
    """Prometheus endpoint."""
    health: HealthConfig = HealthConfig()
    """Readiness bounds."""
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
    "consensus": ConsensusConfig,
    "state": StateOptions,
    "metrics": MetricsConfig,
    "health": HealthConfig,
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
    or "data_dir". Every value is checked against its field's type and range; InvalidInput
    says, one line per mistake, which key, which value, where it came from and what is
    allowed.
    """
    raw = default_preset()
    origins: dict[tuple[str, str], str] = {}
    if path is not None:
        try:
            user = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput(f"cannot read config {path}: {exc}") from exc
        for section, values in user.items():
            if section not in _SECTIONS or not isinstance(values, dict):
                raise InvalidInput(
                    f"config {path}: unknown section [{section}]; sections are "
                    + ", ".join(f"[{name}]" for name in _SECTIONS)
                )
            for key in _FILE_KEYS.get(section, ()):
                # Files named in a config are relative to it, not to where the node starts.
                if isinstance(values.get(key), str) and values[key]:
                    values[key] = str(Path(path).parent / values[key])
            raw.setdefault(section, {}).update(values)
            origins.update({(section, key): f"in {path}" for key in values})
    data_dir = Path(overrides.pop("data_dir", None) or ".l2node")
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        raw.setdefault(section, {})[field] = value
        origins[(section, field)] = "from the command line"
    sections: dict[str, Any] = {}
    problems: list[str] = []
    for name, cls in _SECTIONS.items():
        # TOML arrays arrive as lists; frozen configs hold tuples.
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.get(name, {}).items()}
        try:
            checked = _schema(cls).model_validate(values)
        except ValidationError as exc:
            problems.extend(_problem(name, cls, error, origins) for error in exc.errors())
            continue
        sections[name] = cls(**{f: getattr(checked, f) for f in type(checked).model_fields})
    if problems:
        raise InvalidInput("\n".join(problems))
    return NodeConfig(data_dir=data_dir, **sections)


_SCHEMAS: dict[str, type[BaseModel]] = {}


def _schema(cls: type[Any]) -> type[BaseModel]:
    """A strict pydantic model of the config dataclass ``cls``: no unknown keys, no coercion
    (port = "8545" is a mistake, not a port), no NaN or infinity."""
    model = _SCHEMAS.get(cls.__name__)
    if model is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields: dict[str, Any] = {f.name: (hints[f.name], _default(f))
                                  for f in dataclasses.fields(cls)}
        config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
        model = _SCHEMAS[cls.__name__] = create_model(
            f"{cls.__name__}Schema", __config__=config, **fields
        )
    return model


def _default(field: dataclasses.Field[Any]) -> Any:
    """The field's default for pydantic (``...``: required)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return ...


_TYPE_ERRORS = {"int_type", "float_type", "bool_type", "string_type"}


def _problem(
    section: str, cls: type[Any], error: Any, origins: dict[tuple[str, str], str]
) -> str:
    """One line: the key, its value, where it was set, what is allowed."""
    key = ".".join(str(part) for part in error["loc"])
    value = error["input"]
    where = origins.get((section, key), "in the preset")
    if error["type"] == "extra_forbidden":
        known = ", ".join(f.name for f in dataclasses.fields(cls))
        return f"config [{section}] {key} ({where}): unknown key; [{section}] has {known}"
    if error["type"] == "missing":
        return f"config [{section}] {key}: missing; set it in the config file"
    allowed = error["msg"][0].lower() + error["msg"][1:]
    if error["type"] in _TYPE_ERRORS and _is_number(value):
        allowed += ", not a string (write it without quotes)"
    return f"config [{section}] {key} = {_toml(value)} ({where}): {allowed}"


def _is_number(value: Any) -> bool:
    """Whether ``value`` is a number written as a string ("8545")."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _toml(value: Any) -> str:
    """``value`` as it would be written in the TOML file."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


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
