"""Peer-to-peer networking (libp2p): gossip, gate validators, sync."""
