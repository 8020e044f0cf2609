"""The realserver role fails closed (issue 15, item 4), on this host's kernel and tools:

- `realserver_arp_method: sysctl` with the VIPs on the interface that faces the clients is
  refused by the role's variable checks (arp_ignore=1 answers ARP for an address of the
  interface the request came in on), before anything changes;
- the VIP unit the role renders runs a check before it binds a VIP, and that check, run as the
  unit runs it (its ExecStartPre= argv) in a network namespace, refuses the kernel state
  without suppression: ARP sysctls at 0, or the arptables DROP rules missing (both backends);
- with arptables the VIP unit requires the restore unit, which asserts (not merely checks) that
  the rules file is not empty, so a failed restore fails the VIP unit; systemd-analyze verifies
  both units.

That a reboot with the suppression broken leaves the VIP unbound, under systemd, is
molecule/default/tests/test_without_suppression_at_boot.py.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ..integration.arptables.test_arptables_rule import BACKENDS
from ..integration.conftest import playbook_env, run

VIP, VIP2, RIP = "172.25.8.100", "172.25.8.101", "172.25.8.2"
IFACE = "rs0"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


@pytest.fixture
def iface_netns(netns):
    """The namespace with a veth interface IFACE (up, 172.25.8.2/24): the one that faces the clients."""
    run("ip", "-n", netns, "link", "add", IFACE, "type", "veth", "peer", "name", f"{IFACE}p")
    run("ip", "-n", netns, "addr", "add", f"{RIP}/24", "dev", IFACE)
    run("ip", "-n", netns, "link", "set", IFACE, "up")
    return netns


@pytest.fixture
def play(iface_netns, collections_path, tmp_path):
    """play(TASKS, VARS, *options) -> (exit code, output) of a play on localhost in the namespace
    whose tasks are TASKS (a list of dicts), with VARS as extra variables."""
    env = playbook_env(collections_path, tmp_path)

    def _play(tasks, variables, *options, gather_facts=False):
        (tmp_path / "play.yml").write_text(json.dumps([{"hosts": "localhost", "gather_facts": gather_facts, "tasks": tasks}]))
        (tmp_path / "vars.json").write_text(json.dumps({"ansible_python_interpreter": sys.executable, **variables}))
        argv = ["ip", "netns", "exec", iface_netns, ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}"]
        proc = subprocess.run([*argv, *options, str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, check=False)
        return proc.returncode, proc.stdout + proc.stderr

    return _play


def role_tasks(*task_files):
    """The role's task files, then the end of the play: the handler that restarts the unit would
    need systemd, which this host does not run."""
    includes = [{"ansible.builtin.include_role": {"name": "lvs.dr.realserver", "tasks_from": name}} for name in task_files]
    return [*includes, {"ansible.builtin.meta": "end_play"}]


def unit_vars(tmp_path, method, backend="legacy"):
    """The variables the role's unit tasks take, the units and the check put under tmp_path."""
    (tmp_path / "units").mkdir(exist_ok=True)
    return {
        "realserver_vips": [VIP, VIP2],
        "realserver_vip_interface": "lo",
        "realserver_vip_prefix": 32,
        "realserver_address": RIP,
        "realserver_interface": IFACE,
        "realserver_arp_method": method,
        "realserver_arptables_backend": backend,
        "realserver_arptables_record": str(tmp_path / "state" / "record"),
        "realserver_os_arptables_rules": str(tmp_path / "arptables.rules"),
        "realserver_os_arptables_service": "lvs-dr-arptables",
        "realserver_unit_dir": str(tmp_path / "units"),
        "realserver_check_arp": str(tmp_path / "lvs-dr-check-arp"),
    }


def directives(unit: Path, name: str) -> list[str]:
    return re.findall(rf"^{name}=(.*)$", unit.read_text(), re.M)


def run_checks(netns, unit: Path):
    """Run the unit's ExecStartPre= commands in the namespace as systemd would (argv, no shell):
    (passed, the output of the first that failed)."""
    checks = directives(unit, "ExecStartPre")
    assert checks, f"{unit.name} runs no check before it binds the VIPs:\n{unit.read_text()}"
    for check in checks:
        proc = subprocess.run(["ip", "netns", "exec", netns, *shlex.split(check)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return False, proc.stderr
    return True, ""


def sysctl(netns, **values):
    for name, value in values.items():
        dev, key = name.split("__")
        run("ip", "netns", "exec", netns, "sysctl", "-qw", f"net.ipv4.conf.{dev}.{key}={value}")


def test_sysctl_with_the_vips_on_the_client_interface_is_refused(play, iface_netns):
    variables = {
        "realserver_vips": [VIP],
        "realserver_vip_interface": IFACE,
        "realserver_vip_prefix": 24,
        "realserver_address": RIP,
        "realserver_interface": IFACE,
        "realserver_arp_method": "sysctl",
        "realserver_web_server": False,
    }
    before = run("ip", "netns", "exec", iface_netns, "sysctl", "net.ipv4.conf.all", f"net.ipv4.conf.{IFACE}")
    # Check mode: were the refusal missing, nothing on this host would change either.
    rc, out = play([{"ansible.builtin.include_role": {"name": "lvs.dr.realserver"}}], variables, "--check", gather_facts=True)
    assert rc != 0, out
    assert "realserver_arp_method is sysctl and realserver_vip_interface is realserver_interface (rs0)" in out, out
    assert "Set realserver_arp_method: arptables, or bind the VIPs on lo (realserver_vip_interface: lo" in out, out
    assert "failed: [localhost] (item=with sysctl, the VIPs are not on realserver_interface)" in out, out
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", out), out
    assert run("ip", "netns", "exec", iface_netns, "sysctl", "net.ipv4.conf.all", f"net.ipv4.conf.{IFACE}") == before


def test_the_vip_unit_refuses_to_bind_without_the_arp_sysctls(play, iface_netns, tmp_path):
    rc, out = play(role_tasks("vips_unit"), unit_vars(tmp_path, "sysctl"))
    assert rc == 0, out
    unit = tmp_path / "units" / "lvs-dr-vips.service"
    assert "systemd-sysctl.service" in directives(unit, "After")[0]
    assert oct((tmp_path / "lvs-dr-check-arp").stat().st_mode & 0o777) == "0o755"

    sysctl(iface_netns, all__arp_ignore=0, all__arp_announce=0, rs0__arp_ignore=0, rs0__arp_announce=0)
    passed, why = run_checks(iface_netns, unit)
    assert not passed and "arp_ignore is 0 on rs0" in why, why
    # What the role sets: 1 and 2 on all and on the interface.
    sysctl(iface_netns, all__arp_ignore=1, all__arp_announce=2, rs0__arp_ignore=1, rs0__arp_announce=2)
    assert run_checks(iface_netns, unit) == (True, "")
    # The kernel takes the larger of all and the interface: the interface's alone suffices.
    sysctl(iface_netns, all__arp_ignore=0, all__arp_announce=0)
    assert run_checks(iface_netns, unit) == (True, "")
    sysctl(iface_netns, rs0__arp_announce=1)
    passed, why = run_checks(iface_netns, unit)
    assert not passed and "arp_announce is 1 on rs0" in why, why
    sysctl(iface_netns, rs0__arp_announce=2, rs0__arp_ignore=3)  # 3 answers for a VIP of global scope
    passed, why = run_checks(iface_netns, unit)
    assert not passed and "arp_ignore is 3 on rs0" in why, why


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_vip_unit_refuses_to_bind_without_the_arptables_rules(play, iface_netns, tmp_path, backend):
    rc, out = play(role_tasks("arptables_rules", "vips_unit"), unit_vars(tmp_path, "arptables", backend))
    assert rc == 0, out
    unit = tmp_path / "units" / "lvs-dr-vips.service"
    assert directives(unit, "Requires") == ["lvs-dr-arptables.service"], unit.read_text()
    assert "lvs-dr-arptables.service" in directives(unit, "After")[0].split()
    assert run_checks(iface_netns, unit) == (True, "")
    # One VIP's DROP rule gone: refused, naming it.
    run("ip", "netns", "exec", iface_netns, f"arptables-{backend}", "-D", "INPUT", "-d", VIP2, "-j", "DROP")
    passed, why = run_checks(iface_netns, unit)
    assert not passed and f"no rule dropping ARP requests for {VIP2}" in why, why
    # No rules at all (what a boot without the restore leaves).
    run("ip", "netns", "exec", iface_netns, f"arptables-{backend}", "-F")
    passed, why = run_checks(iface_netns, unit)
    assert not passed and f"no rule dropping ARP requests for {VIP}" in why, why


def test_the_restore_unit_asserts_its_rules_and_both_units_verify(play, tmp_path):
    variables = unit_vars(tmp_path, "arptables")
    template = {
        "ansible.builtin.template": {
            "src": str(Path(__file__).resolve().parents[2] / "roles/realserver/templates/lvs-dr-arptables.service.j2"),
            "dest": str(tmp_path / "units" / "lvs-dr-arptables.service"),
            "mode": "0644",
        },
        "vars": {"realserver_arptables_used_backend": "legacy"},
    }
    rc, out = play([template, *role_tasks("arptables_rules", "vips_unit")], variables)
    assert rc == 0, out
    restore = tmp_path / "units" / "lvs-dr-arptables.service"
    assert directives(restore, "AssertFileNotEmpty") == [str(tmp_path / "arptables.rules")], restore.read_text()
    assert not [line for line in restore.read_text().splitlines() if line.startswith("Condition")], restore.read_text()
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(restore), str(tmp_path / "units" / "lvs-dr-vips.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0 and "lvs-dr" not in verify.stderr, verify.stderr
