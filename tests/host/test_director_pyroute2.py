"""The director role's pyroute2 install (roles/director/tasks/pyroute2.yml) verifies what it
installs (issue 15, item 5): its Python runs the IPVS modules as root on every director.

Run on this host with ansible-playbook, a director_venv under the test's temporary directory,
pyroute2 from PyPI (the index source) or from a wheel pip downloads (the wheel source):
- the index install pins director_pyroute2_sha256 (pip --require-hashes, binary only): the right
  hash installs, a second run and check mode change nothing; a wrong one installs nothing and
  names the variable;
- a wheel is checked on the controller before it is copied: a name that is not
  pyroute2-VERSION-py3-none-any.whl, or a sha256 other than director_pyroute2_sha256, fails
  naming the variable (and both values), and nothing is copied or installed;
- the venv's parent is made root:root 0755, and a venv or parent that exists and is not root's,
  or is group/other-writable, is refused before anything changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..integration.conftest import playbook_env

VERSION = "0.9.7"
WHEEL = f"pyroute2-{VERSION}-py3-none-any.whl"
DEFAULTS = Path(__file__).resolve().parents[2] / "roles" / "director" / "defaults" / "main.yml"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The default version's wheel, from PyPI."""
    dest = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", "--dest", str(dest), f"pyroute2=={VERSION}"],
        check=True,
    )
    return dest / WHEEL


@pytest.fixture
def play(collections_path, tmp_path):
    """play(VARS, *options) -> (exit code, output) of the role's pyroute2.yml on localhost."""
    playbook = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"ansible.builtin.include_role": {"name": "lvs.dr.director", "tasks_from": "pyroute2"}}],
        }
    ]
    (tmp_path / "play.yml").write_text(json.dumps(playbook))
    env = playbook_env(collections_path, tmp_path)

    def _play(variables, *options):
        base = {
            "ansible_python_interpreter": sys.executable,
            "director_venv": str(tmp_path / "opt" / "lvs-dr" / "venv"),
            "director_venv_command": "/usr/bin/python3 -m venv",
            "director_wheel_dir": str(tmp_path / "wheels"),
        }
        (tmp_path / "vars.json").write_text(json.dumps({**base, **variables}))
        argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}"]
        proc = subprocess.run([*argv, *options, str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, check=False)
        return proc.returncode, proc.stdout + proc.stderr

    return _play


def recap(out):
    line = next(line for line in out.splitlines() if line.startswith("localhost") and "ok=" in line)
    return {key: int(value) for key, value in (part.split("=") for part in line.split(":", 1)[1].split())}


def installed(tmp_path) -> str | None:
    """The version of pyroute2 in the venv's own site-packages (not the system's), or None."""
    found = sorted((tmp_path / "opt" / "lvs-dr" / "venv").glob("lib/python3*/site-packages/pyroute2-*.dist-info"))
    return found[0].name.split("-")[1].removesuffix(".dist") if found else None


def test_the_default_hash_is_the_default_versions_wheel(wheel):
    defaults = DEFAULTS.read_text()
    assert f'director_pyroute2_version: "{VERSION}"' in defaults
    assert f'director_pyroute2_sha256: "{hashlib.sha256(wheel.read_bytes()).hexdigest()}"' in defaults


def test_index_install_is_pinned_by_hash_and_idempotent(play, tmp_path):
    rc, out = play({"director_pyroute2_source": "index"})
    assert rc == 0, out
    assert installed(tmp_path) == VERSION
    parent = tmp_path / "opt" / "lvs-dr"
    assert (parent.stat().st_uid, parent.stat().st_gid, oct(parent.stat().st_mode & 0o7777)) == (0, 0, "0o755")
    rc, out = play({"director_pyroute2_source": "index"})
    assert rc == 0 and recap(out)["changed"] == 0, out
    rc, out = play({"director_pyroute2_source": "index"}, "--check")
    assert rc == 0 and recap(out)["changed"] == 0, out


def test_index_install_with_a_wrong_hash_installs_nothing(play, tmp_path):
    rc, out = play({"director_pyroute2_source": "index", "director_pyroute2_sha256": "0" * 64})
    assert rc != 0, out
    assert "director_pyroute2_sha256" in out and "0" * 64 in out, out
    assert installed(tmp_path) is None


def test_a_wheel_with_the_right_name_and_hash_installs(play, tmp_path, wheel):
    rc, out = play({"director_pyroute2_source": "wheel", "director_pyroute2_wheel": str(wheel)})
    assert rc == 0, out
    assert installed(tmp_path) == VERSION
    rc, out = play({"director_pyroute2_source": "wheel", "director_pyroute2_wheel": str(wheel)})
    assert rc == 0 and recap(out)["changed"] == 0, out


def test_a_tampered_wheel_is_refused_before_it_is_copied(play, tmp_path, wheel):
    tampered = tmp_path / "controller" / WHEEL
    tampered.parent.mkdir()
    tampered.write_bytes(wheel.read_bytes() + b"\0")
    actual = hashlib.sha256(tampered.read_bytes()).hexdigest()
    rc, out = play({"director_pyroute2_source": "wheel", "director_pyroute2_wheel": str(tampered)})
    assert rc != 0, out
    assert "director_pyroute2_sha256" in out and actual in out and hashlib.sha256(wheel.read_bytes()).hexdigest() in out, out
    assert not (tmp_path / "wheels").exists() or not list((tmp_path / "wheels").iterdir())
    assert installed(tmp_path) is None


@pytest.mark.parametrize("name", ["pyroute2-0.9.7-cp311-cp311-linux_x86_64.whl", "pyroute2.whl", "evil-0.9.7-py3-none-any.whl"])
def test_a_wheel_with_another_name_is_refused(play, tmp_path, wheel, name):
    renamed = tmp_path / "controller" / name
    renamed.parent.mkdir()
    shutil.copy(wheel, renamed)
    rc, out = play({"director_pyroute2_source": "wheel", "director_pyroute2_wheel": str(renamed)})
    assert rc != 0, out
    assert "director_pyroute2_wheel" in out and name in out, out
    assert not (tmp_path / "wheels").exists() or not list((tmp_path / "wheels").iterdir())
    assert installed(tmp_path) is None


@pytest.mark.parametrize("where", ["parent", "venv"])
@pytest.mark.parametrize("how", ["not root's", "group-writable", "other-writable"])
def test_a_venv_that_others_could_change_is_refused(play, tmp_path, where, how):
    parent = tmp_path / "opt" / "lvs-dr"
    target = parent if where == "parent" else parent / "venv"
    target.mkdir(parents=True, mode=0o755)
    target.chmod(0o755)
    if how == "not root's":
        os.chown(target, 65534, 65534)
    else:
        target.chmod(0o775 if how == "group-writable" else 0o757)
    before = (target.stat().st_uid, target.stat().st_mode)
    rc, out = play({"director_pyroute2_source": "index"})
    assert rc != 0, out
    assert "director_venv" in out and str(target) in out, out
    assert (target.stat().st_uid, target.stat().st_mode) == before
    assert installed(tmp_path) is None
