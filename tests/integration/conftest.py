"""Integration tests: the collection's modules against the real kernel, as root, each test
in network namespaces of its own.

IPVS tests (tests/integration/ipvs) need a kernel with IPVS: the lab's, through
`scripts/lab run -- python -m pytest tests/integration`. arptables tests run here too, and
on this host (scripts/test does both).
"""

from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collections root where ansible_collections/lvs/dr is this checkout."""
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "lvs").mkdir(parents=True)
    (root / "ansible_collections" / "lvs" / "dr").symlink_to(PROJECT)
    return root


RunModule = Callable[..., dict[str, Any]]


@pytest.fixture
def run_module(collections_path: Path, tmp_path: Path) -> RunModule:
    """Run a module of this collection through its entry point, the way Ansible does:
    run_module(NAME, ARGS, netns=NS, check=False, diff=False) -> the module's result dict
    (with "rc", the exit code, added)."""

    def _run(name: str, args: dict[str, Any], *, netns: str | None = None, check: bool = False, diff: bool = False) -> dict[str, Any]:
        argsfile = tmp_path / f"args-{uuid.uuid4().hex[:8]}.json"
        argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_diff": diff}}))
        argv = [sys.executable, str(PROJECT / "plugins" / "modules" / f"{name}.py"), str(argsfile)]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        env = {**os.environ, "PYTHONPATH": str(collections_path)}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        try:
            result = json.loads(proc.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"{name} printed no JSON result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        result["rc"] = proc.returncode
        return result

    return _run
