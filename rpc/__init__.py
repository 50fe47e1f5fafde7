"""JSON-RPC server (FastAPI): eth_*, net_*, web3_*, l2_*."""
