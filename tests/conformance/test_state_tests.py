"""Ethereum's GeneralStateTests (Cancun) through the node's Executor + StateDB path.

By default a representative slice runs (``SLICE``, about a minute on 2 cores): every
Cancun and Shanghai EIP folder and all Pyspecs (transient storage, MCOPY, blob opcodes
and the KZG precompile, SELFDESTRUCT of EIP-6780, ...), the VM opcode tests,
transaction validity (EIP-1559 fee rules, EIP-2930, EIP-3607, intrinsic gas, value
overflow), calls, creations (with EIP-7610 collisions), reverts, refunds, logs,
memory, storage and precompiles. Left out: folders dominated by cases that are slow
on py-evm (stBadOpcode's 4,000 variants, stStaticCall's 50,000-call loops,
stCreate2's recursive creations, stPreCompiledContracts2's Blake2f rounds,
stZeroKnowledge's pairings, vmPerformance's loops). ``-m slow`` runs the full set.
Cases listed in tests/conformance/known_failures.txt count as skipped, with reasons.

The slice and the full set live outside the repository (``../shared/fixtures``); without
them those tests are skipped with one line saying so, and the small slice committed under
tests/conformance/fixtures runs instead (``test_in_repository_slice``).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from node.statetest import (
    DEFAULT_KNOWN_FAILURES,
    case_results,
    discover,
    load_known_failures,
    run_cases,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "state_tests"
"""The slice in the repository (see its README.md): what the runner's own tests read."""
SHARED_FIXTURES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "state_tests"
)
"""The whole set, beside the repository."""


def shared_fixtures() -> Path:
    """The whole set; the test is skipped, with the reason, when it is not there."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"{SHARED_FIXTURES} not found: the full state-test set lives outside the "
                    "repository (the in-repository slice ran instead)")
    return SHARED_FIXTURES


SLICE = (
    "Cancun",
    "Shanghai",
    "VMTests/vmArithmeticTest",
    "VMTests/vmBitwiseLogicOperation",
    "VMTests/vmIOandFlowOperations",
    "VMTests/vmLogTest",
    "VMTests/vmTests",
    "Pyspecs",
    "stCallCodes",
    "stCallDelegateCodesHomestead",
    "stChainId",
    "stCodeSizeLimit",
    "stCreateTest",
    "stEIP150singleCodeGasPrices",
    "stEIP1559",
    "stEIP158Specific",
    "stEIP2930",
    "stEIP3607",
    "stExample",
    "stExtCodeHash",
    "stInitCodeTest",
    "stLogTests",
    "stMemoryTest",
    "stPreCompiledContracts",
    "stRefundTest",
    "stReturnDataTest",
    "stRevertTest",
    "stSelfBalance",
    "stShift",
    "stSStoreTest",
    "stSystemOperationsTest",
    "stTransactionTest",
    "stZeroCallsRevert",
)


def run_and_check(paths: list[Path]) -> None:
    out = io.StringIO()
    known = load_known_failures(DEFAULT_KNOWN_FAILURES)
    keys = discover(paths, "Cancun", None)
    with case_results(keys, "Cancun", "reference", 2) as results:
        summary, records = run_cases(keys, results, known, out, io.StringIO())
    report = out.getvalue()
    assert summary.failed == 0, report
    assert summary.passed > 0 and summary.passed + summary.skipped == len(records)
    assert report.splitlines()[-1] == (
        f"{summary.passed} passed, 0 failed, {summary.skipped} skipped"
    )


def test_in_repository_slice() -> None:
    run_and_check([FIXTURES])


def test_representative_slice() -> None:
    run_and_check([shared_fixtures() / folder for folder in SLICE])


@pytest.mark.slow
def test_full_set() -> None:
    run_and_check([shared_fixtures()])


def test_every_known_failure_entry_matches_a_case() -> None:
    """A stale entry would hide nothing but mislead readers: each must name real cases."""
    ids = [key.case_id for key in discover([shared_fixtures()], "Cancun", None)]
    for entry in load_known_failures(DEFAULT_KNOWN_FAILURES):
        assert any(entry.matches(case_id) for case_id in ids), entry.pattern
        assert entry.reason
