"""The seed scenario, converged by playbooks/site.yml: round robin over the VIP, ARP for the
VIP answered by the director only, replies that bypass the director, the IPVS table in DR
mode with its thresholds and timeouts, the saved rules, a clean boot; then the same checks
again after the ipvsadm service and the director and real server containers restart, without
the playbook running again. (A container's restart is a new network namespace: an empty IPVS
table, the kernel's default timeouts, no VIP, no arptables rules, default sysctls. Only what
the roles made persistent brings them back.) docs/restart.md has what a restart restores.
"""

from __future__ import annotations

import collections
import re

import pytest
from conftest import FLUSHES, REQUESTS

BIG_PAGE = "/lvs-dr-big.bin"
BIG_PAGE_MIB = 1
BIG_FETCHES = 4


@pytest.fixture(scope="module", params=["converged", "restarted"])
def lab(request, topology):
    """The scenario as converged; then (second round) after restarting ipvsadm and the containers."""
    if request.param == "restarted":
        table = topology.ipvs_table()
        topology.run(topology.director, "systemctl restart ipvsadm")
        assert topology.ipvs_table() == table, "the IPVS table changed over an ipvsadm service restart"
        # A container restart is a new network namespace: an empty IPVS table, no VIP, no
        # arptables rules, default sysctls. Only what the roles made persistent brings them back.
        topology.restart_containers([topology.director, *topology.realservers])
    return topology


def thresholds_of(lab):
    """{real server: (upper, lower)} of every real server group_vars gives thresholds."""
    return {
        f"{real['address']}:{service['port']}": (real["upper_threshold"], real["lower_threshold"])
        for service in lab.services
        for real in service.get("reals") or []
        if "upper_threshold" in real
    }


def test_director_boots_clean(lab):
    state = lab.host(lab.director).run("systemctl is-system-running").stdout.strip()
    assert state == "running", lab.run(lab.director, "systemctl --failed --no-legend --plain")


def test_thresholds_and_timeouts(lab):
    wanted = thresholds_of(lab)
    assert wanted, "molecule.yml gives no real server thresholds to check"
    listing = lab.run(lab.director, "ipvsadm -Ln --thresholds")
    rows = {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^\s+->\s+(\d\S+)\s+(\d+)\s+(\d+)", listing, re.M)}
    assert {real: rows.get(real) for real in wanted} == wanted, listing
    timeouts = lab.run(lab.director, "ipvsadm -L --timeout")
    assert timeouts.split(":")[-1].split() == ["3600", "60", "120"], timeouts


def test_saved_rules_keep_thresholds(lab):
    # ipvsadm-save's lines, each real server with thresholds followed by the -x/-y that
    # ipvsadm-save leaves out (the role adds them), so a restore brings them back.
    wanted = thresholds_of(lab)
    expected = []
    for line in lab.run(lab.director, "ipvsadm -Sn").splitlines():
        real = re.search(r" -r (\S+) ", line)
        extra = wanted.get(real[1]) if real else None
        expected.append(line + (f" -x {extra[0]} -y {extra[1]}" if extra else ""))
    assert lab.run(lab.director, "cat /etc/ipvsadm.rules").splitlines() == expected


def test_round_robin(lab):
    answers = lab.requests()
    print(f"{REQUESTS} requests to http://{lab.vip}/ answered by: {' '.join(answers)}")
    assert collections.Counter(answers) == {name: REQUESTS // len(lab.realservers) for name in lab.realservers}
    period = len(lab.realservers)
    assert all(answers[i] == answers[i % period] for i in range(len(answers))), f"not strict round robin: {answers}"


def test_client_resolves_vip_to_director(lab):
    director_mac = lab.mac(lab.director)
    macs = [lab.client_neighbour_of_vip() for _flush in range(FLUSHES)]
    print(f"director {director_mac}; client's entry for {lab.vip} after {FLUSHES} flushes: {' '.join(macs)}")
    assert macs == [director_mac] * FLUSHES, {name: lab.mac(name) for name in lab.realservers}


def test_only_the_director_answers_arp_for_the_vip(lab):
    responders = lab.arp_responders(lab.vip)
    print(f"MACs answering ARP for {lab.vip}: {' '.join(sorted(responders))}")
    assert responders == {lab.mac(lab.director)}, {name: lab.mac(name) for name in lab.realservers}


def test_replies_bypass_director(lab):
    for name in lab.realservers:
        lab.run(name, f"test -s /var/www/html{BIG_PAGE} || head -c {BIG_PAGE_MIB}M /dev/urandom > /var/www/html{BIG_PAGE}")
    tx = "cat /sys/class/net/eth0/statistics/tx_bytes"
    before = int(lab.run(lab.director, tx))
    fetch = f"curl -sS --noproxy '*' --max-time 30 -o /dev/null -w '%{{size_download}}\\n' http://{lab.vip}{BIG_PAGE}"
    received = sum(int(n) for n in lab.run(lab.client, f"for i in $(seq {BIG_FETCHES}); do {fetch}; done").split())
    director_sent = int(lab.run(lab.director, tx)) - before
    print(f"client received {received} bytes through the VIP; the director's eth0 sent {director_sent} bytes")
    assert received == BIG_FETCHES * BIG_PAGE_MIB * 2**20
    assert director_sent < received / 10, "the replies went through the director"


def test_ipvsadm_lists_every_service_and_real_with_route(lab):
    print(lab.ipvs_table())
    expected = {}
    for service in lab.services:
        reals = service.get("reals") or [{"address": lab.address(name)} for name in lab.realservers]
        expected[f"{service['protocol'].upper()} {service['address']}:{service['port']}"] = (
            service["scheduler"],
            {f"{real['address']}:{service['port']}": ("Route", real.get("weight", 1)) for real in reals},
        )
    assert lab.parsed_ipvs_table() == expected
    # In DR mode the director never sees a reply: the seed service's outgoing packets stay at 0.
    stats = lab.run(lab.director, "ipvsadm -Ln --stats --exact")
    service = re.search(rf"^TCP\s+{re.escape(lab.vip)}:80\s+(\d+)\s+(\d+)\s+(\d+)", stats, re.M)
    assert service and int(service.group(3)) == 0, stats


def test_ipvs_sysctls_with_the_flood_defences(lab):
    # The role's default director_ipvs_sysctls (the drain's and the flood defences' automatic modes),
    # in the kernel now and, in the restarted round, again from /etc/sysctl.d at boot.
    names = ["expire_quiescent_template", "expire_nodest_conn", "conn_reuse_mode", "drop_entry", "secure_tcp"]
    values = lab.run(lab.director, " ".join(["cat"] + [f"/proc/sys/net/ipv4/vs/{name}" for name in names])).split()
    assert dict(zip(names, values, strict=True)) == {
        "expire_quiescent_template": "1",
        "expire_nodest_conn": "0",
        "conn_reuse_mode": "1",
        "drop_entry": "1",
        "secure_tcp": "1",
    }
