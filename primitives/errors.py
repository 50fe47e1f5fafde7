"""The error tree shared by all components.

Each error says what the caller should do: drop the input, retry later, or halt.
"""

from __future__ import annotations


class L2NodeError(Exception):
    """Root of every error l2node raises on purpose."""


class InvalidInput(L2NodeError, ValueError):
    """Input from outside (wallet, peer, file) is malformed: reject it, keep running."""


class InvalidTransaction(InvalidInput):
    """A transaction that can never be valid as encoded (bad RLP, signature, chain id...)."""


class TransactionRejected(L2NodeError):
    """A well-formed transaction that the current state or pool refuses (nonce, funds, fee).

    ``message`` uses go-ethereum's wording, which wallets match on.
    """


class RetryLater(L2NodeError):
    """A transient condition (peer or L1 unavailable): retry the same call later."""


class Halt(L2NodeError):
    """Local state is inconsistent: stop the node rather than continue on a wrong chain."""


class StoreClosed(L2NodeError):
    """A storage call after the store was closed (the node is shutting down): stop that work."""


class ExecutionAborted(L2NodeError):
    """A call (eth_call, eth_estimateGas) stopped because it ran past its deadline."""


class ExecutionReverted(L2NodeError):
    """A call (eth_call, eth_estimateGas) that reverts or halts; ``data`` is the revert output."""

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = data
