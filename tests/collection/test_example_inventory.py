"""inventories/example (the README's inventory for a user's own SSH hosts) works with site.yml:
it parses into the groups the roles and site.yml use, and site.yml passes a syntax check with it,
by its path and, as the README runs it, by its collection name `lvs.dr.site`.
No host is contacted (its addresses are documentation addresses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLE = PROJECT / "inventories" / "example"


def run(tool: str, *args: str, env: dict[str, str] | None = None, cwd: Path = PROJECT) -> str:
    result = subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, env=env, cwd=cwd, check=False)
    assert result.returncode == 0, f"{tool} {args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_example_inventory_has_the_groups_site_yml_uses() -> None:
    inventory = json.loads(run("ansible-inventory", "-i", str(EXAMPLE), "--list"))
    assert inventory["directors"]["hosts"] == ["lb1"]
    assert sorted(inventory["realservers"]["hosts"]) == ["web1", "web2"]
    hostvars = inventory["_meta"]["hostvars"]
    # group_vars and host_vars are read: the roles' required variables are there.
    assert hostvars["lb1"]["director_services"][0]["address"] == "192.0.2.100" and hostvars["lb1"]["director_vip_interface"] == "eth0"
    assert all(hostvars[h]["realserver_vips"] == ["192.0.2.100"] for h in ("web1", "web2"))


def test_site_yml_syntax_checks_with_the_example_inventory() -> None:
    out = run("ansible-playbook", "--syntax-check", "playbooks/site.yml", "-i", str(EXAMPLE))
    assert "playbooks/site.yml" in out


def test_site_playbook_syntax_checks_by_its_collection_name() -> None:
    # As the README runs it: `ansible-playbook -i inventories/example lvs.dr.site`, outside a checkout
    # (no ansible.cfg), the collection found on ANSIBLE_COLLECTIONS_PATH (here the checkout's link).
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / ".collections")}
    out = run("ansible-playbook", "-i", str(EXAMPLE), "lvs.dr.site", "--syntax-check", env=env, cwd=Path("/"))
    assert "ansible_collections/lvs/dr/playbooks/site.yml" in out
