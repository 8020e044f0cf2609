"""Smoke test of the lab: the seed's LVS-DR setup, configured by hand, balances for real.

The seed (../shared/seed) on the lab's containers: director 172.25.8.1 holds the VIP and
an IPVS service in DR mode with round robin; rs1 and rs2 hold the VIP too, drop ARP for
it and never announce it; the client sends real HTTP to the VIP.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import in_container, lab, must

VIP = "172.25.8.100"
REALS = {"rs1": "172.25.8.2", "rs2": "172.25.8.3"}
APT = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"


def setup_director() -> None:
    must(
        in_container(
            "director",
            f"""set -e
            {APT} ipvsadm >/dev/null
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
            {APT} arptables >/dev/null
            arptables -A INPUT -d {VIP} -j DROP
            arptables -A OUTPUT -s {VIP} -j mangle --mangle-ip-s {REALS[name]}
            ip addr add {VIP}/24 dev eth0
            mkdir -p /srv/www && echo {name} >/srv/www/index.html
            systemd-run --unit web python3 -m http.server 80 --directory /srv/www >/dev/null""",
        )
    )


@pytest.fixture(scope="module")
def seed_dr(lab_env: dict[str, str]) -> dict[str, str]:
    """Fresh topology containers with the seed's DR setup; returns the director's MAC."""
    must(lab("reset"))
    with ThreadPoolExecutor(3) as pool:
        for job in [pool.submit(setup_director), *(pool.submit(setup_real_server, n) for n in REALS)]:
            job.result()
    mac = must(in_container("director", "cat /sys/class/net/eth0/address")).strip()
    return {"director_mac": mac}


def get_from_client(count: int, flush_neighbours: bool = False) -> list[str]:
    """COUNT HTTP requests from the client to the VIP, each a new connection; who answered."""
    flush = "ip neigh flush all; " if flush_neighbours else ""
    script = f"{flush}for i in $(seq {count}); do curl -sS --noproxy '*' --max-time 5 http://{VIP}/ || echo FAILED; done"
    return must(in_container("client", script)).split()


def test_requests_alternate_between_real_servers(seed_dr: dict[str, str]) -> None:
    answers = get_from_client(10, flush_neighbours=True)
    assert len(answers) == 10, answers
    assert sorted(set(answers)) == ["rs1", "rs2"], answers
    assert all(a != b for a, b in zip(answers, answers[1:], strict=False)), f"not strict round robin: {answers}"
    assert answers.count("rs1") == answers.count("rs2") == 5, answers


def test_client_resolves_vip_to_director(seed_dr: dict[str, str]) -> None:
    # The seed's failure: whoever answers ARP for the VIP first wins. Re-ask several times.
    for _ in range(3):
        get_from_client(1, flush_neighbours=True)
        neigh = must(in_container("client", f"ip neigh show {VIP}"))
        match = re.search(r"lladdr ([0-9a-f:]{17})", neigh)
        assert match, f"no neighbour entry for the VIP: {neigh!r}"
        assert match.group(1) == seed_dr["director_mac"], f"VIP resolved to {match.group(1)}, not the director"


def test_replies_bypass_the_director(seed_dr: dict[str, str]) -> None:
    get_from_client(4)
    # IPVS sums its per-CPU counters every 2 s.
    time.sleep(3)
    stats = must(in_container("director", "ipvsadm -Ln --stats --exact"))
    line = next(ln for ln in stats.splitlines() if ln.startswith(f"TCP  {VIP}:80"))
    conns, in_pkts, out_pkts = (int(x) for x in line.split()[2:5])
    assert conns >= 4 and in_pkts > 0, stats
    assert out_pkts == 0, f"replies went through the director:\n{stats}"
