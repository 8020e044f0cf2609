"""The collection builds, installs, and every module's and role's documentation renders, as a
user would meet them: `ansible-galaxy collection build/install`, `ansible-doc lvs.dr.<name>`
and `ansible-doc -t role lvs.dr.<role>` (from the role's meta/argument_specs.yml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (PROJECT / "plugins" / "modules").glob("*.py"))
FILTERS = sorted(p.stem for p in (PROJECT / "plugins" / "filter").glob("*.py"))
ROLES = sorted(p.name for p in (PROJECT / "roles").iterdir() if p.is_dir())


def ansible(tool: str, *args: str, env: dict[str, str] | None = None) -> str:
    # Outside the checkout: its ansible.cfg points lvs.dr at the checkout itself, and
    # ansible-galaxy would then find lvs.dr "already installed" and install nothing.
    result = subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, env=env, cwd="/", check=False)
    assert result.returncode == 0, f"{tool} {args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    build = tmp_path_factory.mktemp("build")
    ansible("ansible-galaxy", "collection", "build", "--output-path", str(build), str(PROJECT))
    [tarball] = build.glob("lvs-dr-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    # build_ignore keeps the lab, the tests and CI out of what users install.
    kept_out = ("tests", "bench", "scripts", ".ci", ".config", "molecule", "inventories", ".venv", "build", ".collections", ".ruff_cache")
    assert not [n for n in names if n.split("/")[0] in kept_out], names
    collections = tmp_path_factory.mktemp("collections")
    ansible("ansible-galaxy", "collection", "install", "--collections-path", str(collections), str(tarball))
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)}


def test_every_module_is_installed(installed):
    assert MODULES == ["arptables_rule", "ipvs_info", "ipvs_real", "ipvs_service", "ipvs_table"]
    listed = json.loads(ansible("ansible-doc", "--list", "--json", "lvs.dr", env=installed))
    assert sorted(listed) == [f"lvs.dr.{m}" for m in MODULES]


@pytest.mark.parametrize("module", MODULES)
def test_module_doc_renders(installed, module):
    doc = json.loads(ansible("ansible-doc", "--json", f"lvs.dr.{module}", env=installed))[f"lvs.dr.{module}"]
    assert doc["doc"]["short_description"] and doc["examples"] and (doc["return"] or module == "arptables_rule")
    assert f"lvs.dr.{module}" in doc["examples"]
    text = ansible("ansible-doc", f"lvs.dr.{module}", env=installed)
    assert "EXAMPLES" in text


@pytest.mark.parametrize("name", FILTERS)
def test_filter_doc_renders(installed, name):
    doc = json.loads(ansible("ansible-doc", "-t", "filter", "--json", f"lvs.dr.{name}", env=installed))[f"lvs.dr.{name}"]
    assert doc["doc"]["short_description"] and f"lvs.dr.{name}" in doc["examples"] and doc["return"]


def test_every_role_is_installed(installed):
    assert ROLES == ["director", "realserver"]
    listed = json.loads(ansible("ansible-doc", "-t", "role", "--list", "--json", "lvs.dr", env=installed))
    assert sorted(listed) == [f"lvs.dr.{r}" for r in ROLES]


def undocumented(options: dict, path: str = "") -> list[str]:
    """The options (nested ones too) that lack what STYLE.md asks of a role's argument spec:
    a description, a type, and for lists the type of their elements."""
    missing = []
    for name, option in options.items():
        wanted = ["description", "type"] + (["elements"] if option.get("type") == "list" else [])
        missing += [f"{path}{name}: no {key}" for key in wanted if not option.get(key)]
        missing += undocumented(option.get("options") or {}, f"{path}{name}.")
    return missing


@pytest.mark.parametrize("role", ROLES)
def test_role_doc_renders(installed, role):
    doc = json.loads(ansible("ansible-doc", "-t", "role", "--json", f"lvs.dr.{role}", env=installed))[f"lvs.dr.{role}"]
    main = doc["entry_points"]["main"]
    assert main["short_description"] and main["description"] and main["options"]
    assert not undocumented(main["options"])
    assert all(name.startswith(f"{role}_") for name in main["options"]), "every variable prefixed with the role name (STYLE.md)"
    text = ansible("ansible-doc", "-t", "role", f"lvs.dr.{role}", env={**installed, "ANSIBLE_NOCOLOR": "1"})
    assert "ENTRY POINT: *main*" in text
