"""The director announces a VIP when it binds it (issue 15, item 7): a client whose neighbour
entry for the VIP holds a wrong MAC (a stale one, or one a neighbour on the segment planted)
takes the director's MAC from the gratuitous ARP that lvs-dr-vips.service sends
(`director_vip_gratuitous_arp`, on by default). Linux updates an existing entry from a
gratuitous ARP, though it creates none (arp_accept 0).

Runs once, on the converged topology, between test_default.py and test_without_suppression.py.
"""

from __future__ import annotations

import re
import time

WRONG_MAC = "02:00:00:00:be:ef"


def test_binding_the_vip_corrects_a_wrong_neighbour_entry(topology):
    topology.run(topology.client, f"ip neigh replace {topology.vip} lladdr {WRONG_MAC} dev eth0 nud stale")
    assert WRONG_MAC in topology.run(topology.client, f"ip neigh show {topology.vip}")
    time.sleep(1.5)  # past the entry's locktime (1 s), so any ARP may override it
    topology.run(topology.director, "systemctl restart lvs-dr-vips.service")
    entry = ""
    for _try in range(10):
        entry = topology.run(topology.client, f"ip neigh show {topology.vip}")
        if WRONG_MAC not in entry:
            break
        time.sleep(0.5)
    print(f"client's entry for {topology.vip} after the director bound it again: {entry.strip()}")
    match = re.search(r"lladdr (\S+)", entry)
    assert match and match[1] == topology.mac(topology.director), entry
