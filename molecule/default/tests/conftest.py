"""The seed's proofs, against the scenario's running containers (shared by the scenarios).

Each command runs in a container by `docker exec` (testinfra's docker backend) in the Docker
engine that DOCKER_HOST names. Hosts and groups come from Molecule's inventory
(MOLECULE_INVENTORY_FILE), the services and VIP from its group_vars, so every scenario checks
the topology it converged.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra
import yaml

REQUESTS = 20
BOOT_TIMEOUT = 300
FLUSHES = 5
CURL = "curl -sS --noproxy '*' --max-time 5"

# Broadcast one ARP request for an address from the client's eth0 and print the MAC of every
# host that answers within two seconds (the lab's one vCPU may be busy): who answers ARP for
# the VIP, race or not. (The image has python3 but no arping.)
ARP_PROBE = r"""
import fcntl, socket, struct, sys, time
ifname, target = sys.argv[1], socket.inet_aton(sys.argv[2])
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
raw.bind((ifname, 0))
mac = raw.getsockname()[4]
ip = fcntl.ioctl(socket.socket(), 0x8915, struct.pack("256s", ifname.encode()))[20:24]  # SIOCGIFADDR
raw.send(b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\0" * 6 + target)
raw.settimeout(0.2)
seen, deadline = set(), time.monotonic() + 2
while time.monotonic() < deadline:
    try:
        frame = raw.recv(128)
    except socket.timeout:
        continue
    if frame[12:14] == b"\x08\x06" and frame[20:22] == b"\0\x02" and frame[28:32] == target:
        seen.add(frame[22:28].hex(":"))
print("\n".join(sorted(seen)))
"""


@dataclass
class Topology:
    vip: str
    director: str
    realservers: list[str]
    client: str
    services: list[dict]

    def host(self, name):
        return testinfra.get_host(f"docker://{name}")

    def run(self, name, command):
        """Run a shell command in a container; its stdout, or a failure that shows stderr."""
        result = self.host(name).run(command)
        assert result.rc == 0, f"{name}: {command!r} exited {result.rc}: {result.stderr.strip()}"
        return result.stdout

    def address(self, name, interface="eth0"):
        return re.search(r"inet (\S+)/", self.run(name, f"ip -4 -o addr show dev {interface}"))[1]

    def mac(self, name, interface="eth0"):
        return self.run(name, f"cat /sys/class/net/{interface}/address").strip()

    def requests(self, count=REQUESTS, path="/"):
        """Who answered each of `count` requests from the client, each a new connection."""
        out = self.run(self.client, f"for i in $(seq {count}); do {CURL} http://{self.vip}{path}; echo; done")
        return [line.strip() for line in out.splitlines() if line.strip()]

    def client_neighbour_of_vip(self):
        """Flush the client's neighbour table, send one request, return the VIP's MAC there."""
        self.run(self.client, f"ip neigh flush all && {CURL} -o /dev/null http://{self.vip}/ || true")
        out = self.run(self.client, f"ip neigh show {self.vip}")
        match = re.search(r"lladdr (\S+)", out)
        assert match, f"the client has no neighbour entry for {self.vip}: {out!r}"
        return match.group(1)

    def arp_responders(self, address):
        """The MACs that answer one broadcast ARP request for `address` from the client."""
        script = base64.b64encode(ARP_PROBE.encode()).decode()
        return set(self.run(self.client, f"echo {script} | base64 -d | python3 - eth0 {address}").split())

    def ipvs_table(self):
        return self.run(self.director, "ipvsadm -Ln")

    def parsed_ipvs_table(self):
        """`ipvsadm -Ln` as {"TCP 172.25.9.100:80": (scheduler, {"172.25.9.2:80": (forward, weight)})}."""
        table, reals = {}, None
        for line in self.ipvs_table().splitlines():
            if match := re.match(r"^(TCP|UDP|SCTP)\s+(\S+)\s+(\S+)", line):
                reals = {}
                table[f"{match[1]} {match[2]}"] = (match[3], reals)
            elif (match := re.match(r"^\s+->\s+(\d\S+)\s+(\S+)\s+(\d+)", line)) and reals is not None:
                reals[match[1]] = (match[2], int(match[3]))
        return table

    def restart_containers(self, names):
        """`docker restart`, then wait for systemd in each container to finish booting."""
        started = {name: self.started_at(name) for name in names}
        subprocess.run(["docker", "restart", *names], check=True, capture_output=True, text=True)
        for name in names:
            assert self.started_at(name) != started[name], f"{name} did not restart"
            self.wait_booted(name)

    def wait_booted(self, name):
        """Wait for systemd in a container to finish booting (ansible and checks need it done).
        The lab's one vCPU may be busy with other tests: up to BOOT_TIMEOUT seconds."""
        deadline, state = time.monotonic() + BOOT_TIMEOUT, ""
        while time.monotonic() < deadline:
            state = self.host(name).run("timeout 20 systemctl is-system-running --wait").stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(1)
        pytest.fail(f"{name}: systemd is {state!r} after {BOOT_TIMEOUT}s")

    @staticmethod
    def started_at(name):
        return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", name], check=True, capture_output=True, text=True).stdout.strip()


def load_topology():
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"])
    groups = {name: sorted((group or {}).get("hosts") or {}) for name, group in yaml.safe_load(inventory.read_text()).items()}
    services = yaml.safe_load((inventory.parent / "group_vars" / "directors").read_text())["director_services"]
    return Topology(
        vip=services[0]["address"],
        director=groups["directors"][0],
        realservers=groups["realservers"],
        client=groups["clients"][0],
        services=services,
    )


@pytest.fixture(scope="session")
def topology():
    if not os.environ.get("DOCKER_HOST"):
        pytest.fail('DOCKER_HOST is not set: run `eval "$(scripts/lab env)"` (scripts/molecule does).')
    topo = load_topology()
    # Every check starts from a state Molecule's converge left: wait for the boot to finish.
    for name in (topo.director, *topo.realservers, topo.client):
        topo.wait_booted(name)
    return topo
