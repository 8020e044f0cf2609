"""Draining a real server of a persistent service under steady traffic (kubernetes#71809; the
director role's director_ipvs_sysctls). A client that keeps connecting has a persistence template
pointing at one real server; that server is drained (weight 0, as lvs.dr.ipvs_real/ipvs_table
`drained` does) and we wait for the kernel to show no connections for it (what `drained` waits
for). With net.ipv4.vs.expire_quiescent_template 0 (the kernel's default) the template keeps
sending the client there, so the drain never ends; set by the director role's sysctl tasks (1),
the template expires on the next connection and the drain ends within seconds.

Its own VIPs (172.25.8.101 and .102, one per case, so no template of the first case is left in
the second's way) on the lab's seed containers, next to the seed's service, which it leaves
alone; everything it adds is removed afterwards. The client reaches the VIP through a static
neighbour entry for the director (no ARP suppression needed on the real servers). The client
closes each connection with a reset, so the kernel forgets it 10 s later (TCP CLOSE): the drain
can end quickly once no new connection comes."""

from __future__ import annotations

import json
import re
import time

import pytest

from .conftest import ansible, in_container, must

REALS = {"172.25.8.2": "rs1", "172.25.8.3": "rs2"}
SYSCTL = "net.ipv4.vs.expire_quiescent_template"
SYSCTL_FILE = "/etc/sysctl.d/90-lvs-dr-ipvs.conf"

# An HTTP request every 0.2 s (at most SECONDS, until /tmp/lvs-drain-stop exists), each a new
# connection closed with a reset; the answers and failures go to /tmp/lvs-drain-load.json.
LOAD = """
import json, os, socket, struct, sys, time
vip, seconds = sys.argv[1], float(sys.argv[2])
done = {"answered": 0, "failed": 0}
end = time.time() + seconds
while time.time() < end and not os.path.exists("/tmp/lvs-drain-stop"):
    try:
        s = socket.create_connection((vip, 80), timeout=3)
        s.sendall(b"GET / HTTP/1.0\\r\\nHost: lvs\\r\\n\\r\\n")
        ok = s.recv(64).startswith(b"HTTP/1.")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        done["answered" if ok else "failed"] += 1
    except OSError:
        done["failed"] += 1
    time.sleep(0.2)
json.dump(done, open("/tmp/lvs-drain-load.json", "w"))
"""


def sh(name: str, script: str) -> str:
    return must(in_container(name, script))


def set_up(vip: str, director_mac: str) -> None:
    sh("director", f"ip addr add {vip}/32 dev lo && ipvsadm -A -t {vip}:80 -s rr -p 30")
    for real in REALS:
        sh("director", f"ipvsadm -a -t {vip}:80 -r {real}:80 -g -w 1")
    for name in REALS.values():
        sh(name, f"ip addr add {vip}/32 dev lo")
    sh("client", f"ip neigh replace {vip} lladdr {director_mac} dev eth0 nud permanent")


def tear_down(vip: str) -> None:
    in_container("director", f"ipvsadm -D -t {vip}:80; ip addr del {vip}/32 dev lo")
    for name in REALS.values():
        in_container(name, f"ip addr del {vip}/32 dev lo")
    in_container("client", f"ip neigh del {vip} dev eth0")


def drain(vip: str, director_mac: str, timeout: int) -> dict[str, object]:
    """Steady traffic to VIP; drain the real server the client's template points at; wait up to
    TIMEOUT s for it to have no connections. What happened."""
    set_up(vip, director_mac)
    try:
        sh("client", f"rm -f /tmp/lvs-drain-load.json /tmp/lvs-drain-stop; (python3 -c '{LOAD}' {vip} {timeout + 30} >/dev/null 2>&1 &)")
        time.sleep(3)
        # The template: client address, port 0, the VIP, the real server.
        templates = re.findall(rf"^TCP\s+\S+\s+\S+\s+\S+:0\s+{re.escape(vip)}:80\s+(\S+):80$", sh("director", "ipvsadm -Lnc"), re.MULTILINE)
        assert len(templates) == 1, f"expected one persistence template for {vip}, got {templates}"
        [real] = templates
        sh("director", f"ipvsadm -e -t {vip}:80 -r {real}:80 -g -w 0")
        started = time.monotonic()
        while True:
            listing = sh("director", f"ipvsadm -Ln -t {vip}:80")
            [(active, inactive)] = re.findall(rf"-> {re.escape(real)}:80\s+Route\s+0\s+(\d+)\s+(\d+)", listing)
            left = int(active) + int(inactive)
            waited = time.monotonic() - started
            if left == 0 or waited >= timeout:
                break
            time.sleep(1)
        # the traffic went on until here; it stops within a request
        sh("client", "touch /tmp/lvs-drain-stop; for i in $(seq 50); do test -e /tmp/lvs-drain-load.json && break; sleep 0.2; done")
        load = json.loads(sh("client", "cat /tmp/lvs-drain-load.json"))
        return {"real": REALS[real], "drained": left == 0, "waited": round(waited, 1), "connections_left": left, "load": load}
    finally:
        tear_down(vip)


@pytest.fixture(scope="module")
def director_mac(lab_env: dict[str, str]) -> str:
    return sh("director", "cat /sys/class/net/eth0/address").strip()


@pytest.fixture(scope="module")
def drains(lab_env, director_mac, tmp_path_factory):
    """The two drains: with the sysctl at 0, then with the role's sysctl tasks applied."""
    before = sh("director", f"sysctl -n {SYSCTL}; test -e {SYSCTL_FILE} && echo file || echo none").split()
    playbook = tmp_path_factory.mktemp("drain") / "sysctls.yml"
    sysctls = {"ansible.builtin.include_role": {"name": "lvs.dr.director", "tasks_from": "sysctls"}}
    playbook.write_text(json.dumps([{"hosts": "directors", "gather_facts": False, "tasks": [sysctls]}]))
    try:
        sh("director", f"sysctl -qw {SYSCTL}=0")
        seen = {"off": drain("172.25.8.101", director_mac, timeout=15)}
        role = ansible(lab_env, "ansible-playbook", str(playbook), "-i", "inventories/lab", "--limit", "director")
        assert role.returncode == 0, role.stdout[-3000:] + role.stderr[-2000:]
        seen["file"] = sh("director", f"cat {SYSCTL_FILE}")
        seen["on"] = drain("172.25.8.102", director_mac, timeout=45)
    finally:
        in_container("director", f"sysctl -qw {SYSCTL}={before[0]}" + (f"; rm -f {SYSCTL_FILE}" if before[1] == "none" else ""))
    print(json.dumps(seen))
    return seen


def test_without_expire_quiescent_template_the_drain_does_not_end(drains):
    off = drains["off"]
    assert not off["drained"] and off["connections_left"] > 0, off
    assert off["load"]["failed"] == 0 and off["load"]["answered"] > 30, off


def test_the_roles_sysctl_lets_the_drain_end_under_steady_traffic(drains):
    assert f"{SYSCTL}=1" in drains["file"].replace(" ", ""), drains["file"]
    on = drains["on"]
    assert on["drained"] and on["waited"] < 30, on
    # every request answered, the drain included
    assert on["load"]["failed"] == 0 and on["load"]["answered"] > 30, on
