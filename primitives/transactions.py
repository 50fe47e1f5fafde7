"""Signed transactions (legacy, EIP-2930, EIP-1559): decoding, hashing, sender recovery.

Blob transactions (EIP-4844, type 3) are rejected: an L2 has no blob pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from primitives import rlp
from primitives.crypto import (
    BatchRecover,
    InvalidSignature,
    check_signature_values,
    keccak256,
    recover_address,
    recover_addresses,
)
from primitives.errors import InvalidTransaction
from primitives.rlp import encode as rlp_encode
from primitives.types import UINT64_MAX, UINT256_MAX, Address, Hash32

LEGACY_TX = 0
ACCESS_LIST_TX = 1
DYNAMIC_FEE_TX = 2
BLOB_TX = 3


@dataclass(frozen=True)
class AccessListEntry:
    """One EIP-2930 access list item."""

    address: Address
    """The account to pre-warm."""
    storage_keys: tuple[int, ...]
    """Storage slots of ``address`` to pre-warm."""


_set_attribute = object.__setattr__
"""Sets an attribute of a frozen dataclass (its own ``__setattr__`` refuses)."""


@dataclass(frozen=True, init=False)
class Transaction:
    """A signed transaction of type 0, 1 or 2, with its sender already recovered.

    Immutable like any frozen dataclass, but built by handing it its ``__dict__`` whole instead
    of a frozen ``__setattr__`` per field (a quarter of the time): admission builds one per
    transaction.
    """

    tx_type: int
    """0 legacy, 1 EIP-2930, 2 EIP-1559."""
    chain_id: int | None
    """Chain id the signature commits to; None for pre-EIP-155 legacy transactions."""
    nonce: int
    """Sender's nonce."""
    max_priority_fee_per_gas: int
    """Tip cap; equals the gas price for types 0 and 1."""
    max_fee_per_gas: int
    """Fee cap; equals the gas price for types 0 and 1."""
    gas_limit: int
    """Gas the sender pays for at most."""
    to: Address | None
    """Recipient, or None for contract creation."""
    value: int
    """Wei transferred."""
    data: bytes
    """Call data or init code."""
    access_list: tuple[AccessListEntry, ...]
    """EIP-2930 access list (empty for legacy)."""
    v: int
    """Signature v as encoded (y parity for typed txs, 27/28 or EIP-155 value for legacy)."""
    r: int
    """Signature r."""
    s: int
    """Signature s."""
    sender: Address
    """Address recovered from the signature."""
    hash: Hash32
    """Keccak-256 of ``raw``: the transaction hash wallets see."""
    raw: bytes
    """Canonical encoding (type byte + RLP for typed transactions)."""
    upfront_cost: int = field(init=False, repr=False, compare=False)
    """Balance the sender must hold: gas_limit * fee cap + value (admission, the pool and the
    executor each ask)."""

    def __init__(
        self, tx_type: int, chain_id: int | None, nonce: int, max_priority_fee_per_gas: int,
        max_fee_per_gas: int, gas_limit: int, to: Address | None, value: int, data: bytes,
        access_list: tuple[AccessListEntry, ...], v: int, r: int, s: int, sender: Address,
        hash: Hash32, raw: bytes,
    ) -> None:
        _set_attribute(self, "__dict__", {
            "tx_type": tx_type, "chain_id": chain_id, "nonce": nonce,
            "max_priority_fee_per_gas": max_priority_fee_per_gas,
            "max_fee_per_gas": max_fee_per_gas, "gas_limit": gas_limit, "to": to,
            "value": value, "data": data, "access_list": access_list, "v": v, "r": r, "s": s,
            "sender": sender, "hash": hash, "raw": raw,
            "upfront_cost": gas_limit * max_fee_per_gas + value,
        })

    @property
    def is_create(self) -> bool:
        """True when the transaction deploys a contract."""
        return self.to is None

    def effective_gas_price(self, base_fee: int) -> int:
        """Price per gas paid at ``base_fee`` (EIP-1559); caller checks fee cap >= base fee."""
        return min(self.max_fee_per_gas, base_fee + self.max_priority_fee_per_gas)

    def effective_tip(self, base_fee: int) -> int:
        """Tip per gas the block producer earns at ``base_fee`` (negative when underpriced)."""
        return min(self.max_priority_fee_per_gas, self.max_fee_per_gas - base_fee)


def _rlp_decode(payload: bytes) -> Any:
    try:
        # A transaction nests three levels at most; deeper input is hostile.
        return rlp.decode(payload, max_depth=4)
    except rlp.DecodingError as exc:
        raise InvalidTransaction(f"rlp: {exc}") from None


def _int(item: Any, what: str, limit: int = UINT256_MAX) -> int:
    if not isinstance(item, bytes):
        raise InvalidTransaction(f"{what} must be an RLP string")
    if len(item) > 0 and item[0] == 0:
        raise InvalidTransaction(f"{what} has leading zero bytes")
    value = int.from_bytes(item, "big")
    if value > limit:
        raise InvalidTransaction(f"{what} out of range")
    return value


def _bytes(item: Any, what: str) -> bytes:
    if not isinstance(item, bytes):
        raise InvalidTransaction(f"{what} must be an RLP string")
    return item


def _to(item: Any) -> Address | None:
    to = _bytes(item, "to")
    if to == b"":
        return None
    if len(to) != 20:
        raise InvalidTransaction("to must be 20 bytes or empty")
    return Address(to)


def _access_list(item: Any) -> tuple[AccessListEntry, ...]:
    if not isinstance(item, list):
        raise InvalidTransaction("access list must be an RLP list")
    entries = []
    for entry in item:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], list):
            raise InvalidTransaction("access list entry must be [address, [keys]]")
        address = _bytes(entry[0], "access list address")
        if len(address) != 20:
            raise InvalidTransaction("access list address must be 20 bytes")
        keys = []
        for key in entry[1]:
            if not isinstance(key, bytes) or len(key) != 32:
                raise InvalidTransaction("access list storage key must be 32 bytes")
            keys.append(int.from_bytes(key, "big"))
        entries.append(AccessListEntry(Address(address), tuple(keys)))
    return tuple(entries)


def encode_access_list(entries: tuple[AccessListEntry, ...]) -> list[list[Any]]:
    """RLP structure of an access list."""
    return [[e.address, [k.to_bytes(32, "big") for k in e.storage_keys]] for e in entries]


@dataclass(frozen=True)
class _Unsigned:
    """A decoded transaction whose sender is not known yet."""

    fields: dict[str, Any]
    """Transaction's fields but the sender."""
    signed_payload: Sequence[Any]
    """The RLP items the sender signed (hashed only when the sender is recovered)."""
    type_prefix: bytes
    """The type byte before them (empty for legacy)."""
    y_parity: int
    """Signature y parity (0 or 1 when valid)."""

    def signed_by(self, sender: Address) -> Transaction:
        return Transaction(**self.fields, sender=sender)

    @property
    def signing_hash(self) -> bytes:
        """What the sender signed."""
        return keccak256(self.type_prefix + rlp_encode(self.signed_payload))


def unsigned_transaction(
    chain_id: int,
    sender: Address,
    nonce: int,
    max_priority_fee_per_gas: int,
    max_fee_per_gas: int,
    gas_limit: int,
    to: Address | None,
    value: int,
    data: bytes,
    access_list: tuple[AccessListEntry, ...] = (),
) -> Transaction:
    """An EIP-1559 transaction from ``sender`` with an empty signature (v = r = s = 0): how
    eth_simulateV1 reports its calls, hashed as go-ethereum hashes them."""
    raw = bytes([DYNAMIC_FEE_TX]) + rlp_encode([
        chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas, gas_limit,
        b"" if to is None else to, value, data, encode_access_list(access_list), 0, 0, 0,
    ])
    return Transaction(
        tx_type=DYNAMIC_FEE_TX, chain_id=chain_id, nonce=nonce,
        max_priority_fee_per_gas=max_priority_fee_per_gas, max_fee_per_gas=max_fee_per_gas,
        gas_limit=gas_limit, to=to, value=value, data=data, access_list=access_list,
        v=0, r=0, s=0, sender=sender, hash=keccak256(raw), raw=raw,
    )


def decode_transaction(raw: bytes, sender: Address | None = None) -> Transaction:
    """Decode a transaction as sent to ``eth_sendRawTransaction`` and recover its sender.

    ``sender`` skips recovery; pass it only for transactions read back from our own
    database, whose sender was recovered when they were accepted.
    Raises InvalidTransaction with a message fit for a wallet.
    """
    unsigned = _decode_unsigned(raw)
    if sender is None:
        fields = unsigned.fields
        sender = _recover(unsigned.signing_hash, unsigned.y_parity, fields["r"], fields["s"])
    return unsigned.signed_by(sender)


def decode_transactions(
    raws: Sequence[bytes], recover: BatchRecover = recover_addresses
) -> list[Transaction | InvalidTransaction]:
    """Decode many transactions and recover their senders in one ``recover`` call (a native
    batch on CPU threads where the node has one); each transaction, or why it is invalid."""
    outcomes: list[_Unsigned | InvalidTransaction] = []
    for raw in raws:
        try:
            unsigned = _decode_unsigned(raw)
            fields = unsigned.fields
            check_signature_values(unsigned.y_parity, fields["r"], fields["s"])
            outcomes.append(unsigned)
        except InvalidSignature as exc:
            outcomes.append(InvalidTransaction(f"invalid signature: {exc}"))
        except InvalidTransaction as exc:
            outcomes.append(exc)
    pending = [u for u in outcomes if isinstance(u, _Unsigned)]
    senders = iter(recover([
        (u.signing_hash, u.y_parity, u.fields["r"], u.fields["s"]) for u in pending
    ]))
    decoded: list[Transaction | InvalidTransaction] = []
    for outcome in outcomes:
        if isinstance(outcome, InvalidTransaction):
            decoded.append(outcome)
            continue
        sender = next(senders)
        decoded.append(
            InvalidTransaction("invalid signature: signature recovers no public key")
            if sender is None else outcome.signed_by(sender)
        )
    return decoded


BatchDecode = Callable[[Sequence[bytes]], list[Transaction | InvalidTransaction]]
"""Decodes a batch of raw transactions and recovers their senders, as ``decode_transactions``
does (the node injects a native one)."""


def _decode_unsigned(raw: bytes) -> _Unsigned:
    if not raw:
        raise InvalidTransaction("empty transaction")
    first = raw[0]
    if first >= 0xC0:
        return _decode_legacy(raw)
    if first == BLOB_TX:
        raise InvalidTransaction("blob transactions (type 3) are not supported on this L2")
    if first not in (ACCESS_LIST_TX, DYNAMIC_FEE_TX):
        raise InvalidTransaction(f"transaction type {first} not supported")
    fields = _rlp_decode(raw[1:])
    expected = 11 if first == ACCESS_LIST_TX else 12
    if not isinstance(fields, list) or len(fields) != expected:
        raise InvalidTransaction(f"type {first} transaction must have {expected} fields")
    chain_id = _int(fields[0], "chainId")
    nonce = _int(fields[1], "nonce", UINT64_MAX - 1)
    if first == ACCESS_LIST_TX:
        tip = fee_cap = _int(fields[2], "gasPrice")
        rest = fields[3:]
    else:
        tip = _int(fields[2], "maxPriorityFeePerGas")
        fee_cap = _int(fields[3], "maxFeePerGas")
        if tip > fee_cap:
            raise InvalidTransaction("max priority fee per gas higher than max fee per gas")
        rest = fields[4:]
    y_parity = _int(rest[5], "yParity")
    return _Unsigned(
        fields={
            "tx_type": first,
            "chain_id": chain_id,
            "nonce": nonce,
            "max_priority_fee_per_gas": tip,
            "max_fee_per_gas": fee_cap,
            "gas_limit": _int(rest[0], "gas", UINT64_MAX),
            "to": _to(rest[1]),
            "value": _int(rest[2], "value"),
            "data": _bytes(rest[3], "data"),
            "access_list": _access_list(rest[4]),
            "v": y_parity,
            "r": _int(rest[6], "r"),
            "s": _int(rest[7], "s"),
            "hash": keccak256(raw),
            "raw": bytes(raw),
        },
        signed_payload=fields[:-3],
        type_prefix=bytes([first]),
        y_parity=y_parity,
    )


def _decode_legacy(raw: bytes) -> _Unsigned:
    fields = _rlp_decode(raw)
    if not isinstance(fields, list) or len(fields) != 9:
        raise InvalidTransaction("legacy transaction must have 9 fields")
    gas_price = _int(fields[1], "gasPrice")
    v = _int(fields[6], "v")
    chain_id: int | None
    if v in (27, 28):
        chain_id = None
        y_parity = v - 27
        signed = fields[:6]
    elif v >= 35:
        chain_id = (v - 35) // 2
        y_parity = (v - 35) % 2
        signed = fields[:6] + [chain_id, 0, 0]
    else:
        raise InvalidTransaction(f"invalid legacy signature v={v}")
    return _Unsigned(
        fields={
            "tx_type": LEGACY_TX,
            "chain_id": chain_id,
            "nonce": _int(fields[0], "nonce", UINT64_MAX - 1),
            "max_priority_fee_per_gas": gas_price,
            "max_fee_per_gas": gas_price,
            "gas_limit": _int(fields[2], "gas", UINT64_MAX),
            "to": _to(fields[3]),
            "value": _int(fields[4], "value"),
            "data": _bytes(fields[5], "data"),
            "access_list": (),
            "v": v,
            "r": _int(fields[7], "r"),
            "s": _int(fields[8], "s"),
            "hash": keccak256(raw),
            "raw": bytes(raw),
        },
        signed_payload=signed,
        type_prefix=b"",
        y_parity=y_parity,
    )


def _recover(signing_hash: bytes, y_parity: int, r: int, s: int) -> Address:
    try:
        return recover_address(signing_hash, y_parity, r, s)
    except InvalidSignature as exc:
        raise InvalidTransaction(f"invalid signature: {exc}") from None
