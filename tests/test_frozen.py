"""direct_init: the same constructor as the dataclass's, faster, for frozen dataclasses."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from executor_gpu.types import AccountChange, ExecutedTx
from primitives.blocks import Log, Receipt
from primitives.frozen import direct_init


@dataclasses.dataclass(frozen=True)
class _Plain:
    a: int
    b: str = "b"
    c: list[int] = dataclasses.field(default_factory=list)


_Fast = direct_init(dataclasses.make_dataclass(
    "_Fast", [("a", int), ("b", str, dataclasses.field(default="b")),
              ("c", list[int], dataclasses.field(default_factory=list))], frozen=True))


def test_same_values_defaults_and_fresh_factories() -> None:
    for args, kwargs in [((1,), {}), ((1, "x"), {}), ((1,), {"c": [3]}), ((), {"a": 2, "b": "y"})]:
        assert dataclasses.asdict(_Fast(*args, **kwargs)) == dataclasses.asdict(_Plain(*args, **kwargs))
    first, second = _Fast(1), _Fast(1)
    assert first == second and first.c == [] and first.c is not second.c
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, "b", [], 4)  # type: ignore[call-arg]


def test_still_frozen_hashable_and_equal() -> None:
    receipt = Receipt(2, True, 21_000, (Log(b"\x01" * 20, (), b""),))  # type: ignore[arg-type]
    assert receipt == Receipt(2, True, 21_000, (Log(b"\x01" * 20, (), b""),))  # type: ignore[arg-type]
    assert hash(receipt) == hash(Receipt(2, True, 21_000, (Log(b"\x01" * 20, (), b""),)))  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        receipt.succeeded = False  # type: ignore[misc]
    change = AccountChange(1, 2)
    assert change.code is None and change.storage == {} and change.storage_reset is False
    executed = ExecutedTx(None, receipt, 21_000, 7, None)  # type: ignore[arg-type]
    assert executed.error is None and executed.logs == receipt.logs


def test_refuses_what_it_cannot_copy() -> None:
    @dataclasses.dataclass(frozen=True)
    class Later:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass
    class Mutable:
        a: int

    for cls in (Later, Mutable):
        with pytest.raises(TypeError):
            direct_init(cls)


def test_signature_names_the_fields() -> None:
    assert list(inspect.signature(AccountChange).parameters) == [
        f.name for f in dataclasses.fields(AccountChange)]
