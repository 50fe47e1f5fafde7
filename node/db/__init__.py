"""Storage: key schema, KV stores (LevelDB and in-memory), state and chain data."""
