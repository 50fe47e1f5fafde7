"""The embedded default L1: an in-process Ethereum chain (eth-tester on py-evm).

It is ephemeral: the chain lives in memory as long as the process, and a
restarted node starts from an empty L1 (the poster then posts every batch
again from block 1). Every transaction is mined at once into its own block.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from eth.exceptions import Revert
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3
from web3.providers.eth_tester.defaults import API_ENDPOINTS
from web3.types import RPCEndpoint, RPCResponse

REVERT_ERROR_CODE = 3
"""JSON-RPC error code Ethereum nodes use for a reverted eth_call / eth_estimateGas."""


@dataclass(frozen=True)
class EmbeddedL1:
    """A running in-process L1 and the funded keys that come with it."""

    w3: Web3
    """Connection to the chain, for Web3L1Client and deploy_batch_inbox."""
    chain_id: int
    """The L1 chain id (part of every batch digest)."""
    deployer_key: bytes
    """Funded key for deploying contracts."""
    poster_key: bytes
    """Funded key that pays for batch commitments (apart, so its nonce is the poster's alone)."""


def start_embedded_l1() -> EmbeddedL1:
    """Start a fresh in-process L1 with auto-mining and funded deployer and poster accounts."""
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(_NodeLikeTesterProvider(tester))
    keys = tester.backend.account_keys
    return EmbeddedL1(
        w3=w3,
        chain_id=w3.eth.chain_id,
        deployer_key=keys[0].to_bytes(),
        poster_key=keys[1].to_bytes(),
    )


class _Reverted(Exception):
    """A call reverted with ``args[0]`` as its revert data."""


def _keep_revert_data(delegator: Callable[..., Any]) -> Callable[..., Any]:
    def call(tester: EthereumTester, params: Any) -> Any:
        try:
            return delegator(tester, params)
        except TransactionFailed as exc:
            # eth_estimateGas passes py-evm's Revert, which holds the data; eth_call passes
            # str(Revert), the data as a Python bytes literal.
            cause = exc.args[0] if exc.args else None
            data = cause.args[0] if isinstance(cause, Revert) and cause.args else cause
            if isinstance(data, str) and data.startswith(("b'", 'b"')):
                data = ast.literal_eval(data)
            if isinstance(data, bytes):
                raise _Reverted(data) from exc
            raise

    return call


class _NodeLikeTesterProvider(EthereumTesterProvider):
    """EthereumTesterProvider that reports reverts as Ethereum nodes do.

    web3's provider turns custom-error revert data into a plain message; a node
    answers with error code 3 and the data in hex, which web3 then raises as
    ContractCustomError. The client decodes those, whichever L1 it talks to.
    """

    def __init__(self, tester: EthereumTester) -> None:
        endpoints = {namespace: dict(methods) for namespace, methods in API_ENDPOINTS.items()}
        for method in ("call", "estimateGas"):
            endpoints["eth"][method] = _keep_revert_data(endpoints["eth"][method])
        super().__init__(tester, endpoints)

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except _Reverted as exc:
            error = {
                "code": REVERT_ERROR_CODE,
                "message": "execution reverted",
                "data": "0x" + exc.args[0].hex(),
            }
            return cast(RPCResponse, {"jsonrpc": "2.0", "id": 0, "error": error})
