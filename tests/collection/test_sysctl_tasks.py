"""The roles' sysctl tasks (roles/director/tasks/sysctl_lines.yml, ansible.builtin only), run by
ansible-playbook as root against the real kernel, in a network namespace of the test's own (its
net.ipv4.conf.* are its own): the realserver role's sysctl method sets arp_ignore and
arp_announce and persists them; a second run changes nothing; check mode reports a change and
makes none; a value changed behind the role's back is set again, and only that one. The director
role's IPVS sysctls do not exist on this host's kernel (no IPVS): check mode still reports them
as to be set, and a real run fails rather than pretending."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: lvs.dr.{role}
        tasks_from: {tasks}
"""
# The interface is a VLAN's kind of name: sysctl takes its dot as a slash (eth0/100).
INTERFACE = "eth0.100"
ARP = ["net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce", "net.ipv4.conf.eth0/100.arp_ignore", "net.ipv4.conf.eth0/100.arp_announce"]


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{argv} exited {result.returncode}: {result.stderr}{result.stdout}"
    return result.stdout


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.fail("these tests need root (a network namespace of their own)")
    name = f"lvs-sysctl-{uuid.uuid4().hex[:8]}"
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "add", INTERFACE, "type", "veth", "peer", "name", "peer0")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def play(netns, tmp_path):
    """play(ROLE, TASKS, *options) -> (exit code, changed count, what `sysctl -w` printed, output): the role's task file in the namespace."""
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # not the checkout's, with its lab inventory
    links = tmp_path / "collections" / "ansible_collections" / "lvs"
    links.mkdir(parents=True)
    (links / "dr").symlink_to(PROJECT)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"),
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        # One line of JSON a result (-v), in 2.16 too, which has no json callback of its own.
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_CALLBACK_FORMAT_PRETTY": "0",
    }
    variables = {"realserver_interface": INTERFACE, "lvs_dr_sysctl_file": str(tmp_path / "90-lvs-dr.conf"), "ansible_python_interpreter": sys.executable}
    (tmp_path / "vars.json").write_text(json.dumps(variables))

    def _play(role, tasks, *options):
        (tmp_path / "play.yml").write_text(PLAYBOOK.format(role=role, tasks=tasks))
        argv = ["ip", "netns", "exec", netns, str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local"]
        proc = subprocess.run(
            [*argv, "-v", "-e", f"@{tmp_path / 'vars.json'}", *options, str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, check=False
        )
        recap = re.search(r"^localhost\s+:.*changed=(\d+)", proc.stdout, re.MULTILINE)
        written = [
            json.loads(result)["stdout_lines"]
            for task in proc.stdout.split("\nTASK [")
            if task.startswith("lvs.dr.") and ": Write the differing values to the kernel]" in task.partition("\n")[0]
            for result in re.findall(r"^changed: \[localhost\] => (\{.*\})$", task, re.MULTILINE)
        ]
        return proc.returncode, recap and int(recap[1]), written, proc.stdout + proc.stderr

    return _play


def live(netns: str) -> list[str]:
    return run("ip", "netns", "exec", netns, "sysctl", "-n", *ARP).split()


def test_realserver_sysctls_are_set_once_and_persisted(play, netns, tmp_path):
    persisted = tmp_path / "90-lvs-dr.conf"
    assert live(netns) == ["0", "0", "0", "0"]

    rc, changed, written, out = play("realserver", "sysctl", "--check")
    assert (rc, changed) == (0, 2), out  # the kernel's values, and the file
    assert live(netns) == ["0", "0", "0", "0"] and not persisted.exists(), "check mode changed something"

    rc, changed, written, out = play("realserver", "sysctl")
    assert (rc, changed) == (0, 2), out  # the kernel's values, and the file
    assert live(netns) == ["1", "2", "1", "2"]
    assert persisted.read_text().splitlines()[1:] == [f"{name}={value}" for name, value in zip(ARP, "1212", strict=True)]
    assert persisted.stat().st_mode & 0o777 == 0o644

    for options in ((), ("--check",)):
        rc, changed, written, out = play("realserver", "sysctl", *options)
        assert (rc, changed) == (0, 0), out

    run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.conf.eth0/100.arp_announce=0")
    rc, changed, written, out = play("realserver", "sysctl", "--check")
    assert (rc, changed) == (0, 1) and "Would set net.ipv4.conf.eth0/100.arp_announce=2" in out, out
    assert live(netns) == ["1", "2", "1", "0"]
    rc, changed, written, out = play("realserver", "sysctl")
    assert (rc, changed, written) == (0, 1, [["net.ipv4.conf.eth0/100.arp_announce = 2"]]), out  # what sysctl -w wrote
    assert live(netns) == ["1", "2", "1", "2"]


def test_director_sysctls_the_kernel_lacks_are_reported_in_check_mode_and_fail_for_real(play, tmp_path):
    assert not Path("/proc/sys/net/ipv4/vs").exists(), "this host has IPVS: the test needs a kernel without it"
    rc, changed, written, out = play("director", "sysctls", "--check")
    assert (rc, changed) == (0, 2), out  # the values and the file
    assert not (tmp_path / "90-lvs-dr.conf").exists()
    rc, changed, written, out = play("director", "sysctls")
    assert rc != 0 and "cannot stat /proc/sys/net/ipv4/vs/expire_quiescent_template" in out, out
