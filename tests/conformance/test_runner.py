"""The `l2node statetest` runner itself: transaction building, judging, reporting, CLI."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

from executor_gpu.reference import PyEvmExecutor
from executor_gpu.types import BatchResult, BlockEnv, StateDiff
from node import statetest
from node.statetest import discover, load_known_failures, run_case
from primitives.errors import InvalidInput
from primitives.transactions import Transaction, decode_transaction
from tests.conformance.test_state_tests import FIXTURES

ADD11 = FIXTURES / "stExample" / "add11.json"


def cli(*argv: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    statetest.add_arguments(parser)
    code = statetest.run(parser.parse_args([str(arg) for arg in argv]))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def broken_copy(tmp_path: Path) -> Path:
    """add11.json with a wrong expected root."""
    tests = json.loads(ADD11.read_text())
    tests["add11"]["post"]["Cancun"][0]["hash"] = "0x" + "11" * 32
    path = tmp_path / "broken" / "add11.json"
    path.parent.mkdir()
    path.write_text(json.dumps(tests))
    return path


def test_built_transactions_match_the_fixtures_own_encoding() -> None:
    """Types 0, 1 and 2 from the JSON fields, against the fixture's txbytes."""
    seen_types = set()
    files: dict[str, dict[str, Any]] = {}
    for key in discover([FIXTURES / "stEIP2930", FIXTURES / "stEIP1559", ADD11], "Cancun", None):
        if key.file not in files:
            files[key.file] = json.loads(Path(key.file).read_text())
        test = files[key.file][key.test]
        entry = test["post"]["Cancun"][key.index]
        if "expectException" in entry:
            continue
        raw = statetest.sign_fixture_transaction(test["transaction"], key.data, key.gas, key.value)
        assert "0x" + raw.hex() == entry["txbytes"], key.case_id
        seen_types.add(decode_transaction(raw).tx_type)
    assert seen_types == {0, 1, 2}


def test_a_passing_case(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(ADD11, capsys=capsys)
    assert code == 0
    assert out.splitlines()[-2:] == ["fallback: 0", "1 passed, 0 failed, 0 skipped"]


def test_a_failing_case_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(broken_copy(tmp_path), "--known-failures", "", capsys=capsys)
    assert code == 1
    fail, *_, closing = out.splitlines()
    assert fail.startswith("FAIL broken/add11.json::add11[d0,g0,v0]: root: expected 0x1111")
    assert closing == "0 passed, 1 failed, 0 skipped"


def test_a_listed_failure_is_skipped_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = tmp_path / "known.txt"
    known.write_text("# comment\nreason: wrong on purpose\nadd11[d0,*\n")
    code, out, _ = cli(broken_copy(tmp_path), "--known-failures", known, capsys=capsys)
    assert code == 0
    assert out.splitlines() == [
        "skipped 1: wrong on purpose",
        "fallback: 0",
        "0 passed, 0 failed, 1 skipped",
    ]
    # Listed but passing: counted as passed, and reported for removal.
    code, out, _ = cli(ADD11, "--known-failures", known, capsys=capsys)
    assert code == 0 and out.startswith("NOTE stExample/add11.json::add11[d0,g0,v0]")


def test_json_report_and_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    folder = FIXTURES / "stExample"
    code, out, _ = cli(folder, "--filter", "add11.json::", "--json", report, capsys=capsys)
    assert code == 0 and out.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"
    data = json.loads(report.read_text())
    assert (data["executor"], data["passed"], data["failed"], data["skipped"]) == (
        "reference",
        1,
        0,
        0,
    )
    assert [case["case_id"] for case in data["cases"]] == ["add11.json::add11[d0,g0,v0]"]
    code, out, err = cli(ADD11, "--json", capsys=capsys)
    assert (
        json.loads(out)["passed"] == 1 and err.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"
    )


def test_jobs_run_in_worker_processes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(FIXTURES / "stChainId", ADD11, "--jobs", "2", capsys=capsys)
    assert code == 0 and out.splitlines()[-1] == "3 passed, 0 failed, 0 skipped"


def test_an_interrupt_reports_what_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or ``timeout -s INT``) mid-run: the summary and JSON cover the cases that ran
    and name the rest."""
    run_one = statetest._run_one
    calls = []

    def interrupted_second(key: statetest.CaseKey, fork: str) -> statetest.CaseResult:
        calls.append(key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_one(key, fork)

    monkeypatch.setattr(statetest, "_run_one", interrupted_second)
    report = tmp_path / "report.json"
    code, out, _ = cli(FIXTURES / "stChainId", ADD11, "--json", report, capsys=capsys)
    data = json.loads(report.read_text())
    assert code == 130
    assert "interrupted: 2 of 3 cases did not run" in out
    assert out.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"
    assert len(data["not_run"]) == 2 and len(data["cases"]) == 1
    assert data["cases"][0]["case_id"] not in data["not_run"]


def test_the_report_is_out_before_the_workers_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping a worker inside a GPU kernel waits for the kernel: the summary and the JSON
    report must not wait for that."""
    report = tmp_path / "report.json"
    seen_at_stop: list[bool] = []

    class StoppingPool:
        def __init__(self, jobs: int, initializer: object, initargs: object) -> None:
            pass

        def __enter__(self) -> Self:
            return self

        def __exit__(self, *exc: object) -> None:
            seen_at_stop.append(report.exists())

        def imap_unordered(self, task: object, tasks: list[tuple[statetest.CaseKey, str]],
                           chunksize: int) -> Iterator[statetest.CaseResult]:
            statetest._init_worker("reference")
            yield statetest._run_task(tasks[0])
            raise KeyboardInterrupt

    class Context:
        Pool = StoppingPool

    monkeypatch.setattr(multiprocessing, "get_context", lambda method: Context())
    code, out, _ = cli(FIXTURES / "stChainId", ADD11, "--jobs", "2", "--json", report, capsys=capsys)
    assert code == 130 and seen_at_stop == [True]
    assert "interrupted: 2 of 3 cases did not run" in out
    assert len(json.loads(report.read_text())["cases"]) == 1


def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(ADD11, "--filter", "no such case", capsys=capsys)[0] == 2
    assert cli(tmp_path / "missing.json", capsys=capsys)[0] == 2
    monkeypatch.setitem(sys.modules, "executor_gpu.native", None)  # as if not importable
    code, _, err = cli(ADD11, "--executor", "native-cpu", capsys=capsys)
    assert code == 2 and "executor_gpu.native" in err


def test_known_failures_file_needs_reasons(tmp_path: Path) -> None:
    bad = tmp_path / "known.txt"
    bad.write_text("add11[*\n")
    with pytest.raises(InvalidInput):
        load_known_failures(bad)


class OneWeiRicher:
    """An executor twin that leaves the sender 1 wei richer and reports a fallback."""

    name = "native-cpu"

    def execute(
        self, pre_state: object, block_env: BlockEnv, txs: Sequence[Transaction]
    ) -> BatchResult:
        result = PyEvmExecutor().execute(pre_state, block_env, txs)  # type: ignore[arg-type]
        accounts = dict(result.state_diff.accounts)
        sender = accounts[txs[0].sender]
        assert sender is not None
        accounts[txs[0].sender] = dataclasses.replace(sender, balance=sender.balance + 1)
        return dataclasses.replace(
            result, state_diff=StateDiff(accounts), state_root=None, fallbacks=1
        )


def test_a_wrong_root_names_the_first_differing_account() -> None:
    (key,) = discover([ADD11], "Cancun", None)
    test = json.loads(ADD11.read_text())[key.test]
    result = run_case(OneWeiRicher(), test, key, "Cancun")
    assert not result.passed and result.fallbacks == 1
    sender = test["transaction"]["sender"]
    assert f"first difference: account {sender} balance:" in result.message


def test_rejections_are_judged_against_expect_exception() -> None:
    path = FIXTURES / "stEIP1559" / "lowGasLimit.json"
    keys = discover([path], "Cancun", None)
    test = json.loads(path.read_text())["lowGasLimit"]
    rejected = next(k for k in keys if test["post"]["Cancun"][k.index].get("expectException")
                    == "TransactionException.INTRINSIC_GAS_TOO_LOW")
    assert run_case(PyEvmExecutor(), test, rejected, "Cancun").passed
    # The same transaction judged against an entry that expects it included.
    included = next(k for k in keys if "expectException" not in test["post"]["Cancun"][k.index])
    lenient = dataclasses.replace(rejected, index=included.index)
    verdict = run_case(PyEvmExecutor(), test, lenient, "Cancun")
    assert not verdict.passed and verdict.message.startswith("rejected: intrinsic gas too low")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    keys = discover([FIXTURES / "stChainId"], "Cancun", None)
    terminal, pipe = Terminal(), io.StringIO()
    for progress in (terminal, pipe):
        with statetest.case_results(keys, "Cancun", "reference", 1) as results:
            statetest.run_cases(keys, results, (), io.StringIO(), progress)
    assert f"\r[{'#' * 30}] {len(keys)}/{len(keys)} 0 failed" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\033[K") and pipe.getvalue() == ""


def test_native_cuda_workers_are_cut_to_what_the_gpu_memory_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from executor_gpu import native_launch

    # The H200's figures: 139.3 GiB free, 34,224 bytes of local memory x 2,048 threads x 132 SMs,
    # and the margin cuda_memory() adds: a LARGE_CAPS slot and 1 GiB.
    margin = native_launch.slot_bytes(native_launch.LARGE_CAPS) + 2**30
    assert 3 * 2**30 < margin < 4 * 2**30
    h200 = native_launch.CudaMemory(int(139.3 * 2**30), 34_224 * 2_048 * 132, margin)
    assert h200.processes() == 11  # 13 of them ran out
    monkeypatch.setattr(native_launch, "cuda_memory", lambda: h200)
    err = io.StringIO()
    assert statetest.gpu_workers("native-cuda", 16, err) == 11
    assert "11 workers, not 16" in err.getvalue() and "8.6 GiB" in err.getvalue()
    err = io.StringIO()
    assert statetest.gpu_workers("native-cuda", 4, err) == 4
    assert err.getvalue() == ""


def test_only_native_cuda_workers_are_sized_by_gpu_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from executor_gpu import native_launch

    def no_gpu() -> native_launch.CudaMemory:
        raise AssertionError("asked the GPU")

    monkeypatch.setattr(native_launch, "cuda_memory", no_gpu)
    assert statetest.gpu_workers("native-cpu", 16, io.StringIO()) == 16
    assert statetest.gpu_workers("native-cuda", 1, io.StringIO()) == 1
    full = native_launch.CudaMemory(free=2**30, local=8 * 2**30, margin=2**30)
    monkeypatch.setattr(native_launch, "cuda_memory", lambda: full)
    assert statetest.gpu_workers("native-cuda", 8, io.StringIO()) == 1  # one runs, and may crash


def test_slot_bytes_counts_every_buffer_and_arena() -> None:
    from executor_gpu.native_launch import LARGE_CAPS, SlotCaps, slot_bytes

    # LARGE_CAPS: 2 GiB of EVM memory alone; the default caps: 64 KiB of it.
    assert 2**31 < slot_bytes(LARGE_CAPS) < 3 * 2**30
    assert 2**16 < slot_bytes(SlotCaps()) < 2**18
