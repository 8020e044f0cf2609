"""The realserver role's ARP rules (roles/realserver/tasks/arptables_rules.yml) run by
ansible-playbook in a network namespace of the test's own, against each backend: after a change
of the real server's address and the VIPs, the chains hold exactly the declared rules plus the
rules the role did not write, and a second run changes nothing (the rules file included).

The package install and the boot unit (tasks/arptables.yml) are left out: they change the host.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import playbook_env
from .test_arptables_rule import BACKENDS, cli, rule_lines, rule_set

VIP, VIP2 = "172.25.8.100", "172.25.8.101"
RIP2, RIP3 = "172.25.8.2", "172.25.8.3"
FOREIGN = ["-A INPUT -j DROP -d 198.51.100.50", "-A OUTPUT -j mangle -s 198.51.100.50 --mangle-ip-s 198.51.100.9"]
PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: lvs.dr.realserver
        tasks_from: arptables_rules
"""


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def play(netns, backend, collections_path, tmp_path):
    """play(VIPS, ADDRESS, *ansible-playbook options) -> (exit code, output) of the role's ARP tasks in the namespace."""
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = playbook_env(collections_path, tmp_path)

    def _play(vips, address, *options):
        variables = {
            "realserver_vips": vips,
            "realserver_address": address,
            "realserver_arptables_backend": backend,
            "realserver_arptables_record": str(tmp_path / "state" / "record"),
            "realserver_os_arptables_rules": str(tmp_path / "arptables.rules"),
            "ansible_python_interpreter": sys.executable,
        }
        (tmp_path / "vars.json").write_text(json.dumps(variables))
        argv = ["ip", "netns", "exec", netns, str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local"]
        proc = subprocess.run(
            [*argv, "-e", f"@{tmp_path / 'vars.json'}", *options, str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, check=False
        )
        return proc.returncode, proc.stdout + proc.stderr

    return _play


def recap(output):
    """The PLAY RECAP's counts for localhost."""
    line = next(line for line in output.splitlines() if line.startswith("localhost") and "ok=" in line)
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}


def test_a_new_address_and_a_removed_vip_leave_exactly_the_declared_rules(play, netns, backend, tmp_path):
    for line in FOREIGN:
        cli(netns, backend, *line.split())
    rc, out = play([VIP, VIP2], RIP2)
    assert rc == 0, out
    assert rule_lines(netns, backend) == [
        FOREIGN[0],
        f"-A INPUT -j DROP -d {VIP}",
        f"-A INPUT -j DROP -d {VIP2}",
        FOREIGN[1],
        f"-A OUTPUT -j mangle -s {VIP} --mangle-ip-s {RIP2}",
        f"-A OUTPUT -j mangle -s {VIP2} --mangle-ip-s {RIP2}",
    ]
    before = rule_set(netns, backend)
    rc, out = play([VIP], RIP3, "--check", "--diff")
    assert rc == 0 and recap(out)["changed"] > 0, out
    assert f"-A OUTPUT -j mangle -s {VIP} --mangle-ip-s {RIP3}" in out  # the diff of the mangle rule it would add
    assert rule_set(netns, backend) == before
    rc, out = play([VIP], RIP3)
    assert rc == 0, out
    expected = [FOREIGN[0], f"-A INPUT -j DROP -d {VIP}", FOREIGN[1], f"-A OUTPUT -j mangle -s {VIP} --mangle-ip-s {RIP3}"]
    assert rule_lines(netns, backend) == expected
    assert (tmp_path / "arptables.rules").read_text() == rule_set(netns, backend)
    rc, out = play([VIP], RIP3)
    assert rc == 0 and recap(out)["changed"] == 0, out
    assert rule_lines(netns, backend) == expected


@pytest.mark.parametrize("backend", BACKENDS[:1])  # the check comes before any arptables call
def test_a_bad_record_fails_naming_it_and_changes_nothing(play, netns, backend, tmp_path):
    cli(netns, backend, "-A", "INPUT", "-d", VIP, "-j", "DROP")
    before = rule_set(netns, backend)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "record").write_text("address 172.25.8.2\nvip 172.25.8.100; reboot\n")
    rc, out = play([VIP2], RIP2)
    assert rc != 0
    assert f"{tmp_path / 'state' / 'record'} is not a record of this role's ARP rules" in out, out
    assert rule_set(netns, backend) == before
    assert not (tmp_path / "arptables.rules").exists()
