"""The director's VIP unit announces each VIP it binds (issue 15, item 7: director_vip_gratuitous_arp).

The role renders lvs-dr-vips.service; its ExecStart= and ExecStartPost= commands run, as
systemd runs them (argv, no shell), in a "director" network namespace whose veth faces a
"client" namespace. The client holds a stale neighbour entry for the VIP with a wrong MAC (as
after a failover, or planted by a neighbour): with the announcement it takes the director's MAC;
with director_vip_gratuitous_arp false, binding the VIP alone leaves the wrong MAC in place.
The same on the lab's containers: molecule/default/tests/test_gratuitous_arp.py.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ..integration.conftest import PROJECT, playbook_env, run

VIP, DIRECTOR, CLIENT = "10.77.0.100", "10.77.0.1", "10.77.0.250"
WRONG_MAC = "02:00:00:00:be:ef"


@pytest.fixture
def segment():
    """(director namespace, client namespace), joined by a veth pair d0 - c0 on 10.77.0.0/24."""
    tag = uuid.uuid4().hex[:8]
    director, client = f"lvs-dir-{tag}", f"lvs-cli-{tag}"
    for ns in (director, client):
        run("ip", "netns", "add", ns)
    try:
        run("ip", "-n", director, "link", "add", "d0", "type", "veth", "peer", "name", "c0", "netns", client)
        for ns, dev, address in ((director, "d0", DIRECTOR), (client, "c0", CLIENT)):
            run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
        yield director, client
    finally:
        for ns in (director, client):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def render_unit(collections_path: Path, tmp_path: Path, director_ns: str, announce: bool) -> Path:
    """lvs-dr-vips.service as the director role renders it, for VIP on d0."""
    (tmp_path / "units").mkdir()
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"ansible.builtin.include_vars": str(PROJECT / "roles" / "director" / "vars" / "Debian.yml")},
                {"ansible.builtin.include_role": {"name": "lvs.dr.director", "tasks_from": "vips_unit"}},
                {"ansible.builtin.meta": "end_play"},  # the restart handler needs systemd, not run here
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    variables = {
        "ansible_python_interpreter": sys.executable,
        "director_vips": [VIP],
        "director_vip_interface": "d0",
        "director_vip_prefix": 32,
        "director_vip_gratuitous_arp": announce,
        "director_unit_dir": str(tmp_path / "units"),
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = playbook_env(collections_path, tmp_path)
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}"]
    proc = subprocess.run([*argv, str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp_path / "units" / "lvs-dr-vips.service"


def start_unit(netns: str, unit: Path) -> None:
    """The unit's ExecStart= then ExecStartPost= commands, in the namespace ("-": failure ignored)."""
    text = unit.read_text()
    for kind in ("ExecStart", "ExecStartPost"):
        for line in re.findall(rf"^{kind}=(.*)$", text, re.M):
            ignore = line.startswith("-")
            proc = subprocess.run(["ip", "netns", "exec", netns, *shlex.split(line.lstrip("-"))], capture_output=True, text=True, check=False)
            assert ignore or proc.returncode == 0, f"{line}: {proc.stderr}"


def client_entry(client: str) -> str:
    return run("ip", "-n", client, "neigh", "show", VIP, "dev", "c0").strip()


@pytest.mark.parametrize("announce", [True, False], ids=["gratuitous_arp", "without"])
def test_binding_the_vip_corrects_a_wrong_neighbour_entry(segment, collections_path, tmp_path, announce):
    director, client = segment
    unit = render_unit(collections_path, tmp_path, director, announce)
    posts = re.findall(r"^ExecStartPost=(.*)$", unit.read_text(), re.M)
    assert posts == ([f"-/usr/bin/arping -U -c 1 -I d0 {VIP}"] if announce else []), unit.read_text()
    director_mac = run("ip", "netns", "exec", director, "cat", "/sys/class/net/d0/address").strip()
    run("ip", "-n", client, "neigh", "replace", VIP, "lladdr", WRONG_MAC, "dev", "c0", "nud", "stale")
    time.sleep(1.2)  # past the entry's locktime (1 s), so an ARP may override it
    start_unit(director, unit)
    assert f"{VIP}/32" in run("ip", "-n", director, "-4", "-o", "addr", "show", "dev", "d0")
    time.sleep(0.3)
    entry = client_entry(client)
    print(f"client's entry for {VIP} after the director bound it: {entry}")
    assert f"lladdr {director_mac if announce else WRONG_MAC} " in entry, entry
