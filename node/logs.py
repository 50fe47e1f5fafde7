"""Logging for the `l2node` commands: plain text or one JSON object a line, other
libraries' chatter kept down unless asked for, and the same resource error logged at most
once per interval, with a count.

Out of file descriptors, every accept() and every open fails, and each failure logs a
traceback: 1,100 slow connections under a 1,024-file limit wrote 378 MB of "Too many open
files" in 3 minutes, and a full disk would then stop the node for good.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

QUIET_LOGGERS = (
    "web3", "urllib3", "asyncio", "multiaddr", "trio", "uvicorn", "eth", "py_ecc", "rlp",
)
"""Libraries held at WARNING unless -vv: with -v, web3's request manager alone wrote 300 of
327 lines in 20 s (every call to the in-process L1)."""

RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ENOSPC)
"""Errors about the process or the machine running out of something."""
THROTTLE_INTERVAL = 10.0
"""Seconds between two lines about the same resource error from one logger."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, msg, and the record's ``fields``
    (``log.info(..., extra={"fields": {...}})``) merged in, for machines to read."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(verbosity: int, log_format: str) -> None:
    """Root logging to stderr: INFO; -v (1) our DEBUG lines; -vv (2) everyone's."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbosity else logging.INFO)
    noisy = logging.DEBUG if verbosity >= 2 else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(noisy)
    # py-libp2p logs every failed dial at ERROR: one line per backoff step while a peer is
    # down. The node reports its peers itself; -vv shows libp2p's own lines.
    logging.getLogger("libp2p").setLevel(logging.DEBUG if verbosity >= 2 else logging.CRITICAL)
    throttle_resource_errors(root)


class ResourceErrorThrottle(logging.Filter):
    """Lets through one record per ``interval`` per (logger, resource error); the next one
    let through says how many were held back meanwhile. Other records pass untouched."""

    def __init__(
        self, interval: float = THROTTLE_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, int], tuple[float, int]] = {}
        """(logger, errno) -> (when a record last passed, records held back since)."""

    def filter(self, record: logging.LogRecord) -> bool:
        code = resource_errno(record)
        if code is None:
            return True
        key = (record.name, code)
        now = self._clock()
        with self._lock:
            passed = self._last.get(key)
            if passed is not None and now - passed[0] < self._interval:
                self._last[key] = (passed[0], passed[1] + 1)
                return False
            self._last[key] = (now, 0)
        if passed is not None and passed[1]:
            record.msg = (
                f"{record.msg} [{passed[1]} more like this in the last {now - passed[0]:.0f} s]"
            )
        return True


def resource_errno(record: logging.LogRecord) -> int | None:
    """The resource errno a record is about (its exception, its causes, or its text)."""
    exc = record.exc_info[1] if record.exc_info else None
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
    text = record.getMessage()
    return next((code for code in RESOURCE_ERRNOS if os.strerror(code) in text), None)


def throttle_resource_errors(logger: logging.Logger) -> None:
    """Install ResourceErrorThrottle on ``logger``'s handlers (the root's, for the node)."""
    throttle = ResourceErrorThrottle()
    for handler in logger.handlers:
        handler.addFilter(throttle)
