"""The mistakes an operator makes get one clear line on stderr and exit status 2, before the
node starts anything (real `l2node` processes)."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.startup import LOCK_FILE
from tests.nodeproc import free_port, l2node_command, l2node_env


def l2node(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(l2node_command(*args), capture_output=True, text=True, timeout=120,
                          env=l2node_env(), cwd=cwd, check=False)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a refused start prints (checked: exit 2, one line, nothing else)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert done.stdout == ""
    return lines[0]


def run_with(tmp_path: Path, toml: str, *extra: str) -> str:
    config = tmp_path / "node.toml"
    config.write_text(toml)
    # A free port unless the file sets one: a mistake must be found on its own, not because
    # 8545 is taken here.
    port = () if "[rpc]" in toml else ("--rpc-port", str(free_port()))
    return one_error_line(l2node(
        "run", "--config", str(config), "--data-dir", str(tmp_path / "data"),
        *port, "--metrics-port", "0", *extra, cwd=tmp_path,
    ))


@pytest.mark.parametrize(("toml", "expected"), [
    ('[chain]\nblock_time = "fast"\n',
     '[chain] block_time = "fast" (in {config}): input should be a valid number'),
    ('[rpc]\nport = "8545"\n',
     ('[rpc] port = "8545" (in {config}): input should be a valid integer, not a string '
     '(write it without quotes)')),
    ("[chain]\nchain_id = -5\n",
     "[chain] chain_id = -5 (in {config}): input should be greater than or equal to 1"),
    ('[executor]\nkind = "gpu"\n',
     ("[executor] kind = \"gpu\" (in {config}): input should be 'reference', 'native-cpu', "
     "'native-cuda' or 'auto'")),
    ("[rpc]\nprot = 8546\n", ("[rpc] prot (in {config}): unknown key; [rpc] has evm_timeout, gas_cap, "
      "expensive_calls, busy_wait, max_body_bytes, max_batch, body_memory, header_timeout, "
      "read_timeout, idle_timeout, max_connections, host, port, cors, hosts, bind_retry, fronts")),
    ("[rpc]\nexpensive_calls = 0\n",
     "[rpc] expensive_calls = 0 (in {config}): input should be greater than or equal to 1"),
    ("[rpc]\nbind_retry = -1\n",
     "[rpc] bind_retry = -1 (in {config}): input should be greater than or equal to 0"),
    ("[consensus]\npropose = 0\n",
     "[consensus] propose = 0 (in {config}): input should be greater than 0"),
    ('[l1]\nrpc_url = "http://127.0.0.1:1"\nposter_key = "0x01"\n',
     ("[l1] poster_key: raw keys are refused for a real L1; put it in a keystore "
     "(l2node keys import) and set [l1] poster_keystore")),
])
def test_a_config_value_of_the_wrong_type_or_range(tmp_path: Path, toml: str,
                                                    expected: str) -> None:
    line = run_with(tmp_path, toml)
    assert line.endswith("ERROR l2node: " + ("" if "poster_key" in toml else "config ")
                         + expected.format(config=tmp_path / "node.toml"))
    assert not (tmp_path / "data").exists()  # nothing started


def test_a_port_out_of_range_on_the_command_line(tmp_path: Path) -> None:
    line = run_with(tmp_path, "", "--rpc-port", "70000")
    assert line.endswith("config [rpc] port = 70000 (from the command line): "
                         "input should be less than or equal to 65535")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))  # below the ephemeral range, as every test
        sock.listen()
        yield sock.getsockname()[1]


def test_an_rpc_port_in_use(tmp_path: Path, taken_port: int) -> None:
    # No waiting for the port to be freed (that is tests/e2e/test_rpc_limits.py's).
    line = run_with(tmp_path, f"[rpc]\nport = {taken_port}\nbind_retry = 0\n")
    assert line.endswith(f"JSON-RPC port {taken_port} on 127.0.0.1 is in use (another l2node or "
                         "program holds it): stop it or choose another port")


def test_a_metrics_port_in_use(tmp_path: Path, taken_port: int) -> None:
    line = one_error_line(l2node("run", "--data-dir", str(tmp_path / "data"), "--rpc-port",
                                 str(free_port()), "--metrics-port", str(taken_port),
                                 cwd=tmp_path))
    assert line.endswith(f"metrics port {taken_port} on 127.0.0.1 is in use (another l2node or "
                         "program holds it): stop it or choose another port")


def test_a_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    line = run_with(tmp_path, "", "--data-dir", str(tmp_path / "file" / "data"))
    assert line.endswith(f"cannot create data dir {tmp_path / 'file' / 'data'}: Not a directory")


def read_only_dir(tmp_path: Path) -> Path:
    """A directory this process cannot write in (root writes anywhere but in sysfs)."""
    if os.geteuid() != 0:
        path = tmp_path / "read-only"
        path.mkdir(mode=0o555)
        return path
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root without /sys: no directory root cannot write in")
    return Path("/sys/kernel")


def test_a_read_only_data_dir(tmp_path: Path) -> None:
    path = read_only_dir(tmp_path)
    line = run_with(tmp_path, "", "--data-dir", str(path))
    assert f"data dir {path} is not writable: " in line


def test_a_data_dir_another_node_holds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with (data / LOCK_FILE).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running node holds it
        line = run_with(tmp_path, "", "--data-dir", str(data))
    assert line.endswith(f"data dir {data} is in use by another l2node process: stop it, or "
                         "use another --data-dir")


def test_version_and_logging_options_after_the_subcommand(tmp_path: Path) -> None:
    done = l2node("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "l2node 0.1.0"
    line = run_with(tmp_path, "[chain]\nchain_id = -5\n", "-v", "--log-format", "json")
    assert line.startswith("{") and '"level": "error"' in line and "chain_id = -5" in line


def test_a_p2p_port_in_use(tmp_path: Path, taken_port: int) -> None:
    line = run_with(tmp_path, f"[rpc]\nport = {free_port()}\nbind_retry = 0\n"
                    f'[p2p]\nenabled = true\nlisten = "/ip4/127.0.0.1/tcp/{taken_port}"\n')
    assert line.endswith(f"p2p port {taken_port} on 127.0.0.1 is in use (another l2node or "
                         "program holds it): stop it or choose another port")
