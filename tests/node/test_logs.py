"""Logging setup: JSON lines carry a record's fields; other libraries stay at WARNING
unless -vv; resource errors are logged once per interval with a count, other records pass."""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Iterator

import pytest

from node.logs import QUIET_LOGGERS, JsonFormatter, ResourceErrorThrottle, setup_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in (*QUIET_LOGGERS, "libp2p"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_a_json_line_carries_the_fields() -> None:
    record = logging.LogRecord("l2node", logging.INFO, __file__, 1, "block %(height)d",
                               ({"height": 7},), None)
    record.fields = {"height": 7, "hash": "0x01"}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "block 7" and entry["height"] == 7 and entry["hash"] == "0x01"
    assert (entry["level"], entry["logger"]) == ("info", "l2node")


@pytest.mark.parametrize(("verbosity", "ours", "theirs"), [
    (0, logging.INFO, logging.WARNING), (1, logging.DEBUG, logging.WARNING),
    (2, logging.DEBUG, logging.DEBUG),
])
def test_verbosity(verbosity: int, ours: int, theirs: int) -> None:
    setup_logging(verbosity, "text")
    assert logging.getLogger("l2node").getEffectiveLevel() == ours
    assert logging.getLogger("web3.manager.RequestManager").getEffectiveLevel() == theirs


def test_setup_logging_throttles_resource_errors() -> None:
    setup_logging(0, "text")
    (handler,) = logging.getLogger().handlers
    assert any(isinstance(f, ResourceErrorThrottle) for f in handler.filters)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(message: str, exc: BaseException | None = None, name: str = "asyncio") -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, (), exc_info)


def test_the_same_resource_error_is_logged_once_per_interval_with_a_count() -> None:
    clock = Clock()
    throttle = ResourceErrorThrottle(interval=10, clock=clock)
    emfile = OSError(errno.EMFILE, "Too many open files")
    assert throttle.filter(record("socket.accept() out of system resource", emfile))
    for _ in range(500):
        clock.now += 0.01
        assert not throttle.filter(record("socket.accept() out of system resource", emfile))
    # Another logger, another error, and ordinary records are not held back.
    assert throttle.filter(record("accept failed", emfile, name="uvicorn.error"))
    assert throttle.filter(record("open: [Errno 28] No space left on device"))
    assert throttle.filter(record("block 7 committed"))
    assert throttle.filter(record("block 8 committed"))
    # A cause counts as the error too.
    wrapped = RuntimeError("could not open table")
    wrapped.__cause__ = emfile
    assert not throttle.filter(record("leveldb", wrapped))
    clock.now = 10.5
    later = record("socket.accept() out of system resource", emfile)
    assert throttle.filter(later)
    assert "[501 more like this in the last 10 s]" in later.getMessage()
