"""A faster constructor for the frozen dataclasses a block makes by the hundred thousand.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``
(frozen: its own ``__setattr__`` refuses): 0.8 us for six fields. Receipts, their logs,
executed transactions and account changes are built per transaction on the block path, while
it holds the GIL; writing the fields straight into the instance's ``__dict__`` takes 0.3 us.
Everything else (equality, hashing, repr, immutability afterwards) stays the dataclass's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, cast

T = TypeVar("T")


def direct_init(cls: type[T]) -> type[T]:
    """Give frozen dataclass ``cls`` (no ``__post_init__``, no slots, every field an init
    field) an ``__init__`` with the same signature that fills ``__dict__`` directly."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass")
    if hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__} has __post_init__ or slots: keep the dataclass __init__")
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    arguments, body = [], []
    for field in dataclasses.fields(cast(Any, cls)):
        if not field.init or field.kw_only:
            raise TypeError(f"{cls.__name__}.{field.name}: only positional init fields")
        name = field.name
        if field.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = field.default
            arguments.append(f"{name}=_default_{name}")
            body.append(f"    fields[{name!r}] = {name}")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = field.default_factory
            arguments.append(f"{name}=_MISSING")
            body.append(f"    fields[{name!r}] = _factory_{name}() if {name} is _MISSING else {name}")
        else:
            arguments.append(name)
            body.append(f"    fields[{name!r}] = {name}")
    source = f"def __init__(self, {', '.join(arguments)}):\n    fields = self.__dict__\n" + "\n".join(body)
    exec(source, namespace)  # noqa: S102  (source built above from the field names only)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
