"""The lab exposes nothing beyond this host: every socket its processes listen on (the UML
guest's kernel processes, tinyproxy, the ssh master that forwards the Docker socket, any
process started with the lab's run directory or umid) is a unix socket or bound to loopback,
and no lab container publishes a port.

One listener is allowed off loopback, because the guest could not reach it otherwise:
tinyproxy on the host end of the lab's host-only link (LINK_HOST_IP in
scripts/lab.d/common.recipe.sh), and only while that address is link-local, assigned to the
lab's tap device and nothing else, and tinyproxy admits the guest's address alone. Its
answers are routed back into the tap, so a spoofed client elsewhere never completes a
connection.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .conftest import PROJECT, must

UMID = "lvs-dr-lab"
TAP = "lvslab0"
LISTEN_STATES = {"tcp": "0A", "udp": "07"}  # TCP_LISTEN; an unconnected, bound UDP socket


def recipe_value(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", (PROJECT / "scripts" / "lab.d" / "common.recipe.sh").read_text(), re.M)
    assert match, f"{name} is no longer set in scripts/lab.d/common.recipe.sh: update this test"
    return match.group(1)


def pid_file(run_dir: Path, name: str) -> int | None:
    path = run_dir / name
    return int(path.read_text().split()[0]) if path.exists() else None


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def stat_of(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state, ppid, pgrp, session, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cmdline_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def lab_processes(run_dir: Path) -> dict[int, str]:
    """{pid: command line} of every process the lab runs on this host: the sessions of its pid
    files (scripts/lab starts the guest and tinyproxy with setsid), whatever names the lab's
    run directory or umid, and all their descendants."""
    leaders = {pid for pid in (pid_file(run_dir, "uml.pid"), pid_file(run_dir, "tinyproxy.pid")) if pid}
    stats = {pid: s for pid in all_pids() if (s := stat_of(pid))}
    found = {pid for pid, s in stats.items() if int(s[3]) in leaders or pid in leaders}
    found |= {pid for pid in stats if str(run_dir) in cmdline_of(pid) or f"umid={UMID}" in cmdline_of(pid)}
    while True:
        children = {pid for pid, s in stats.items() if int(s[1]) in found} - found
        if not children:
            break
        found |= children
    return {pid: cmdline_of(pid) for pid in found if pid != os.getpid()}


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def decode_address(hex_address: str) -> tuple[str, int]:
    """/proc/net/{tcp,udp}[6]'s ADDR:PORT (host byte order in 32-bit words) as (address, port)."""
    addr, port = hex_address.split(":")
    raw = bytes.fromhex(addr)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw)), int(port, 16)


def listeners(pid: int) -> Iterator[tuple[str, str, int, str]]:
    """(protocol, address, port, inode) of every TCP/UDP socket listening in PID's network namespace."""
    for proto, state in LISTEN_STATES.items():
        for suffix in ("", "6"):
            try:
                lines = Path(f"/proc/{pid}/net/{proto}{suffix}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[3] == state:
                    address, port = decode_address(fields[1])
                    yield f"{proto}{suffix}", address, port, fields[9]


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def test_decode_address_reads_proc_net() -> None:
    # 0100007F:1F90 is 127.0.0.1:8080; 00000000:0016 is 0.0.0.0:22; 014DFEA9:22B8 is 169.254.77.1:8888.
    assert decode_address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert decode_address("00000000:0016") == ("0.0.0.0", 22)
    assert decode_address("014DFEA9:22B8") == ("169.254.77.1", 8888)
    assert decode_address("00000000000000000000000001000000:0035") == ("::1", 53)
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and is_loopback("127.0.0.53") and is_loopback("::ffff:127.0.0.1")


def tinyproxy_allowance(run_dir: Path) -> tuple[int | None, str, int]:
    """(tinyproxy's pid, address, port) it may listen on, after checking the conditions in the
    module docstring; fails the test when one does not hold."""
    host_ip, guest_ip, port = recipe_value("LINK_HOST_IP"), recipe_value("LINK_GUEST_IP"), int(recipe_value("PROXY_PORT"))
    assert ipaddress.ip_address(host_ip).is_link_local, f"LINK_HOST_IP {host_ip} is not link-local: the proxy would be reachable beyond the lab's link"
    holders = json.loads(must(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, check=False)))
    on = sorted(link["ifname"] for link in holders for a in link.get("addr_info", []) if a.get("local") == host_ip)
    assert on == [TAP], f"{host_ip} (the proxy's address) must be on {TAP} alone, it is on {on}"
    conf = (run_dir / "tinyproxy.conf").read_text()
    allows = re.findall(r"^\s*Allow\s+(\S+)", conf, re.M)
    assert allows == [guest_ip], f"tinyproxy must admit the guest {guest_ip} alone, its Allow lines are {allows}"
    assert re.findall(r"^\s*Listen\s+(\S+)", conf, re.M) == [host_ip], "tinyproxy must listen on the link's host end only"
    return pid_file(run_dir, "tinyproxy.pid"), host_ip, port


def test_lab_processes_listen_on_loopback_or_unix_sockets_only(lab_env: dict[str, str], run_dir: Path) -> None:
    processes = lab_processes(run_dir)
    engine = (run_dir / "engine").read_text().strip() if (run_dir / "engine").exists() else "none"
    if engine == "uml":
        assert any(f"umid={UMID}" in cmd for cmd in processes.values()), f"the lab is up on UML but no guest process was found: {processes}"
    allowed_pid, allowed_address, allowed_port = tinyproxy_allowance(run_dir) if engine == "uml" else (None, "", 0)
    exposed, seen = [], 0
    for pid, cmd in sorted(processes.items()):
        owned = socket_inodes(pid)
        for proto, address, port, inode in listeners(pid):
            if inode not in owned:
                continue
            seen += 1
            if is_loopback(address) or (pid == allowed_pid and (address, port) == (allowed_address, allowed_port)):
                continue
            exposed.append(f"{proto} {address}:{port} (pid {pid}: {cmd[:120]})")
    assert exposed == [], "lab processes listen beyond loopback:\n" + "\n".join(exposed)
    if engine == "uml":
        assert seen >= 1, "not even tinyproxy's listener was found: this test no longer sees the lab's sockets"


def published_ports(container: dict, engine: str) -> list[str]:
    """How a container (docker inspect) reaches beyond the engine's own networks, if it does."""
    host = container["HostConfig"]
    found = []
    bindings = {port: b for port, b in (host.get("PortBindings") or {}).items() if b}
    bound = {port: b for port, b in ((container.get("NetworkSettings") or {}).get("Ports") or {}).items() if b}
    if bindings or bound or host.get("PublishAllPorts"):
        found.append(f"{container['Name']}: PortBindings {bindings}, Ports {bound}, PublishAllPorts {host.get('PublishAllPorts')}")
    if engine == "local" and host.get("NetworkMode") == "host":
        found.append(f"{container['Name']}: shares this host's network")
    return found


def test_no_lab_container_publishes_a_port(lab_env: dict[str, str], run_dir: Path) -> None:
    env = {**os.environ, **lab_env}
    engine = (run_dir / "engine").read_text().strip() if (run_dir / "engine").exists() else "none"
    names = must(subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, env=env, check=False)).split()
    assert {"director", "rs1", "rs2", "client"} <= set(names), f"the lab's containers are not all there: {names}"
    inspected = json.loads(must(subprocess.run(["docker", "inspect", *names], capture_output=True, text=True, env=env, check=False)))
    published = [finding for container in inspected for finding in published_ports(container, engine)]
    ps = must(subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}} {{.Ports}}"], capture_output=True, text=True, env=env, check=False))
    published += [line for line in ps.splitlines() if "->" in line]
    assert published == [], "lab containers publish ports:\n" + "\n".join(published)


def test_published_ports_tells_a_published_port_from_an_exposed_one() -> None:
    def container(ports: dict, mode: str = "lvs-lab", publish_all: bool = False) -> dict:
        return {"Name": "/c", "HostConfig": {"PortBindings": ports, "PublishAllPorts": publish_all, "NetworkMode": mode}, "NetworkSettings": {"Ports": ports}}

    assert published_ports(container({"80/tcp": None}), "uml") == []
    assert published_ports(container({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}), "uml") != []
    assert published_ports(container({}, publish_all=True), "uml") != []
    assert published_ports(container({}, mode="host"), "local") == ["/c: shares this host's network"]
    assert published_ports(container({}, mode="host"), "uml") == []
