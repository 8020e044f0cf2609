"""Fixtures for tests that drive the lab from the host (scripts/lab must be up)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
LAB = PROJECT / "scripts" / "lab"


def lab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run scripts/lab with ARGS; the result, whatever its exit code."""
    return subprocess.run(
        [str(LAB), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )


def must(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a run that must have succeeded; else fail with what it printed."""
    if result.returncode != 0:
        pytest.fail(f"{result.args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result.stdout


def in_container(name: str, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a shell script inside a lab container, through the lab's engine host."""
    return lab("run", "--", "docker", "exec", name, "sh", "-c", script, timeout=timeout)


@pytest.fixture(scope="session")
def lab_env() -> dict[str, str]:
    """The lab's environment (DOCKER_HOST); fails, never skips, when the lab is down."""
    status = lab("status")
    if status.returncode != 0:
        pytest.fail(
            "the lab is down, and these tests need its IPVS kernel and Docker engine: "
            f"run `scripts/lab up` (scripts/test does it for you).\n{status.stdout}{status.stderr}"
        )
    env = {}
    for line in must(lab("env")).splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


@pytest.fixture(scope="session")
def run_dir(lab_env: dict[str, str]) -> Path:
    """The lab's runtime directory (sockets, pid files, logs)."""
    return Path(os.environ.get("LAB_RUN", "/run/lvs-dr-lab"))
