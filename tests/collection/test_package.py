"""The built tarball is what Galaxy would publish: galaxy-importer (Galaxy's own import checks,
from PyPI, in a venv of its own) accepts it with no error and no warning; it holds only what a
user of the collection needs (build_ignore keeps the lab, the tests, CI and the developer docs
out); and every relative link in its Markdown files leads to a file inside it."""

from __future__ import annotations

import fcntl
import fnmatch
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IMPORTER_REQUIREMENTS = PROJECT / "requirements-importer.txt"
# Cached across runs (build/ is not part of the checkout), rebuilt when its requirements change.
IMPORTER_VENV = PROJECT / "build" / "venv-importer"
# Galaxy's checks, without what needs a container engine or Galaxy itself: ansible-test in a
# container (run_ansible_test). The tags are checked as Automation Hub does (check_required_tags).
IMPORTER_CONFIG = """\
[galaxy-importer]
run_ansible_test = False
check_required_tags = True
check_changelog = True
run_ansible_doc = True
run_ansible_lint = True
offline_ansible_lint = True
"""
# What a user needs: the content, its docs (not docs/internal, the developers'), the licence,
# the changelog, and the example inventory the README uses for the user's own hosts.
SHIPPED = {"plugins", "roles", "playbooks", "meta", "changelogs", "docs", "inventories", "README.md", "COPYING", "CHANGELOG.rst", "MANIFEST.json", "FILES.json"}


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    # From / : the checkout's ansible.cfg is for its lab, not for building.
    argv = [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(PROJECT)]
    result = subprocess.run(argv, capture_output=True, text=True, cwd="/", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = out.glob("lvs-dr-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def members(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        return [m.name for m in tar.getmembers() if m.isfile()]


def test_only_what_a_user_needs_is_shipped(members):
    assert {"README.md", "COPYING", "MANIFEST.json", "FILES.json", "meta/runtime.yml", "playbooks/site.yml", "changelogs/changelog.yaml"} <= set(members)
    assert "GNU GENERAL PUBLIC LICENSE" in (PROJECT / "COPYING").read_text()[:200]
    unwanted = [n for n in members if n.split("/")[0] not in SHIPPED or n.startswith(("docs/internal/", "changelogs/fragments/"))]
    unwanted += [n for n in members if n.startswith("inventories/") and not n.startswith("inventories/example/")]
    assert not unwanted, f"build_ignore in galaxy.yml should keep these out: {unwanted}"


def shipped_markdown() -> list[str]:
    """The checkout's Markdown files that galaxy.yml's build_ignore does not leave out (its
    patterns are matched against each file and each folder above it, as ansible-galaxy does)."""
    ignore = yaml.safe_load((PROJECT / "galaxy.yml").read_text())["build_ignore"]
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=PROJECT, capture_output=True, text=True, check=True)
    names = [n for n in listed.stdout.split() if (PROJECT / n).exists()]
    return sorted(n for n in names if not any(fnmatch.fnmatch(p, pat) for p in [*map(str, Path(n).parents), n] for pat in ignore))


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("page", shipped_markdown())
def test_relative_links_resolve_inside_the_tarball(members, page):
    assert page in members
    text = FENCE.sub("", (PROJECT / page).read_text())
    broken = []
    for match in LINK.finditer(text):
        target = (match[1] or match[2]).partition("#")[0]
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # an anchor on the same page, or an absolute URL (https:, mailto:)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
        if resolved not in members and not any(m.startswith(resolved.rstrip("/") + "/") for m in members):
            broken.append(f"{target} (-> {resolved})")
    assert not broken, f"{page} links to what the tarball does not hold: {broken}"


def importer_venv() -> Path:
    """build/venv-importer with requirements-importer.txt, made once and kept; one maker at a
    time (the host phase's two venvs may ask at once)."""
    wanted = IMPORTER_REQUIREMENTS.read_text()
    stamp = IMPORTER_VENV / "requirements.txt"
    IMPORTER_VENV.parent.mkdir(exist_ok=True)
    with open(IMPORTER_VENV.parent / "venv-importer.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != wanted:
            shutil.rmtree(IMPORTER_VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(IMPORTER_VENV)], check=True)
            pip = [str(IMPORTER_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "-r", str(IMPORTER_REQUIREMENTS)]
            result = subprocess.run(pip, capture_output=True, text=True, check=False)
            assert result.returncode == 0, f"pip could not install galaxy-importer (it comes from PyPI):\n{result.stdout}{result.stderr}"
            stamp.write_text(wanted)
    return IMPORTER_VENV


def test_galaxy_importer_accepts_the_tarball(tarball, tmp_path, capsys):
    venv = importer_venv()
    (tmp_path / "galaxy-importer.cfg").write_text(IMPORTER_CONFIG)
    env = {
        **os.environ,
        # The importer finds ansible-doc and ansible-lint on PATH: its own, not the test venv's.
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "GALAXY_IMPORTER_CONFIG": str(tmp_path / "galaxy-importer.cfg"),
    }
    start = time.monotonic()
    argv = [str(venv / "bin" / "python"), "-m", "galaxy_importer.main", str(tarball)]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    output = result.stdout + result.stderr
    with capsys.disabled():
        print(f"\n[galaxy-importer {time.monotonic() - start:5.1f}s, exit {result.returncode}]\n{output}")
    findings = [line for line in output.splitlines() if line.startswith(("ERROR", "WARNING", "Traceback"))]
    assert result.returncode == 0 and "Importer processing completed successfully" in output and not findings, output
