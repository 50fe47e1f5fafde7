"""JSON-RPC error codes and the errors that carry them to the caller."""

from __future__ import annotations

from primitives.errors import InvalidInput, L2NodeError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
"""go-ethereum's code for rejected transactions and failed calls; wallets match on the message."""
RESOURCE_NOT_FOUND = -32001
"""EIP-1474 code geth uses for "header not found"."""
LIMIT_EXCEEDED = -32005
"""EIP-1474 code for a query over a server limit."""
EXECUTION_REVERTED = 3
"""go-ethereum's code for a reverted eth_call / eth_estimateGas; ``data`` holds the revert bytes."""


TRANSACTION_REJECTIONS = (
    ("nonce too low", 1),
    ("nonce too high", 2),
    ("intrinsic gas too low", 800),
    ("transaction underpriced", 802),  # also "replacement transaction underpriced"
    ("exceeds block gas limit", 803),
    ("max priority fee per gas higher than max fee per gas", 804),
    ("max fee per gas less than block base fee", 806),
    ("insufficient funds", 809),
    ("already known", 1000),
    ("invalid signature", 1001),
)
"""eth_sendRawTransaction's codes from the execution-apis error catalogue
(src/error-groups: ExecutionErrors, GasErrors, TxPoolErrors), by the phrase of
go-ethereum's message that says why; the message stays go-ethereum's, which wallets match.
A rejection the catalogue has no code for keeps go-ethereum's -32000."""


def code_by_phrase(message: str, table: tuple[tuple[str, int], ...], default: int) -> int:
    """The code of the first phrase of ``table`` that ``message`` contains, else ``default``."""
    return next((code for phrase, code in table if phrase in message), default)


class RpcError(L2NodeError):
    """An error answered to the caller as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        """JSON-RPC error code."""
        self.message = message
        """Human-readable message."""
        self.data = data
        """Optional ``data`` member (hex revert bytes for EXECUTION_REVERTED)."""


class InvalidParams(RpcError, InvalidInput):
    """A parameter of a call is malformed, of the wrong type, or missing."""

    def __init__(self, message: str) -> None:
        super().__init__(INVALID_PARAMS, message)


def header_not_found() -> RpcError:
    """The error geth answers for a block that does not exist (yet)."""
    return RpcError(RESOURCE_NOT_FOUND, "header not found")


_ERROR_SELECTOR = bytes.fromhex("08c379a0")
"""Selector of Solidity's Error(string), the encoding of require/revert messages."""
_PANIC_SELECTOR = bytes.fromhex("4e487b71")
"""Selector of Solidity's Panic(uint256)."""
_PANIC_REASONS = {
    0x00: "generic panic",
    0x01: "assert(false)",
    0x11: "arithmetic underflow or overflow",
    0x12: "division or modulo by zero",
    0x21: "enum overflow",
    0x22: "invalid encoded storage byte array accessed",
    0x31: "out-of-bounds array access; popping on an empty array",
    0x32: "out-of-bounds access of an array or bytesN",
    0x41: "out of memory",
    0x51: "uninitialized function",
}
"""Solidity's panic codes, worded as geth words them."""


def revert_reason(output: bytes) -> str | None:
    """The message of Error(string) or Panic(uint256) revert data; None for anything else."""
    selector, body = output[:4], output[4:]
    if selector == _PANIC_SELECTOR and len(body) == 32:
        code = int.from_bytes(body, "big")
        return _PANIC_REASONS.get(code, f"unknown panic code: {code:#x}")
    if selector != _ERROR_SELECTOR or len(body) < 64:
        return None
    offset = int.from_bytes(body[:32], "big")
    if offset + 32 > len(body):
        return None
    length = int.from_bytes(body[offset : offset + 32], "big")
    if offset + 32 + length > len(body):
        return None
    try:
        return body[offset + 32 : offset + 32 + length].decode("utf-8")
    except UnicodeDecodeError:
        return None


def execution_reverted(output: bytes) -> RpcError:
    """geth's error for a reverted call: code 3, the reason when decodable, the data as hex."""
    reason = revert_reason(output)
    message = "execution reverted" if reason is None else f"execution reverted: {reason}"
    return RpcError(EXECUTION_REVERTED, message, "0x" + output.hex())
