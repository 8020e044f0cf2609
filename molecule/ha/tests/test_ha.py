"""The keepalived mode on two directors (molecule/ha): one VRRP master holds the VIP, both load
the same table and sync their connections, strangers' VRRP is ignored, health checks take a
dead real server out and put it back, and a stopped master hands the VIP over. The tests run
in this order, each leaving the pair as it found it."""

from __future__ import annotations

import base64
import re

# A VRRPv3 advert (RFC 5798) for the pair's router id at priority 255 ("I own the VIP"), sent
# from the client to the master and to VRRP's group: a stranger that would take the VIP over.
VRRP_ADVERT = r"""
import socket, struct, sys, time
src, vrid, vip, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def checksum(data):
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
for _ in range(15):
    for dst in targets:
        body = struct.pack("!BBBBHH", 0x31, vrid, 255, 1, 100, 0) + socket.inet_aton(vip)
        pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 112, len(body))
        body = body[:6] + struct.pack("!H", checksum(pseudo + body)) + body[8:]
        sock.sendto(body, (dst, 0))
    time.sleep(0.2)
"""


def vrrp_dropped(pair, director):
    """Packets the director's LVS_DR_HA chain dropped as VRRP (IP protocol 112)."""
    out = pair.run(director, "iptables -w -L LVS_DR_HA -n -v -x")
    return sum(int(f[0]) for f in (line.split() for line in out.splitlines()) if len(f) > 3 and f[2] == "DROP" and f[3] in ("112", "vrrp"))


def test_the_vip_is_on_exactly_one_director_the_first(pair):
    assert pair.master() == pair.directors[0], f"the VIP is on {pair.holders()}, not on the highest priority {pair.directors[0]}"


def test_both_directors_load_the_same_table(pair):
    tables = {d: pair.table_of(d) for d in pair.directors}
    expected = {pair.address(rs) + ":80" for rs in pair.realservers}
    for director, table in tables.items():
        assert set(table[f"TCP {pair.vip}:80"][1]) == expected, f"{director}: {table}"
    assert tables[pair.directors[0]] == tables[pair.directors[1]]


def test_requests_strictly_alternate(pair):
    answers = pair.requests()
    assert len(answers) == 20 and len(set(answers)) == 2, answers
    assert all(a != b for a, b in zip(answers, answers[1:], strict=False)), f"not strict round robin: {answers}"


def test_sync_daemons_run_on_both_directors_and_the_backup_has_the_connections(pair):
    for director in pair.directors:
        daemons = pair.run(director, "ipvsadm -L --daemon")
        assert re.search(r"master sync daemon", daemons) and re.search(r"backup sync daemon", daemons), f"{director}: {daemons!r}"
    pair.requests(4)
    backup = pair.directors[1]
    synced = pair.wait_for(
        f"{backup} lists the client's connections through the VIP",
        lambda: [line for line in pair.run(backup, "ipvsadm -Lnc").splitlines() if f"{pair.vip}:80" in line],
    )
    assert synced


def test_vrrp_from_a_stranger_is_dropped_and_ignored(pair):
    master = pair.master()
    before = vrrp_dropped(pair, master)
    script = base64.b64encode(VRRP_ADVERT.encode()).decode()
    pair.run(pair.client, f"echo {script} | base64 -d | python3 - {pair.address(pair.client)} 51 {pair.vip} {pair.address(master)} 224.0.0.18")
    assert vrrp_dropped(pair, master) >= before + 15, "the master's filter did not drop the stranger's adverts"
    assert pair.holders() == [master], "a stranger's VRRP advert moved the VIP"


def test_a_dead_web_server_leaves_the_table_and_comes_back(pair):
    master, victim = pair.master(), pair.realservers[0]
    key, victim_address = f"TCP {pair.vip}:80", pair.address(victim) + ":80"
    pair.run(victim, "systemctl stop apache2")
    try:
        pair.wait_for(f"{victim} leaves {master}'s table", lambda: victim_address not in pair.table_of(master)[key][1])
        answers = pair.requests(10)
        assert answers == [pair.realservers[1]] * 10, f"requests after the health check took {victim} out: {answers}"
    finally:
        pair.run(victim, "systemctl start apache2")
    pair.wait_for(f"{victim} is back in {master}'s table", lambda: victim_address in pair.table_of(master)[key][1])
    assert len(set(pair.requests(4))) == 2


def test_the_backup_takes_the_vip_when_the_masters_keepalived_stops(pair):
    master, backup = pair.directors
    assert pair.master() == master
    pair.run(master, "systemctl stop keepalived")
    try:
        pair.wait_for(f"the VIP moves to {backup}", lambda: pair.holders() == [backup])
        answers = pair.requests(10)
        assert len(answers) == 10 and all(a != b for a, b in zip(answers, answers[1:], strict=False)), f"requests through {backup}: {answers}"
        assert pair.client_neighbour_of_vip() == pair.mac(backup)
    finally:
        pair.run(master, "systemctl start keepalived")
    # Back to the master (it preempts, with the higher priority); requests go on.
    pair.wait_for(f"the VIP comes back to {master}", lambda: pair.holders() == [master])
    assert len(set(pair.requests(4))) == 2
