"""The real servers fail closed at boot (issue 15, item 4): when the ARP suppression the roles
made persistent is broken, a reboot leaves the VIP unbound, so the real server never answers
ARP for it and the client keeps sending to the director.

It runs after test_without_suppression.py (pytest takes a folder's files in name order) on the
same containers, and breaks the persistent suppression itself: rs1's saved arptables rules
emptied (the arptables method), rs2's /etc/sysctl.d/90-lvs-dr.conf emptied (the sysctl method).
Then both real servers restart (a new network namespace: no arptables rules, the ARP sysctls at
the kernel's 0, no VIP) and the VIP unit must refuse to bind the VIP.
"""

from __future__ import annotations

import pytest

# Which file holds each method's persistent suppression (molecule.yml: rs1 arptables, rs2 sysctl).
BREAK = {
    "arptables": ": > /etc/arptables.rules",
    "sysctl": ": > /etc/sysctl.d/90-lvs-dr.conf",
}


def method_of(topology, name):
    return "sysctl" if topology.host(name).file("/etc/sysctl.d/90-lvs-dr.conf").exists else "arptables"


@pytest.fixture(scope="module")
def broken(topology):
    methods = {name: method_of(topology, name) for name in topology.realservers}
    assert sorted(methods.values()) == ["arptables", "sysctl"], f"molecule.yml should give each method a real server: {methods}"
    for name, method in methods.items():
        topology.run(name, BREAK[method])
    topology.restart_containers(topology.realservers)
    return topology, methods


def test_the_suppression_is_really_gone_after_the_reboot(broken):
    """The precondition: without the checks the VIP would be bound on an unsuppressed host."""
    topology, methods = broken
    for name, method in methods.items():
        if method == "arptables":
            # Both backends' tables, whichever the role used (the lab's kernel has no nftables arp family).
            rules = topology.host(name).run("arptables-legacy -L INPUT -n; arptables-nft -L INPUT -n").stdout
            assert "DROP" not in rules, f"{name}: {rules}"
        else:
            values = topology.run(name, "cat /proc/sys/net/ipv4/conf/all/arp_ignore /proc/sys/net/ipv4/conf/eth0/arp_ignore").split()
            assert values == ["0", "0"], f"{name}: arp_ignore (all, eth0) is {values}"


def test_the_vip_is_not_bound_without_suppression(broken):
    topology, methods = broken
    for name in methods:
        addresses = topology.run(name, "ip -4 -o addr show")
        state = topology.host(name).run("systemctl is-active lvs-dr-vips.service").stdout.strip()
        print(f"{name} ({methods[name]}): lvs-dr-vips.service {state}")
        assert f" {topology.vip}/" not in addresses, f"{name} ({methods[name]}) bound the VIP without ARP suppression:\n{addresses}"
        assert state != "active", f"{name}: lvs-dr-vips.service is {state}"


def test_the_client_still_resolves_the_vip_to_the_director(broken):
    topology, _methods = broken
    responders = topology.arp_responders(topology.vip)
    print(f"MACs answering ARP for {topology.vip}: {' '.join(sorted(responders))}")
    assert responders == {topology.mac(topology.director)}, {name: topology.mac(name) for name in topology.realservers}
    assert topology.client_neighbour_of_vip() == topology.mac(topology.director)
