"""Resource errors are logged once per interval with a count; other records pass."""

from __future__ import annotations

import errno
import logging

from node.logs import ResourceErrorThrottle


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
