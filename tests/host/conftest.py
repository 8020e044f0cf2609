"""Host tests: the collection's modules on this host's own kernel and tools, each with a
dependency taken away for real (this kernel has no IPVS; a Python without pyroute2; an old
pyroute2 from PyPI; arptables hidden), and arptables_rule fed hostile strings. They need
root (network and mount namespaces), like tests/integration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from ..integration import conftest as integration
from ..integration.conftest import PROJECT

# The fixtures shared with tests/integration.
collections_path = integration.collections_path
netns = integration.netns

HIDE_BINARIES = Path(__file__).with_name("hide_binaries.py")


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the host tests need root (network namespaces, mount namespaces, arptables)")


RunModule = Callable[..., dict[str, Any]]


@pytest.fixture
def run_module(collections_path: Path, tmp_path: Path) -> RunModule:
    """Run a module of this collection through its entry point, the way Ansible does, with
    what the test changes around it:

    run_module(NAME, ARGS, netns=NS, python=[PYTHON, FLAGS...], pythonpath=[DIRS before the
    collections root], wrapper=[ARGV the module's command line is appended to], cwd=DIR)
    -> the module's result dict, with "rc" (its exit code) and "stderr" added."""

    def _run(
        name: str,
        args: dict[str, Any],
        *,
        netns: str | None = None,
        python: Sequence[str] = (sys.executable,),
        pythonpath: Sequence[Path | str] = (),
        wrapper: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> dict[str, Any]:
        argsfile = tmp_path / f"args-{uuid.uuid4().hex[:8]}.json"
        argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": False, "_ansible_diff": False}}))
        argv = [*wrapper, *python, str(PROJECT / "plugins" / "modules" / f"{name}.py"), str(argsfile)]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(collections_path)])}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
        try:
            result = json.loads(proc.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"{name} printed no JSON result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        result["rc"] = proc.returncode
        result["stderr"] = proc.stderr
        return result

    return _run


def hiding(*prefixes: str) -> list[str]:
    """A wrapper for run_module: every executable named PREFIX* is hidden from the module
    (tests/host/hide_binaries.py), in a mount namespace of its own."""
    return ["unshare", "--mount", "--propagation", "private", "--", sys.executable, str(HIDE_BINARIES), *prefixes, "--"]


def failed(result: dict[str, Any]) -> str:
    """The message of a module run that must have failed."""
    assert result["rc"] != 0 and result.get("failed") is True, result
    return result["msg"]
