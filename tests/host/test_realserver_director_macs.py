"""On real servers, VIP traffic only from the directors' MACs (issue 15, item 7:
realserver_director_macs), with this host's kernel and nft.

The role's nft tasks (roles/realserver/tasks/director_macs_rules.yml) run by ansible-playbook in
a "real server" network namespace that holds the VIP on lo and has two veth links: one to a
"director" namespace whose MAC is listed, one to a "neighbour" namespace whose MAC is not. Both
connect to a listener on the VIP: the director's packets reach the real server, the neighbour's are dropped
(without the rule both reach it). The real server still reaches its own VIP (loopback has no
MAC). A second run and check mode change nothing; an empty list removes the table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from ..integration.conftest import playbook_env, run

VIP = "10.77.0.100"


@pytest.fixture
def segment():
    """{"rs": NS, "director": NS, "neighbour": NS}: rs has VIP on lo, r0 <-> d0 (10.77.0.0/24), r1 <-> n0 (10.78.0.0/24)."""
    tag = uuid.uuid4().hex[:8]
    ns = {role: f"lvs-{role[:3]}-{tag}" for role in ("rs", "director", "neighbour")}
    for name in ns.values():
        run("ip", "netns", "add", name)
        run("ip", "-n", name, "link", "set", "lo", "up")
    listener = None
    try:
        run("ip", "-n", ns["rs"], "addr", "add", f"{VIP}/32", "dev", "lo")
        for rs_dev, peer, dev, net in (("r0", "director", "d0", "10.77.0"), ("r1", "neighbour", "n0", "10.78.0")):
            run("ip", "-n", ns["rs"], "link", "add", rs_dev, "type", "veth", "peer", "name", dev, "netns", ns[peer])
            run("ip", "-n", ns["rs"], "addr", "add", f"{net}.2/24", "dev", rs_dev)
            run("ip", "-n", ns[peer], "addr", "add", f"{net}.1/24", "dev", dev)
            run("ip", "-n", ns["rs"], "link", "set", rs_dev, "up")
            run("ip", "-n", ns[peer], "link", "set", dev, "up")
            run("ip", "-n", ns[peer], "route", "add", f"{VIP}/32", "via", f"{net}.2")
        listener = subprocess.Popen(
            ["ip", "netns", "exec", ns["rs"], sys.executable, "-m", "http.server", "-b", "0.0.0.0", str(PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _try in range(50):
            if reaches(ns["rs"]):
                break
            time.sleep(0.1)
        yield ns
    finally:
        if listener:
            listener.kill()
            listener.wait()
        for name in ns.values():
            subprocess.run(["ip", "netns", "del", name], check=False)


def mac(netns, dev):
    return run("ip", "netns", "exec", netns, "cat", f"/sys/class/net/{dev}/address").strip()


PORT = 8080
CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()"


def reaches(netns, address=VIP) -> bool:
    """Whether a TCP connection from the namespace to the real server's listener at ADDRESS succeeds."""
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", CONNECT, address, str(PORT)]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


@pytest.fixture
def play(segment, collections_path, tmp_path):
    """play(MACS, *options) -> (exit code, output) of the role's nft tasks in the real server's namespace."""
    tasks = [{"ansible.builtin.include_role": {"name": "lvs.dr.realserver", "tasks_from": "director_macs_rules"}}]
    (tmp_path / "play.yml").write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = playbook_env(collections_path, tmp_path)

    def _play(macs, *options):
        variables = {
            "ansible_python_interpreter": sys.executable,
            "realserver_vips": [VIP],
            "realserver_director_macs": macs,
            "realserver_director_macs_file": str(tmp_path / "director-macs.nft"),
        }
        (tmp_path / "vars.json").write_text(json.dumps(variables))
        argv = ["ip", "netns", "exec", segment["rs"], str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local"]
        proc = subprocess.run(
            [*argv, "-e", f"@{tmp_path / 'vars.json'}", *options, str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, check=False
        )
        return proc.returncode, proc.stdout + proc.stderr

    return _play


def changed(out):
    line = next(line for line in out.splitlines() if line.startswith("localhost") and "ok=" in line)
    return int(line.split("changed=")[1].split()[0])


def test_vip_traffic_only_from_the_directors_macs(segment, play):
    assert reaches(segment["director"]) and reaches(segment["neighbour"]), "the segment does not work without the rule"
    director_mac = mac(segment["director"], "d0")
    rc, out = play([director_mac.upper(), "02:00:00:00:00:99"])  # any case; a second director's MAC
    assert rc == 0, out
    assert reaches(segment["director"]), "the listed director's packets to the VIP were dropped"
    assert not reaches(segment["neighbour"]), "a packet to the VIP from an unlisted MAC reached the real server"
    assert reaches(segment["rs"]), "the real server no longer reaches its own VIP"
    assert reaches(segment["neighbour"], "10.78.0.2"), "traffic to the real server's own address (not a VIP) was dropped"

    rc, out = play([director_mac.upper(), "02:00:00:00:00:99"])
    assert rc == 0 and changed(out) == 0, out
    rc, out = play([director_mac, "02:00:00:00:00:99"], "--check")  # the same MACs, written otherwise
    assert rc == 0 and changed(out) == 0, out

    rc, out = play([])
    assert rc == 0 and changed(out) > 0, out
    assert "lvs_dr_realserver" not in run("ip", "netns", "exec", segment["rs"], "nft", "list", "tables")
    assert reaches(segment["neighbour"])


def test_a_bad_mac_is_refused_before_any_change(segment, play):
    rc, out = play(["02:00:00:00:00:01", "02:00:00:00:00:1; flush ruleset"])
    assert rc != 0, out
    assert "realserver_director_macs" in out and "02:00:00:00:00:1; flush ruleset" in out, out
    assert "lvs_dr_realserver" not in run("ip", "netns", "exec", segment["rs"], "nft", "list", "tables")
