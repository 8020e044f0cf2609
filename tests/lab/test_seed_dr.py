"""Smoke test of the lab: the seed's LVS-DR setup, configured by hand, balances for real.

The seed (../shared/seed) on the lab's containers: director 172.25.8.1 holds the VIP and
an IPVS service in DR mode with round robin; rs1 and rs2 hold the VIP too, drop ARP for
it and never announce it; the client sends real HTTP to the VIP. The topology runs on the lab's
baked image, which has the seed's packages (ipvsadm, arptables, apache2) installed and nothing
configured: the commands below are the seed's own.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import VIP, assert_round_robin, client_neighbour_of_vip, get_from_client, in_container, lab, must

REALS = {"rs1": "172.25.8.2", "rs2": "172.25.8.3"}


def setup_director() -> None:
    must(
        in_container(
            "director",
            f"""set -e
            ip addr add {VIP}/24 dev eth0
            ipvsadm -A -t {VIP}:80 -s rr
            ipvsadm -a -t {VIP}:80 -r {REALS["rs1"]}:80 -g
            ipvsadm -a -t {VIP}:80 -r {REALS["rs2"]}:80 -g""",
        )
    )


def setup_real_server(name: str) -> None:
    # The ARP rules go in before the VIP, so the VIP is never announced from here.
    must(
        in_container(
            name,
            f"""set -e
            arptables -A INPUT -d {VIP} -j DROP
            arptables -A OUTPUT -s {VIP} -j mangle --mangle-ip-s {REALS[name]}
            ip addr add {VIP}/24 dev eth0
            echo {name} >/var/www/html/index.html
            systemctl is-active --quiet apache2""",
        )
    )


# What a container holds that the seed's setup would add to: any IPVS entry, ARP rule or
# address beyond its own, or a page other than apache's own. Empty output: as `lab up` left it.
LEFTOVERS = r"""
ipvsadm -Sn
arptables-save | grep '^-A' || true
ip -o -4 addr | grep -v -e ' inet 127\.0\.0\.1/8 ' -e ' eth0 .*172\.25\.8\.[0-9]*/24 brd' || true
test ! -s /var/www/html/index.html || grep -L 'Apache2 Debian Default Page' /var/www/html/index.html || true
"""


@pytest.fixture(scope="module")
def seed_dr(lab_env: dict[str, str]) -> dict[str, str]:
    """The topology's containers with the seed's DR setup, on a clean slate (recreated if an
    earlier run left anything in them); returns the director's MAC."""
    if any(must(in_container(name, LEFTOVERS)).strip() for name in ("director", *REALS)):
        must(lab("reset"))
    with ThreadPoolExecutor(3) as pool:
        for job in [pool.submit(setup_director), *(pool.submit(setup_real_server, n) for n in REALS)]:
            job.result()
    mac = must(in_container("director", "cat /sys/class/net/eth0/address")).strip()
    return {"director_mac": mac}


def test_requests_alternate_between_real_servers(seed_dr: dict[str, str]) -> None:
    assert_round_robin(get_from_client(10, flush_neighbours=True), ["rs1", "rs2"])


def test_client_resolves_vip_to_director(seed_dr: dict[str, str]) -> None:
    # The seed's failure: whoever answers ARP for the VIP first wins. Re-ask several times.
    for _round in range(3):
        assert client_neighbour_of_vip() == seed_dr["director_mac"], "the VIP resolved to another host than the director"


def test_replies_bypass_the_director(seed_dr: dict[str, str]) -> None:
    get_from_client(4)
    # IPVS sums its per-CPU counters every 2 s.
    time.sleep(3)
    stats = must(in_container("director", "ipvsadm -Ln --stats --exact"))
    line = next(ln for ln in stats.splitlines() if ln.startswith(f"TCP  {VIP}:80"))
    conns, in_pkts, out_pkts = (int(x) for x in line.split()[2:5])
    assert conns >= 4 and in_pkts > 0, stats
    assert out_pkts == 0, f"replies went through the director:\n{stats}"
