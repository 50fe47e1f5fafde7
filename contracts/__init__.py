"""Solidity sources of the L1 contracts and their compiled artifacts (ABI + bytecode)."""
