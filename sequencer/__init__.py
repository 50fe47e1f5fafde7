"""Ordering: mempool, fees, block building, consensus rules. Pure logic, no I/O."""
