"""Logging setup: JSON lines carry a record's fields; other libraries stay at WARNING
unless -vv."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from node.logs import QUIET_LOGGERS, JsonFormatter, setup_logging


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
