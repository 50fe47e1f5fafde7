"""`l2node statetest`: run Ethereum's GeneralStateTests against any executor.

Each case (test name + data/gas/value indexes under ``post[fork]``) builds its
pre-state with ``StateDB.genesis`` on a fresh ``MemoryKV``, signs the test's
transaction with its ``secretKey``, decodes it with the node's own decoder, runs
it through ``Executor.execute`` and applies the diff with ``StateDB.apply``: the
same code the node runs for a block. It then compares the post-state root and
the logs hash with the fixture, or that the transaction was rejected where
``expectException`` says so. The fixtures carry no post-state, so when a root differs
for an executor other than the reference, the report names the first account or slot
where its diff departs from the reference executor's on the same case.

Cases listed in the known-failures file (``reason: ...`` lines, each followed by
case-id patterns where ``*`` matches anything) count as skipped, with the reason
printed in the summary; any other failure fails the run.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import multiprocessing
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import rlp

from executor_gpu.api import Executor
from executor_gpu.types import AccountChange, BatchResult, BlockEnv, StateDiff
from node.db.memory import MemoryKV
from node.db.state import GenesisAccount, StateDB
from node.progress import Progress
from primitives.crypto import keccak256, sign_hash
from primitives.errors import InvalidInput, InvalidTransaction, L2NodeError
from primitives.transactions import Transaction, decode_transaction
from primitives.types import Address, Hash32

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_KNOWN_FAILURES = REPO_ROOT / "tests" / "conformance" / "known_failures.txt"
EXECUTORS = ("reference", "native-cpu", "native-cuda")
FORKS = ("Cancun",)
STATE_TEST_CHAIN_ID = 1
"""Chain id the fixtures' transactions are signed for."""


@dataclass(frozen=True)
class CaseKey:
    """One state-test case: a post entry of one test in one file."""

    file: str
    """Fixture file path."""
    label: str
    """File path shown in reports (relative to the folder given on the command line)."""
    test: str
    """Test name (top-level key of the file)."""
    index: int
    """Position of the entry in ``post[fork]``."""
    data: int
    """Index into ``transaction.data``."""
    gas: int
    """Index into ``transaction.gasLimit``."""
    value: int
    """Index into ``transaction.value``."""

    @property
    def case_id(self) -> str:
        """Name used in reports: ``FILE::TEST[dD,gG,vV]``."""
        return f"{self.label}::{self.test}[d{self.data},g{self.gas},v{self.value}]"


@dataclass(frozen=True)
class CaseResult:
    """Outcome of one case."""

    case_id: str
    """The case's ``CaseKey.case_id``."""
    passed: bool
    """True when the executor matched the fixture."""
    message: str = ""
    """Why it failed (roots, logs, rejection, first differing account or slot)."""
    fallbacks: int = 0
    """Transactions the executor handed to the reference executor."""
    fallback_reasons: Mapping[str, int] = field(default_factory=dict)
    """Those fallbacks by reason (a native executor's ``fallback_reasons``)."""
    seconds: float = 0.0
    """Wall time of the case."""
    host_runs: Mapping[str, int] = field(default_factory=dict)
    """Runs the executor's device handed to the host's CPU build, by reason (a native
    executor's ``host_runs``: native-cuda's point evaluations); not fallbacks."""


@dataclass(frozen=True)
class KnownFailure:
    """A known-failures entry: case ids it matches, and why the case cannot pass."""

    pattern: str
    """Pattern over the ``TEST[dD,gG,vV]`` part of a case id (the same whichever folder
    was given); ``*`` matches any run of characters."""
    reason: str
    """Why, with an upstream reference where there is one."""

    def matches(self, case_id: str) -> bool:
        _, _, test_part = case_id.partition("::")  # file labels contain no "::"
        regex = ".*".join(re.escape(part) for part in self.pattern.split("*"))
        return re.fullmatch(regex, test_part) is not None


@dataclass(frozen=True)
class Summary:
    """Counts of a run."""

    passed: int
    """Cases that passed (listed ones included)."""
    failed: int
    """Cases that failed and are not listed."""
    skipped: int
    """Listed cases that failed as expected."""
    fallbacks: int
    """Per-transaction fallbacks to the reference executor."""
    fallback_reasons: Mapping[str, int] = field(default_factory=dict)
    """Those fallbacks by reason."""
    not_run: Sequence[str] = ()
    """Cases an interrupt stopped before they ran."""
    host_runs: Mapping[str, int] = field(default_factory=dict)
    """Runs handed to the host's CPU build, by reason."""


def load_known_failures(path: Path) -> tuple[KnownFailure, ...]:
    """Parse a known-failures file: ``reason: TEXT`` lines, each followed by patterns."""
    entries: list[KnownFailure] = []
    reason: str | None = None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("reason:"):
            reason = line[len("reason:") :].strip()
        elif reason is None:
            raise InvalidInput(f"{path}:{number}: a pattern before any 'reason:' line")
        else:
            entries.append(KnownFailure(pattern=line, reason=reason))
    return tuple(entries)


# --- building a case ------------------------------------------------------------------


def _int(value: str) -> int:
    # Values too big for their field are written "0x:bigint 0x...".
    return int(value.removeprefix("0x:bigint "), 16)


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def block_env(env: Mapping[str, str]) -> BlockEnv:
    """The fixture's ``env`` as a BlockEnv; BLOCKHASH(n) is keccak(decimal n), as geth's runner."""
    number = _int(env["currentNumber"])
    return BlockEnv(
        number=number,
        timestamp=_int(env["currentTimestamp"]),
        coinbase=Address(_hex(env["currentCoinbase"])),
        gas_limit=_int(env["currentGasLimit"]),
        base_fee_per_gas=_int(env["currentBaseFee"]),
        chain_id=STATE_TEST_CHAIN_ID,
        prev_randao=Hash32(_int(env["currentRandom"]).to_bytes(32, "big")),
        excess_blob_gas=_int(env.get("currentExcessBlobGas", "0x00")),
        block_hashes=tuple(
            keccak256(str(n).encode()) for n in range(number - 1, max(-1, number - 257), -1)
        ),
    )


def genesis_alloc(pre: Mapping[str, Mapping[str, Any]]) -> dict[Address, GenesisAccount]:
    """The fixture's ``pre`` as a genesis allocation."""
    return {
        Address(_hex(address)): GenesisAccount(
            balance=_int(account["balance"]),
            nonce=_int(account["nonce"]),
            code=_hex(account["code"]),
            storage={_int(slot): _int(value) for slot, value in account["storage"].items()},
        )
        for address, account in pre.items()
    }


def _access_list(entries: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [_hex(entry["address"]), [_int(key).to_bytes(32, "big") for key in entry["storageKeys"]]]
        for entry in entries
    ]


def sign_fixture_transaction(fields: Mapping[str, Any], data: int, gas: int, value: int) -> bytes:
    """Encode and sign the case's transaction; the type follows the fields present.

    Out-of-range values are encoded as given, so that the node's decoder is what rejects them.
    """
    to = _hex(fields["to"]) if fields["to"] else b""
    common = [
        _int(fields["gasLimit"][gas]),
        to,
        _int(fields["value"][value]),
        _hex(fields["data"][data]),
    ]
    nonce = _int(fields["nonce"])
    access_lists = fields.get("accessLists")
    access_list = access_lists[data] if access_lists else None
    prefix: bytes
    if "blobVersionedHashes" in fields or "maxFeePerGas" in fields:
        fees = [_int(fields["maxPriorityFeePerGas"]), _int(fields["maxFeePerGas"])]
        unsigned = [STATE_TEST_CHAIN_ID, nonce, *fees, *common, _access_list(access_list or [])]
        if "blobVersionedHashes" in fields:
            prefix = b"\x03"
            unsigned += [
                _int(fields["maxFeePerBlobGas"]),
                [_hex(h) for h in fields["blobVersionedHashes"]],
            ]
        else:
            prefix = b"\x02"
    elif access_list is not None:
        prefix = b"\x01"
        unsigned = [
            STATE_TEST_CHAIN_ID,
            nonce,
            _int(fields["gasPrice"]),
            *common,
            _access_list(access_list),
        ]
    else:
        # Unprotected legacy (v = 27/28), as in ethereum/tests' txbytes; the chain id a
        # signature commits to does not change the execution.
        unsigned = [nonce, _int(fields["gasPrice"]), *common]
        y_parity, r, s = sign_hash(keccak256(rlp.encode(unsigned)), _hex(fields["secretKey"]))
        return bytes(rlp.encode([*unsigned, 27 + y_parity, r, s]))
    y_parity, r, s = sign_hash(keccak256(prefix + rlp.encode(unsigned)), _hex(fields["secretKey"]))
    return prefix + bytes(rlp.encode([*unsigned, y_parity, r, s]))


def logs_hash(result: BatchResult) -> Hash32:
    """Keccak of the RLP list of every log of the batch (the fixtures' ``logs``)."""
    return keccak256(rlp.encode([log.to_rlp() for tx in result.executed for log in tx.logs]))


# --- running cases --------------------------------------------------------------------


def make_executor(name: str) -> Executor:
    """The executor called ``name``; InvalidInput when it cannot be built here."""
    if name == "reference":
        from executor_gpu.reference import PyEvmExecutor

        return PyEvmExecutor()
    if name in ("native-cpu", "native-cuda"):
        try:
            native = importlib.import_module("executor_gpu.native")
            executor: Executor = native.NativeExecutor(device=name.removeprefix("native-"))
        except (ImportError, L2NodeError) as exc:  # not built, no compiler, no GPU...
            raise InvalidInput(
                f"executor {name!r} is not available here (executor_gpu.native): {exc}"
            ) from exc
        return executor
    raise InvalidInput(f"unknown executor {name!r}: use one of {', '.join(EXECUTORS)}")


@dataclass(frozen=True)
class _Outcome:
    """What one executor did with a case."""

    rejected: str | None
    """Rejection reason, or None when the transaction was included."""
    root: Hash32
    """Post-state root from StateDB.apply (the pre-state root when rejected)."""
    logs: Hash32
    """Logs hash."""
    diff: StateDiff
    """The executor's state diff."""
    executor_root: Hash32 | None
    """The root the executor computed itself, if any."""
    fallbacks: int
    """Fallbacks to the reference executor."""
    fallback_reasons: Mapping[str, int]
    """Those fallbacks by reason."""
    host_runs: Mapping[str, int]
    """Runs handed to the host's CPU build, by reason."""


def _execute(executor: Executor, test: Mapping[str, Any], key: CaseKey) -> _Outcome:
    kv = MemoryKV()
    state = StateDB(kv)
    batch = kv.write_batch()
    pre_root = state.genesis(genesis_alloc(test["pre"]), batch)
    batch.commit()
    no_logs = keccak256(rlp.encode([]))
    try:
        tx: Transaction = decode_transaction(
            sign_fixture_transaction(test["transaction"], key.data, key.gas, key.value)
        )
    except InvalidTransaction as exc:
        return _Outcome(f"undecodable: {exc}", pre_root, no_logs, StateDiff({}), None, 0, {}, {})
    counted: Counter[str] | None = getattr(executor, "fallback_reasons", None)  # native executors
    on_host: Counter[str] | None = getattr(executor, "host_runs", None)
    before, host_before = Counter(counted or {}), Counter(on_host or {})
    result = executor.execute(state.at(pre_root), block_env(test["env"]), [tx])
    reasons = dict(Counter(counted or {}) - before)
    host_runs = dict(Counter(on_host or {}) - host_before)
    batch = kv.write_batch()
    root = state.apply(pre_root, result.state_diff, batch)
    batch.commit()
    rejected = result.rejected[0].reason if result.rejected else None
    return _Outcome(
        rejected, root, logs_hash(result), result.state_diff, result.state_root, result.fallbacks,
        reasons, host_runs,
    )


def _first_difference(got: StateDiff, want: StateDiff) -> str:
    """The first account (or slot) where two diffs of the same pre-state disagree."""
    for address in sorted(set(got.accounts) | set(want.accounts)):
        mine, theirs = got.accounts.get(address), want.accounts.get(address)
        if mine == theirs:
            continue
        where = f"account 0x{address.hex()}"
        if mine is None or theirs is None:
            return f"{where}: {_describe(mine)} vs reference {_describe(theirs)}"
        for name in ("nonce", "balance", "code", "storage_reset"):
            ours, reference = getattr(mine, name), getattr(theirs, name)
            if ours != reference:
                return f"{where} {name}: {_short(ours)} vs reference {_short(reference)}"
        for slot in sorted(set(mine.storage) | set(theirs.storage)):
            if mine.storage.get(slot) != theirs.storage.get(slot):
                return (
                    f"{where} slot {slot:#x}: {mine.storage.get(slot)} vs "
                    f"reference {theirs.storage.get(slot)}"
                )
    return "state diffs are equal"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(change: AccountChange | None) -> str:
    return (
        "deleted/untouched" if change is None else f"nonce {change.nonce} balance {change.balance}"
    )


def run_case(executor: Executor, test: Mapping[str, Any], key: CaseKey, fork: str) -> CaseResult:
    """Run one case and judge it against the fixture."""
    started = time.perf_counter()
    try:
        problems, outcome = _judge(executor, test, key, test["post"][fork][key.index])
        fallbacks, reasons, host_runs = outcome.fallbacks, outcome.fallback_reasons, outcome.host_runs
    except Exception as exc:  # noqa: BLE001 - an executor bug fails its case, not the run
        problems, fallbacks, reasons, host_runs = [f"crashed: {type(exc).__name__}: {exc}"], 0, {}, {}
    return CaseResult(
        key.case_id,
        not problems,
        "; ".join(problems),
        fallbacks,
        reasons,
        round(time.perf_counter() - started, 4),
        host_runs,
    )


def _judge(
    executor: Executor, test: Mapping[str, Any], key: CaseKey, expected: Mapping[str, Any]
) -> tuple[list[str], _Outcome]:
    outcome = _execute(executor, test, key)
    problems: list[str] = []
    if "expectException" in expected:
        if outcome.rejected is None:
            problems.append(f"expected rejection ({expected['expectException']}), was included")
    elif outcome.rejected is not None:
        problems.append(f"rejected: {outcome.rejected}")
    want_root = Hash32(_hex(expected["hash"]))
    if outcome.root != want_root:
        problems.append(f"root: expected 0x{want_root.hex()} got 0x{outcome.root.hex()}")
        if executor.name != "reference":
            reference = _execute(make_executor("reference"), test, key)
            problems.append("first difference: " + _first_difference(outcome.diff, reference.diff))
    if outcome.logs != _hex(expected["logs"]):
        problems.append(f"logs: expected {expected['logs']} got 0x{outcome.logs.hex()}")
    if outcome.executor_root is not None and outcome.executor_root != outcome.root:
        problems.append(
            f"executor root 0x{outcome.executor_root.hex()} != StateDB root 0x{outcome.root.hex()}"
        )
    return problems, outcome


_worker_executor: Executor | None = None


def _init_worker(executor_name: str) -> None:
    global _worker_executor
    if multiprocessing.parent_process() is not None:
        # The parent handles an interrupt (it stops the pool); a worker that also got it would
        # die mid-case and the pool would start a replacement.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_executor = make_executor(executor_name)


@functools.lru_cache(maxsize=16)
def _load(path: str) -> dict[str, Any]:
    """A fixture file; cached, since its cases come one after another."""
    tests: dict[str, Any] = json.loads(Path(path).read_text())
    return tests


def _run_one(key: CaseKey, fork: str) -> CaseResult:
    assert _worker_executor is not None, "worker not initialised"
    return run_case(_worker_executor, _load(key.file)[key.test], key, fork)


def _run_task(task: tuple[CaseKey, str]) -> CaseResult:
    return _run_one(*task)


# --- discovery and reporting ----------------------------------------------------------


def _fixture_files(paths: Sequence[Path]) -> Iterator[tuple[Path, str]]:
    """Every .json file under ``paths`` with its report label, in a stable order."""
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*.json")):
                yield file, file.relative_to(path).as_posix()
        else:
            yield path, f"{path.parent.name}/{path.name}"


def discover(paths: Sequence[Path], fork: str, substring: str | None) -> list[CaseKey]:
    """Cases of ``fork`` in the files under ``paths`` whose id contains ``substring``."""
    keys: list[CaseKey] = []
    for file, label in _fixture_files(paths):
        try:
            tests = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read state test file {file}: {exc}") from exc
        for test_name, test in tests.items():
            for index, entry in enumerate(test.get("post", {}).get(fork, [])):
                indexes = entry["indexes"]
                key = CaseKey(
                    str(file),
                    label,
                    test_name,
                    index,
                    indexes["data"],
                    indexes["gas"],
                    indexes["value"],
                )
                if substring is None or substring in key.case_id:
                    keys.append(key)
    return keys


@contextmanager
def case_results(
    keys: Sequence[CaseKey], fork: str, executor: str, jobs: int
) -> Iterator[Iterator[CaseResult]]:
    """The results of ``keys`` as they come. The worker pool stops when the block ends: after
    an interrupt that can wait for a GPU kernel a worker is inside (minutes on the longest
    cases), so the report is written inside the block, before the pool stops."""
    if jobs <= 1:
        _init_worker(executor)
        yield (_run_one(key, fork) for key in keys)
        return
    # One case per task: case costs vary a thousandfold, so only a free worker taking
    # the next case keeps both busy to the end.
    # Spawned, not forked: a CUDA context (made by the fail-fast check) does not survive fork.
    context = multiprocessing.get_context("spawn")
    with context.Pool(jobs, initializer=_init_worker, initargs=(executor,)) as pool:
        yield pool.imap_unordered(_run_task, [(key, fork) for key in keys], chunksize=1)


def run_cases(
    keys: Sequence[CaseKey],
    results: Iterator[CaseResult],
    known: Sequence[KnownFailure],
    out: TextIO,
    progress: TextIO,
) -> tuple[Summary, list[dict[str, Any]]]:
    """Take the ``results`` of ``keys``, print one line per failure and the summary; the counts
    and per-case records. An interrupt stops the intake: the cases not reported are listed."""
    bar = Progress(progress, len(keys))
    passed = failed = fallbacks = 0
    reasons: Counter[str] = Counter()
    host_runs: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    records: list[dict[str, Any]] = []
    interrupted = False
    while True:
        try:
            result = next(results)
        except StopIteration:
            break
        except KeyboardInterrupt:  # Ctrl-C, or `timeout -s INT`: report what ran
            interrupted = True
            break
        fallbacks += result.fallbacks
        reasons.update(result.fallback_reasons)
        host_runs.update(result.host_runs)
        listed = next((k.reason for k in known if k.matches(result.case_id)), None)
        if result.passed:
            passed += 1
            status = "passed"
            if listed is not None:
                bar.clear()
                print(f"NOTE {result.case_id}: listed as a known failure but passes", file=out)
        elif listed is not None:
            skipped[listed] += 1
            status = "skipped"
        else:
            failed += 1
            status = "failed"
            bar.clear()
            print(f"FAIL {result.case_id}: {result.message}", file=out)
        records.append({**asdict(result), "status": status, "known_failure": listed})
        bar.update(len(records), f"{failed} failed")
    bar.clear()
    ran = {record["case_id"] for record in records}
    not_run = [key.case_id for key in keys if key.case_id not in ran]
    if interrupted:
        print(f"interrupted: {len(not_run)} of {len(keys)} cases did not run", file=out)
        for case_id in not_run[:20]:
            print(f"NOT RUN {case_id}", file=out)
    for reason, count in skipped.most_common():
        print(f"skipped {count}: {reason}", file=out)
    if host_runs:
        on_host = ", ".join(f"{reason}: {count}" for reason, count in sorted(host_runs.items()))
        print(f"host runs: {sum(host_runs.values())} ({on_host})", file=out)
    by_reason = ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()))
    print(f"fallback: {fallbacks}" + (f" ({by_reason})" if by_reason else ""), file=out)
    summary = Summary(passed, failed, sum(skipped.values()), fallbacks, dict(reasons), not_run, dict(host_runs))
    print(f"{summary.passed} passed, {summary.failed} failed, {summary.skipped} skipped", file=out)
    return summary, records


# --- command line ---------------------------------------------------------------------


def gpu_workers(executor: str, jobs: int, err: TextIO) -> int:
    """``jobs``, or as many native-cuda workers as the GPU's free memory holds if that is fewer:
    each keeps gigabytes of thread-local memory, and one that finds none crashes its cases."""
    if executor != "native-cuda" or jobs <= 1:
        return jobs
    from executor_gpu.native_launch import cuda_memory

    memory = cuda_memory()
    fit = max(1, memory.processes())
    if fit < jobs:
        print(
            f"statetest: {fit} workers, not {jobs}: a native-cuda worker keeps "
            f"{memory.local / 2**30:.1f} GiB of GPU memory for thread-local stacks and needs about "
            f"{memory.margin / 2**30:.1f} GiB more, and {memory.free / 2**30:.1f} GiB are free",
            file=err,
        )
    return min(jobs, fit)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `l2node statetest`."""
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="GeneralStateTests JSON files or folders",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="reference",
        help="executor under test (default: reference)",
    )
    parser.add_argument("--fork", choices=FORKS, default="Cancun", help="fork whose cases run")
    parser.add_argument("--filter", metavar="SUBSTRING", help="only cases whose id contains this")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write a JSON report to FILE (default: stdout; text goes to stderr)",
    )
    parser.add_argument(
        "--known-failures",
        metavar="FILE",
        default=str(DEFAULT_KNOWN_FAILURES) if DEFAULT_KNOWN_FAILURES.exists() else "",
        help="cases that cannot pass, with reasons (default: the repository's list; '' for none)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the selected cases; 0 when none failed, 1 when some did, 2 on a usage error."""
    started = time.monotonic()
    json_to_stdout = args.json == "-"
    out = sys.stderr if json_to_stdout else sys.stdout
    try:
        make_executor(args.executor)  # fail fast, before any worker starts
        known = load_known_failures(Path(args.known_failures)) if args.known_failures else ()
        keys = discover(args.paths, args.fork, args.filter)
    except InvalidInput as exc:
        print(f"statetest: {exc}", file=sys.stderr)
        return 2
    if not keys:
        print("statetest: no cases found", file=sys.stderr)
        return 2
    jobs = gpu_workers(args.executor, max(1, args.jobs), sys.stderr)
    with case_results(keys, args.fork, args.executor, jobs) as results:
        summary, records = run_cases(keys, results, known, out, sys.stderr)
        if args.json is not None:
            report = {
                "executor": args.executor,
                "fork": args.fork,
                **asdict(summary),
                "wall_seconds": round(time.monotonic() - started, 3),
                "cases": records,
            }
            text = json.dumps(report, indent=1)
            if json_to_stdout:
                print(text, flush=True)
            else:
                Path(args.json).write_text(text + "\n")
        out.flush()
    if summary.not_run:
        return 130  # as a shell reports a command stopped by SIGINT
    return 1 if summary.failed else 0
