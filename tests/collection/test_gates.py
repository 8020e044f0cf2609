"""Ansible's own quality gates, one test each, run with the real tools from requirements-dev.txt
(STYLE.md, Lint): ruff check, ruff format --check, yamllint, ansible-lint (profile production),
ansible-test sanity (no ignore entries) and antsibull-changelog lint. Each passes only when
its tool exits 0, and fails with the tool's output. A missing tool is a failure, not a skip."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ansible_test  # ansible-core's: where ansible-test keeps its pip version
import pytest

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INSTALL = "install the gates' tools with `scripts/venv` (pip install -r requirements-dev.txt)"


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: {INSTALL}")
    return str(path)


def gate(capsys: pytest.CaptureFixture[str], argv: list[str], cwd: Path = PROJECT) -> None:
    """Run ARGV; fail with its output unless it exits 0. Its duration goes to the terminal:
    the gates have to fit CI's time budget."""
    start = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    with capsys.disabled():
        print(f"\n[gate {took:6.1f}s] {' '.join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))} (exit {result.returncode})")
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def test_ruff_check(capsys):
    gate(capsys, [tool("ruff"), "check", "--no-cache", "."])


def test_ruff_format(capsys):
    gate(capsys, [tool("ruff"), "format", "--check", "--no-cache", "."])


def test_yamllint(capsys):
    gate(capsys, [tool("yamllint"), "--strict", "."])


def test_ansible_lint(capsys):
    # Offline: ansible-lint would otherwise ask Galaxy about collections, and Galaxy is not
    # reachable from our machines. The collections it needs come with requirements-dev.txt.
    gate(capsys, [tool("ansible-lint"), "--offline", "--nocolor"])


def test_antsibull_changelog_lint(capsys):
    gate(capsys, [tool("antsibull-changelog"), "lint"])


def sanity_tree(root: Path) -> Path:
    """The checkout's files (tracked, and new ones git does not ignore) under
    ROOT/ansible_collections/lvs/dr, where ansible-test needs a collection to be."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=PROJECT, capture_output=True, check=True
    ).stdout.decode()
    tree = root / "ansible_collections" / "lvs" / "dr"
    for name in filter(None, listed.split("\0")):
        source = PROJECT / name
        if not source.is_symlink() and not source.exists():
            continue  # deleted in the work tree, not yet in the index
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, tree / name, follow_symlinks=False)
    return tree


GET_PIP = Path(__file__).with_name("get_pip.py")


def offline_pip_bootstrap() -> None:
    """Put get_pip.py where ansible-test looks for its pip bootstrap script before it downloads
    one from its own file server, which is not reachable from our machines (PyPI is)."""
    requirements = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    version = re.search(r"pip='([0-9.]+)'", requirements.read_text())
    assert version, f"ansible-test no longer names its pip version in {requirements}: update offline_pip_bootstrap()"
    cached = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{version[1].replace('.', '_')}.py"
    # A real get-pip.py that got there some other way stays; ours is refreshed.
    if not cached.exists() or cached.read_text().startswith(GET_PIP.read_text().partition("\n")[0]):
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(GET_PIP, cached)


def test_ansible_test_sanity(capsys, tmp_path):
    ansible_test = tool("ansible-test")
    # Clean means clean: no finding waved through by tests/sanity/ignore-*.txt (STYLE.md).
    ignored = [f"{p.name}: {line}" for p in PROJECT.glob("tests/sanity/ignore-*.txt") for line in p.read_text().splitlines() if line.strip()]
    assert not ignored, f"tests/sanity/ignore-*.txt must stay empty: fix these instead:\n{chr(10).join(ignored)}"
    offline_pip_bootstrap()
    tree = sanity_tree(tmp_path)
    gate(capsys, [ansible_test, "sanity", "--venv", "--python", f"{sys.version_info[0]}.{sys.version_info[1]}", "--requirements", "--color", "no"], cwd=tree)
