"""The embedded L1 in a process of its own (what `l2node run` starts by default)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from l1.embedded import start_embedded_l1


def test_ctrl_c_leaves_the_node_to_end_its_l1() -> None:
    """Ctrl-C in a terminal interrupts every process of the node's group: the L1 process goes
    on answering (the node still posts while it stops, then ends it), and ends with stop."""
    l1 = start_embedded_l1(own_process=True)
    try:
        (child,) = [p for p in multiprocessing.active_children() if p.name == "l2node-l1"]
        number = l1.w3.eth.block_number
        assert child.pid is not None
        os.kill(child.pid, signal.SIGINT)
        time.sleep(0.5)
        assert child.is_alive()
        assert l1.w3.eth.block_number == number
    finally:
        l1.stop()
    child.join(5)
    assert not child.is_alive()
