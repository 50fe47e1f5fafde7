"""The embedded default L1: an Ethereum chain (eth-tester on py-evm) that the node starts.

It is ephemeral: the chain lives in memory as long as the node, and a restarted node
starts from an empty L1 (the poster then posts every batch again from block 1). Every
transaction is mined at once into its own block. The node runs it in a child process
(``own_process``): executing the L1 transactions of a busy L2's batches in Python takes
a good part of a core, which must not come out of the node's interpreter lock. Tests may
keep it in their own process.
"""

from __future__ import annotations

import ast
import multiprocessing
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any, cast

from eth.exceptions import Revert
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3
from web3.providers.base import BaseProvider
from web3.providers.eth_tester.defaults import API_ENDPOINTS
from web3.types import RPCEndpoint, RPCResponse

from primitives.errors import Halt

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
    stop: Callable[[], None] = lambda: None
    """Ends the chain's process, if it has one."""


def start_embedded_l1(own_process: bool = False) -> EmbeddedL1:
    """Start a fresh L1 with auto-mining and funded deployer and poster accounts, in this
    process or in a child process that ends with this one."""
    if not own_process:
        tester = EthereumTester(PyEVMBackend())
        keys = [key.to_bytes() for key in tester.backend.account_keys[:2]]
        return _embedded(Web3(_NodeLikeTesterProvider(tester)), keys)
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=_serve_chain, args=(theirs,), name="l2node-l1", daemon=True
    )
    child.start()
    theirs.close()
    try:
        keys = ours.recv()
    except EOFError:
        raise Halt("the embedded L1's process ended before it started (its error is above)") from None

    def stop() -> None:
        ours.close()  # the child reads end-of-file and returns
        child.join(5)
        if child.is_alive():
            child.kill()

    return replace(_embedded(Web3(_ChildChainProvider(ours)), keys), stop=stop)


def _embedded(w3: Web3, keys: list[bytes]) -> EmbeddedL1:
    return EmbeddedL1(w3=w3, chain_id=w3.eth.chain_id, deployer_key=keys[0], poster_key=keys[1])


def _serve_chain(node: Connection) -> None:
    """The child process: a chain answering the node's provider requests until the node
    closes its end (or dies)."""
    # Ctrl-C reaches the terminal's whole process group: the node stops, and ends this with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tester = EthereumTester(PyEVMBackend())
    provider = _NodeLikeTesterProvider(tester)
    node.send([key.to_bytes() for key in tester.backend.account_keys[:2]])
    while True:
        try:
            method, params = node.recv()
        except (EOFError, OSError):
            return
        try:
            node.send((True, provider.make_request(method, params)))
        except Exception as exc:  # noqa: BLE001 -- raised again in the node
            node.send((False, RuntimeError(f"embedded L1 {method}: {exc!r}")))


class _ChildChainProvider(EthereumTesterProvider):
    """The node's end of a chain in a child process: web3's eth-tester formatting runs here
    (the provider's middleware), the chain there."""

    def __init__(self, connection: Connection) -> None:
        BaseProvider.__init__(self)  # not the tester provider's: it would build a chain here
        self._connection = connection
        self._lock = threading.Lock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            self._connection.send((method, params))
            ok, answer = self._connection.recv()
        if not ok:
            raise answer
        return cast(RPCResponse, answer)


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
