"""The key schema: one byte per table, never shared."""

from __future__ import annotations

from node.db import schema


def test_every_table_has_its_own_prefix() -> None:
    prefixes = {
        name: value for name, value in vars(schema).items()
        if name.isupper() and isinstance(value, bytes)
    }
    assert len(prefixes) > 10
    seen: dict[bytes, str] = {}
    for name, prefix in prefixes.items():
        assert prefix not in seen, f"{name} and {seen[prefix]} share the prefix {prefix!r}"
        seen[prefix] = name
    # No prefix is the start of another (iterating one table would walk into the other).
    for name, prefix in prefixes.items():
        for other, longer in prefixes.items():
            assert other == name or not longer.startswith(prefix), (name, other)
