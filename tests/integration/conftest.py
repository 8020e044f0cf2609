"""Integration tests: the collection's modules against the real kernel, as root, each test
in network namespaces of its own.

IPVS tests (tests/integration/ipvs) need a kernel with IPVS: the lab's, through
`scripts/lab run -- python -m pytest -p no:cacheprovider tests/integration`. arptables tests run here too, and
on this host (scripts/test does both).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.geteuid() != 0:
        pytest.exit("the integration tests need root (network namespaces, IPVS, arptables)", returncode=1)


def run(*argv: str) -> str:
    """Run ARGV, fail the test with its output if it fails; its stdout."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{argv} exited {result.returncode}: {result.stderr or result.stdout}")
    return result.stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with lo up, deleted afterwards."""
    name = f"lvs-test-{uuid.uuid4().hex[:8]}"
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def playbook_env(collections_path: Path, folder: Path) -> dict[str, str]:
    """The environment of an ansible-playbook run on this host from FOLDER: the collection from
    COLLECTIONS_PATH, an empty ansible.cfg of FOLDER's (not the checkout's, with its lab
    inventory), no colours, pipelining."""
    (folder / "ansible.cfg").write_text("[defaults]\n")
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_CONFIG": str(folder / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "1",
    }


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collections root where ansible_collections/lvs/dr is this checkout."""
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "lvs").mkdir(parents=True)
    (root / "ansible_collections" / "lvs" / "dr").symlink_to(PROJECT)
    return root


RunModule = Callable[..., dict[str, Any]]

# How run_module starts a module: "zygote" (the default) forks it from module_runner.py's fork
# server, which has Ansible's module_utils and pyroute2 imported already; "exec" runs
# `[ip netns exec NS] python MODULE ARGSFILE`. Either way the module file's entry point runs in
# a process of its own, in the namespace, and imports this collection afresh.
MODULE_RUNNER = os.environ.get("LVS_TEST_MODULE_RUNNER", "zygote")
if MODULE_RUNNER not in ("zygote", "exec"):
    raise pytest.UsageError(f"LVS_TEST_MODULE_RUNNER must be zygote or exec, not {MODULE_RUNNER!r}")

SpawnModule = Callable[[Path, Path, str | None], tuple[int, str, str]]


@pytest.fixture(scope="session")
def spawn_module(collections_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpawnModule]:
    """spawn_module(MODULE_FILE, ARGSFILE, NETNS or None) -> (exit code, stdout, stderr):
    one run of a module in a process of its own, the LVS_TEST_MODULE_RUNNER way."""
    env = {**os.environ, "PYTHONPATH": str(collections_path)}
    if MODULE_RUNNER == "exec":

        def execute(module: Path, argsfile: Path, netns: str | None) -> tuple[int, str, str]:
            argv = [sys.executable, str(module), str(argsfile)]
            if netns:
                argv = ["ip", "netns", "exec", netns, *argv]
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            return proc.returncode, proc.stdout, proc.stderr

        yield execute
        return

    # The zygote: a new Python (not a fork of pytest) with the same environment. pytest keeps no
    # copy of its listening socket, so if it dies, connect() fails rather than waits.
    workdir = tmp_path_factory.mktemp("zygote")
    address, log = str(workdir / "socket"), workdir / "zygote.log"
    with socket.socket(socket.AF_UNIX) as listener, log.open("w") as stderr:
        listener.bind(address)
        listener.listen(16)
        argv = [sys.executable, str(Path(__file__).with_name("module_runner.py")), str(listener.fileno())]
        zygote = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, env=env, pass_fds=[listener.fileno()])

    def fork(module: Path, argsfile: Path, netns: str | None) -> tuple[int, str, str]:
        out, err = argsfile.with_suffix(".stdout"), argsfile.with_suffix(".stderr")
        request = {"module": str(module), "argsfile": str(argsfile), "netns": netns, "cwd": os.getcwd(), "stdout": str(out), "stderr": str(err)}
        try:
            with socket.socket(socket.AF_UNIX) as conn:  # a connection per run: runs may overlap
                conn.connect(address)
                conn.sendall(json.dumps(request).encode() + b"\n")
                reply = conn.makefile("rb").readline()
        except OSError:
            reply = b""
        if not reply:
            pytest.fail(f"the module runner (tests/integration/module_runner.py) died; its stderr:\n{log.read_text()}")
        return json.loads(reply)["rc"], out.read_text(), err.read_text()

    try:
        yield fork
    finally:
        zygote.stdin.close()  # its signal to exit
        zygote.wait()


@pytest.fixture
def run_module(spawn_module: SpawnModule, tmp_path: Path) -> RunModule:
    """Run a module of this collection through its entry point, the way Ansible does:
    run_module(NAME, ARGS, netns=NS, check=False, diff=False) -> the module's result dict
    (with "rc", the exit code, added)."""

    def _run(name: str, args: dict[str, Any], *, netns: str | None = None, check: bool = False, diff: bool = False) -> dict[str, Any]:
        argsfile = tmp_path / f"args-{uuid.uuid4().hex[:8]}.json"
        argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_diff": diff}}))
        rc, stdout, stderr = spawn_module(PROJECT / "plugins" / "modules" / f"{name}.py", argsfile, netns)
        try:
            result = json.loads(stdout)
        except json.JSONDecodeError:
            pytest.fail(f"{name} printed no JSON result (exit {rc}):\n{stdout}\n{stderr}")
        result["rc"] = rc
        return result

    return _run
