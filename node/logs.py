"""Logging for the `l2node` commands: plain text or one JSON object a line, and other
libraries' chatter kept down unless asked for."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

QUIET_LOGGERS = (
    "web3", "urllib3", "asyncio", "multiaddr", "trio", "uvicorn", "eth", "py_ecc", "rlp",
)
"""Libraries held at WARNING unless -vv: with -v, web3's request manager alone wrote 300 of
327 lines in 20 s (every call to the in-process L1)."""


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
