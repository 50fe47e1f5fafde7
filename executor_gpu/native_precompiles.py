"""The host's side of the native precompiles: the reference's error wording for a transaction
that calls a precompile directly with an input it rejects (status ST_PRECOMPILE_FAILURE).

The interpreter reports only that the input was invalid; which of the reference's messages
applies follows from the precompile and its input, which the host has.
"""

from __future__ import annotations

BLAKE2F_INPUT = 213
"""Length of BLAKE2F's input (EIP-152)."""


def precompile_error(precompile: int, data: bytes) -> str:
    """py-evm's message for precompile ``precompile`` refusing ``data`` (eth/precompiles/)."""
    if precompile == 0x06:
        return "Invalid ECADD parameters"
    if precompile == 0x07:
        return "Invalid ECMUL parameters"
    if precompile == 0x08:
        return "Invalid ECPAIRING parameters"
    if precompile == 0x09:
        prefix = "Blake2b input parameter validation failure: "
        if len(data) != BLAKE2F_INPUT:
            return (f"{prefix}input length for Blake2 F precompile should be exactly {BLAKE2F_INPUT}"
                    f" bytes, got: {len(data)}")
        return f"{prefix}incorrect final block indicator flag, needed 0 or 1, got: {data[-1]}"
    raise ValueError(f"precompile 0x{precompile:02x} never refuses its input natively")
