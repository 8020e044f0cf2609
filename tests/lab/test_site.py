"""playbooks/site.yml on the lab's seed topology, as the README runs it: it converges and the
client sees round robin through the director. That a second run changes nothing is checked by
molecule/default's idempotence step on the same playbook (one run here keeps CI in budget)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from .conftest import PROJECT, assert_round_robin, client_neighbour_of_vip, get_from_client, in_container, lab, must


def site(lab_env: dict[str, str]) -> tuple[str, dict[str, dict[str, int]]]:
    """Run site.yml on inventories/lab; its output and each host's recap counts."""
    env = {**os.environ, **lab_env, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    playbook = subprocess.run(
        [str(PROJECT / ".venv" / "bin" / "ansible-playbook"), "playbooks/site.yml", "-i", "inventories/lab"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert playbook.returncode == 0, playbook.stdout[-5000:] + playbook.stderr[-3000:]
    recap = {
        host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)} for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", playbook.stdout, re.MULTILINE)
    }
    return playbook.stdout, recap


@pytest.fixture(scope="module")
def converged(lab_env: dict[str, str]) -> dict[str, dict[str, int]]:
    must(lab("reset"))
    _out, recap = site(lab_env)
    return recap


def test_first_run_changes_every_host(converged):
    assert set(converged) == {"director", "rs1", "rs2"} and all(c["changed"] > 0 for c in converged.values()), converged


def test_client_sees_round_robin(converged):
    assert_round_robin(get_from_client(20, flush_neighbours=True), ["rs1", "rs2"])


def test_only_the_director_answers_arp_for_the_vip(converged):
    director_mac = must(in_container("director", "cat /sys/class/net/eth0/address")).strip()
    for _round in range(3):
        assert client_neighbour_of_vip() == director_mac


def test_director_lists_both_real_servers_in_dr_mode(converged):
    listing = must(in_container("director", "ipvsadm -Ln"))
    rows = [line.split() for line in listing.splitlines() if line.strip().startswith("->") and "Route" in line]
    assert sorted(row[1] for row in rows) == ["172.25.8.2:80", "172.25.8.3:80"], listing
