"""IPVS tests need a kernel with IPVS: the lab's (`scripts/lab run -- python -m pytest
tests/integration`)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import run


@pytest.fixture(scope="session", autouse=True)
def ipvs_kernel() -> None:
    # Never skip quietly: without IPVS these tests cannot say anything, so the run fails.
    if not Path("/proc/net/ip_vs").exists() and subprocess.run(["modprobe", "-q", "ip_vs"], check=False).returncode:
        pytest.exit(
            "no IPVS in this kernel: run these tests in the lab with `scripts/lab up && scripts/lab run -- python -m pytest tests/integration`",
            returncode=1,
        )


def ipvs_table(netns: str) -> str:
    """The namespace's IPVS table as ipvsadm saves it: the reference for "nothing changed"."""
    return run("ip", "netns", "exec", netns, "ipvsadm", "-Sn")


# --- a direct-routing network in namespaces: client, director, real server, one switch ---

VIP = "198.51.100.100"
PORT = 8080
ADDRESSES = {"client": "198.51.100.250", "director": "198.51.100.1", "rs": "198.51.100.2"}

# A line echo server: answers each line with "<name>:<line>".
ECHO_SERVER = """
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(sys.argv[1].encode() + b":" + line)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
"""

# A client that holds one connection open and obeys its stdin: "send X" sends a line and
# prints the answer; "reset" closes with RST (SO_LINGER 0), so IPVS forgets it quickly.
HOLDING_CLIENT = """
import socket, struct, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
f = s.makefile("rwb")
for cmd in sys.stdin:
    cmd = cmd.strip()
    if cmd.startswith("send "):
        f.write(cmd[5:].encode() + b"\\n"); f.flush()
        print(f.readline().decode().strip(), flush=True)
    elif cmd == "reset":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        f.close()  # the file holds the socket open: close both, or no RST goes out
        s.close()
        print("reset", flush=True)
"""


class HeldConnection:
    """One TCP connection from the client namespace to the VIP, kept open."""

    def __init__(self, netns: str):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", HOLDING_CLIENT, VIP, str(PORT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, line: str) -> str:
        self.proc.stdin.write(f"send {line}\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def reset(self) -> None:
        self.proc.stdin.write("reset\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "reset"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def dr_net() -> Iterator[dict[str, str]]:
    """Namespaces client, director and rs on one bridge (198.51.100.0/24); the director has
    the VIP on eth0, the real server on lo with ARP for it suppressed, and runs an echo
    server on port 8080. Yields the role -> namespace names."""
    tag = uuid.uuid4().hex[:6]
    ns = {role: f"lvs-{role[:3]}-{tag}" for role in ("switch", *ADDRESSES)}
    for name in ns.values():
        run("ip", "netns", "add", name)
        run("ip", "-n", name, "link", "set", "lo", "up")
    server = None
    try:
        run("ip", "-n", ns["switch"], "link", "add", "br0", "type", "bridge")
        run("ip", "-n", ns["switch"], "link", "set", "br0", "up")
        for role, addr in ADDRESSES.items():
            port = f"p-{role[:3]}"
            run("ip", "-n", ns[role], "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", ns["switch"])
            run("ip", "-n", ns["switch"], "link", "set", port, "master", "br0", "up")
            run("ip", "-n", ns[role], "addr", "add", f"{addr}/24", "dev", "eth0")
            run("ip", "-n", ns[role], "link", "set", "eth0", "up")
        run("ip", "-n", ns["director"], "addr", "add", f"{VIP}/32", "dev", "eth0")
        run("ip", "-n", ns["rs"], "addr", "add", f"{VIP}/32", "dev", "lo")
        for key, value in (("arp_ignore", "1"), ("arp_announce", "2")):
            run("ip", "netns", "exec", ns["rs"], "sysctl", "-qw", f"net.ipv4.conf.all.{key}={value}")
        server = subprocess.Popen(["ip", "netns", "exec", ns["rs"], sys.executable, "-c", ECHO_SERVER, "rs", str(PORT)])
        deadline = time.monotonic() + 30
        while f":{PORT} " not in run("ip", "netns", "exec", ns["rs"], "ss", "-Hltn"):
            assert time.monotonic() < deadline, "the echo server did not start"
            time.sleep(0.2)
        yield ns
    finally:
        if server:
            server.kill()
            server.wait()
        for name in ns.values():
            subprocess.run(["ip", "netns", "del", name], check=False)
