"""The lab's kernel does what the collection needs: IPVS with every scheduler the modules
offer, per network namespace, readable over generic netlink by pyroute2, and legacy
arptables with the mangle target."""

from __future__ import annotations

import json
import subprocess

import pytest

from ..conftest import run

# What kernel 6.1 (the lab's) ships; "twos" came with 6.2.
SCHEDULERS = ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_scheduler_loads(netns: str, scheduler: str) -> None:
    run("ip", "netns", "exec", netns, "ipvsadm", "-A", "-t", "198.51.100.10:80", "-s", scheduler)
    listing = run("ip", "netns", "exec", netns, "ipvsadm", "-Ln")
    assert f"TCP  198.51.100.10:80 {scheduler}" in listing


def test_scheduler_the_kernel_lacks_is_refused(netns: str) -> None:
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "ipvsadm", "-A", "-t", "198.51.100.10:80", "-s", "twos"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "Scheduler or persistence engine not found" in result.stderr, result


def test_sip_persistence_engine_loads(netns: str) -> None:
    run("ip", "netns", "exec", netns, "ipvsadm", "-A", "-u", "198.51.100.10:5060", "-s", "rr", "-p", "60", "--pe", "sip")
    assert "pe sip" in run("ip", "netns", "exec", netns, "ipvsadm", "-Ln")


def test_ipvs_table_is_per_namespace(netns: str) -> None:
    run("ip", "netns", "exec", netns, "ipvsadm", "-A", "-t", "198.51.100.11:80", "-s", "rr")
    assert "198.51.100.11" in run("ip", "netns", "exec", netns, "ipvsadm", "-Ln")
    assert "198.51.100.11" not in run("ipvsadm", "-Ln")


def test_pyroute2_dumps_the_table(netns: str) -> None:
    run("ip", "netns", "exec", netns, "ipvsadm", "-A", "-t", "198.51.100.12:8080", "-s", "wrr")
    run("ip", "netns", "exec", netns, "ipvsadm", "-a", "-t", "198.51.100.12:8080", "-r", "198.51.100.21:8080", "-g", "-w", "7")
    script = (
        "import json; from pyroute2 import IPVS, IPVSDest, IPVSService; s = IPVS(); "
        "svc = IPVSService.from_message(s.service('dump')[0]); "
        "dst = IPVSDest.from_message(s.dest('dump', service=svc)[0]); "
        "print(json.dumps([svc['sched_name'], dst['addr'], dst['weight']]))"
    )
    out = run("ip", "netns", "exec", netns, "python3", "-c", script)
    assert json.loads(out) == ["wrr", "198.51.100.21", 7]


def test_arptables_legacy_drops_and_mangles(netns: str) -> None:
    arpt = ["ip", "netns", "exec", netns, "arptables"]
    run(*arpt, "-A", "INPUT", "-d", "198.51.100.100", "-j", "DROP")
    run(*arpt, "-A", "OUTPUT", "-s", "198.51.100.100", "-j", "mangle", "--mangle-ip-s", "198.51.100.2")
    saved = run("ip", "netns", "exec", netns, "arptables-save").splitlines()
    assert "-A INPUT -j DROP -d 198.51.100.100" in [ln.strip() for ln in saved], saved
    assert "-A OUTPUT -j mangle -s 198.51.100.100 --mangle-ip-s 198.51.100.2" in [ln.strip() for ln in saved], saved
    # The UML kernel has no nftables arp family: the guest must use the legacy backend.
    assert run("readlink", "-f", "/usr/sbin/arptables").strip() == "/usr/sbin/arptables-legacy"
