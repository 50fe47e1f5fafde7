"""Fixtures: the twin chain, a TestClient on create_app, and web3.py driving it."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from web3 import Web3
from web3.providers.base import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from rpc.server import create_app
from tests.rpc.twin import TwinBackend, build_chain


class TestClientProvider(JSONBaseProvider):
    """A web3.py provider that posts to the app through Starlette's TestClient."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self._client = client

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        response = self._client.post("/", content=self.encode_rpc_request(method, params))
        assert response.status_code == 200, response.text
        return self.decode_rpc_response(response.content)

    def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse]:
        response = self._client.post("/", content=self.encode_batch_rpc_request(requests))
        assert response.status_code == 200, response.text
        return cast(list[RPCResponse], json.loads(response.content))


@pytest.fixture
def chain() -> TwinBackend:
    return build_chain()


@pytest.fixture
def client(chain: TwinBackend) -> TestClient:
    return TestClient(create_app(chain))


@pytest.fixture
def w3(client: TestClient) -> Web3:
    return Web3(TestClientProvider(client))


class Rpc:
    """Raw JSON-RPC calls through the TestClient."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def raw(self, method: str, *params: Any) -> dict[str, Any]:
        """The whole reply object."""
        response = self.client.post(
            "/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        )
        assert response.status_code == 200, response.text
        reply: dict[str, Any] = response.json()
        assert reply["jsonrpc"] == "2.0" and reply["id"] == 1
        return reply

    def __call__(self, method: str, *params: Any) -> Any:
        """The result; fails the test on an error reply."""
        reply = self.raw(method, *params)
        assert "error" not in reply, reply
        return reply["result"]

    def error(self, method: str, *params: Any) -> dict[str, Any]:
        """The error object; fails the test on a result."""
        reply = self.raw(method, *params)
        assert "result" not in reply, reply
        error: dict[str, Any] = reply["error"]
        return error


@pytest.fixture
def rpc(client: TestClient) -> Rpc:
    return Rpc(client)
