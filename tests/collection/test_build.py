"""The collection builds, installs, and every module's and role's documentation renders, as a
user would meet them: `ansible-galaxy collection build/install`, `ansible-doc lvs.dr.<name>`
and `ansible-doc -t role lvs.dr.<role>` (from the role's meta/argument_specs.yml). With
ansible-core alone: no other collection is visible, not even the dev venv's `ansible` package,
so site.yml's syntax check and every role task file fail on a module of an undeclared
collection. scripts/test runs this in the 2.16 venv as well as in the 2.19 one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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
    # What the tarball holds: test_package.py.
    collections = tmp_path_factory.mktemp("collections")
    ansible("ansible-galaxy", "collection", "install", "--collections-path", str(collections), str(tarball))
    # ansible-core alone: without this, the collections installed in the venv's site-packages
    # (the dev venv's `ansible` package) would be found too.
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false"}


def test_no_other_collection_is_visible(installed):
    listed = json.loads(ansible("ansible-galaxy", "collection", "list", "--format", "json", env=installed))
    # ansible._protomatter (2.19) is ansible-core's own.
    assert [name for path in listed.values() for name in path if not name.startswith("ansible.")] == ["lvs.dr"], listed


# Until inventories/example (the README's, for the user's own hosts) ships, the groups site.yml needs.
STAND_IN_INVENTORY = """\
all:
  children:
    directors:
      hosts:
        director.example.com:
    realservers:
      hosts:
        rs1.example.com:
        rs2.example.com:
"""


def test_site_yml_passes_the_syntax_check(installed, tmp_path):
    example = Path(installed["ANSIBLE_COLLECTIONS_PATH"]) / "ansible_collections" / "lvs" / "dr" / "inventories" / "example"
    inventory = example if example.is_dir() else tmp_path / "hosts.yml"
    if inventory != example:
        inventory.write_text(STAND_IN_INVENTORY)
    out = ansible("ansible-playbook", "--syntax-check", "-i", str(inventory), "lvs.dr.site", env=installed)
    assert "ansible_collections/lvs/dr/playbooks/site.yml" in out, out


def test_every_role_task_file_resolves_its_modules(installed, tmp_path):
    """Each role task file imported statically, so the syntax check resolves every module it
    calls (site.yml's include_tasks are dynamic: a syntax check does not read them)."""
    root = Path(installed["ANSIBLE_COLLECTIONS_PATH"]) / "ansible_collections" / "lvs" / "dr" / "roles"
    imports = [{"ansible.builtin.import_role": {"name": f"lvs.dr.{f.parts[-3]}", "tasks_from": f.stem}} for f in sorted(root.glob("*/tasks/*.yml"))]
    assert len(imports) >= 10 and any(i["ansible.builtin.import_role"]["tasks_from"] == "sysctl_lines" for i in imports), imports
    (tmp_path / "every-task-file.yml").write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": imports}]))
    ansible("ansible-playbook", "--syntax-check", "-i", "localhost,", str(tmp_path / "every-task-file.yml"), env=installed)


def test_every_module_is_installed(installed):
    assert MODULES == ["arptables_rule", "ipvs_info", "ipvs_real", "ipvs_service", "ipvs_sync_daemon", "ipvs_table"]
    listed = json.loads(ansible("ansible-doc", "--list", "--json", "lvs.dr", env=installed))
    assert sorted(listed) == [f"lvs.dr.{m}" for m in MODULES]


@pytest.mark.parametrize("module", MODULES)
def test_module_doc_renders(installed, module):
    doc = json.loads(ansible("ansible-doc", "--json", f"lvs.dr.{module}", env=installed))[f"lvs.dr.{module}"]
    assert doc["doc"]["short_description"] and doc["examples"] and (doc["return"] or module == "arptables_rule")
    assert f"lvs.dr.{module}" in doc["examples"]
    text = ansible("ansible-doc", f"lvs.dr.{module}", env=installed)
    assert "EXAMPLES" in text and "lvs.dr developers (@lvs-dr)" in text and "(!UNKNOWN)" not in text, text


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
    assert re.search(r"ENTRY POINT: \*?main\*? ", text), text  # *main* since 2.17
