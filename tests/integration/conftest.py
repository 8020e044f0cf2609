"""Integration tests run on a kernel with IPVS: inside the lab, `scripts/lab run -- pytest
tests/integration`. Each test works in network namespaces of its own."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    # Never skip quietly: without IPVS these tests cannot say anything, so the run fails.
    if not Path("/proc/net/ip_vs").exists() and subprocess.run(["modprobe", "-q", "ip_vs"], check=False).returncode:
        pytest.exit(
            "no IPVS in this kernel: run these tests in the lab with "
            "`scripts/lab up && scripts/lab run -- python -m pytest tests/integration`",
            returncode=1,
        )
    if os.geteuid() != 0:
        pytest.exit("the integration tests need root (network namespaces, IPVS)", returncode=1)


def run(*argv: str) -> str:
    """Run ARGV, fail the test with its output if it fails; its stdout."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{argv} exited {result.returncode}: {result.stderr or result.stdout}")
    return result.stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace, deleted afterwards."""
    name = f"lvs-test-{uuid.uuid4().hex[:8]}"
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
