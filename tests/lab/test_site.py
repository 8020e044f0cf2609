"""playbooks/site.yml on the lab's seed topology, as the README runs it: it converges and the
client sees round robin through the director. That a second run changes nothing is checked by
molecule/default's idempotence step on the same playbook (one run here keeps CI in budget).
The converge is conftest's `converged`, shared with the other test_site_* modules."""

from __future__ import annotations

from .conftest import assert_round_robin, client_neighbour_of_vip, get_from_client, in_container, must


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
