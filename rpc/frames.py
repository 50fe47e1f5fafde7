"""What a front process and the node say to each other about transactions to admit: raw
transactions one way, each one's hash or the error answered for it the other way. Binary, so
that the node spends no JSON work on them (rpc/front.py says why there are fronts)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

import numpy as np

from primitives.errors import InvalidInput
from primitives.types import Hash32
from rpc.errors import RpcError

ADMIT_PATH = "/_admit"
"""Where the node takes a front's transactions (on its private socket only)."""
FRAME_TYPE = "application/octet-stream"

_LENGTH = 4
_HASH, _ERROR = b"\x00", b"\x01"


def encode_raws(raws: Sequence[bytes]) -> bytes:
    """How many raw transactions (4 bytes, big-endian), each one's length (4 bytes each),
    then the transactions: the lengths first, so that the node splits a frame in C loops."""
    lengths = np.fromiter(map(len, raws), dtype=">u4", count=len(raws))
    return len(raws).to_bytes(_LENGTH, "big") + lengths.tobytes() + b"".join(raws)


def decode_raws(data: bytes) -> list[bytes]:
    """Inverse of ``encode_raws`` (an empty frame holds none); InvalidInput when ``data`` is
    not such a frame."""
    if not data:
        return []
    count = int.from_bytes(data[:_LENGTH], "big")
    start = _LENGTH * (count + 1)
    if len(data) < start:
        raise InvalidInput("truncated transactions frame")
    lengths = np.frombuffer(data, dtype=">u4", count=count, offset=_LENGTH).astype(np.int64)
    ends = start + np.cumsum(lengths)
    if (int(ends[-1]) if count else start) != len(data):
        raise InvalidInput("transactions frame of the wrong length")
    starts = ends - lengths
    return list(map(data.__getitem__, map(slice, starts.tolist(), ends.tolist())))


def encode_outcomes(outcomes: Sequence[Hash32 | RpcError]) -> bytes:
    """Each outcome: 0 and the 32-byte hash, or 1, a length and the error as JSON."""
    if set(map(type, outcomes)) <= {bytes}:  # the usual frame: every one admitted
        return _HASH + _HASH.join(cast("Sequence[bytes]", outcomes)) if outcomes else b""
    parts: list[bytes] = []
    for outcome in outcomes:
        if isinstance(outcome, RpcError):
            error = json.dumps([outcome.code, outcome.message, outcome.data]).encode()
            parts.append(_ERROR + len(error).to_bytes(_LENGTH, "big") + error)
        else:
            parts.append(_HASH + outcome)
    return b"".join(parts)


def decode_outcomes(data: bytes, count: int) -> list[Hash32 | RpcError]:
    """Inverse of ``encode_outcomes`` for ``count`` transactions; InvalidInput when ``data``
    is not their frame."""
    outcomes: list[Hash32 | RpcError] = []
    at = 0
    try:
        while at < len(data):
            if data[at : at + 1] == _HASH and at + 33 <= len(data):
                outcomes.append(Hash32(data[at + 1 : at + 33]))
                at += 33
                continue
            if data[at : at + 1] != _ERROR:
                raise InvalidInput("malformed outcomes frame")
            end = at + 1 + _LENGTH + int.from_bytes(data[at + 1 : at + 1 + _LENGTH], "big")
            code, message, detail = json.loads(data[at + 1 + _LENGTH : end])
            outcomes.append(RpcError(int(code), str(message), None if detail is None else str(detail)))
            at = end
    except (ValueError, TypeError) as exc:  # bad JSON, or not three fields
        raise InvalidInput(f"malformed outcomes frame: {exc}") from None
    if len(outcomes) != count:
        raise InvalidInput(f"outcomes frame holds {len(outcomes)} outcomes, not {count}")
    return outcomes
