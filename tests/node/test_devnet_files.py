"""`l2node devnet` files: one genesis, a config per node that `l2node run` loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import load_config, validator_key
from node.devnet import devnet_validator_key, write_devnet
from node.genesis import chain_genesis
from primitives.crypto import private_key_to_address
from primitives.errors import InvalidInput


def test_every_node_config_loads_with_the_shared_genesis_and_its_own_key(tmp_path: Path) -> None:
    nodes = write_devnet(tmp_path, 4, 30_000, 0.5, "reference")
    addresses = set()
    for node in nodes:
        config = load_config(node.config)
        genesis = chain_genesis(config)
        assert [v.address for v in genesis.validators] == sorted(
            private_key_to_address(devnet_validator_key(i)) for i in range(4)
        )
        assert validator_key(config.validator) == devnet_validator_key(node.index)
        assert config.rpc.port == 30_000 + node.index and config.rpc.host == "127.0.0.1"
        assert config.p2p.enabled and len(config.p2p.bootstrap) == 3
        assert node.p2p_addr not in config.p2p.bootstrap
        assert config.chain.block_time == 0.5
        addresses.add(node.p2p_addr)
    assert len(addresses) == 4


def test_hosts_put_each_node_on_its_address(tmp_path: Path) -> None:
    hosts = ("10.0.0.1", "10.0.0.2")
    nodes = write_devnet(tmp_path, 2, 8545, 1.0, "reference", hosts)
    config = load_config(nodes[0].config)
    assert config.rpc.host == "0.0.0.0"
    assert config.p2p.listen == "/ip4/10.0.0.1/tcp/8645"
    assert config.p2p.bootstrap[0].startswith("/ip4/10.0.0.2/tcp/8646/p2p/")
    with pytest.raises(InvalidInput):
        write_devnet(tmp_path, 3, 8545, 1.0, "reference", hosts)
