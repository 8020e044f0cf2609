"""lvs.dr.ipvs_sync_daemon against the kernel's sync daemons, each test in network namespaces of
its own: start, stop, both modes at once, idempotence, check mode, a change restarts the daemon,
a refused restart puts the old daemon back; ipvs_info reports the daemons; a master's
connections really reach a backup in another namespace; and the director role's boot unit
(lvs-dr-ipvs-sync.service) starts, through ipvsadm, exactly the daemons the module runs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import PROJECT, playbook_env, run
from .conftest import ADDRESSES, PORT, VIP, HeldConnection, ipvs_table

MASTER = {"mode": "master", "interface": "sync0", "syncid": 10}
BACKUP = {"mode": "backup", "interface": "sync0", "syncid": 10}
KERNEL_MASTER = {**MASTER, "sync_maxlen": 1472, "mcast_group": "224.0.0.81", "mcast_port": 8848, "mcast_ttl": 1}


def daemons(netns: str) -> str:
    """The namespace's sync daemons as ipvsadm lists them: the reference for "nothing changed"."""
    return run("ip", "netns", "exec", netns, "ipvsadm", "-L", "--daemon")


@pytest.fixture
def sync_netns(netns):
    """The test's namespace with a veth pair sync0/sync1, sync0 on 10.88.0.1/24 and an MTU of 9000."""
    run("ip", "-n", netns, "link", "add", "sync0", "mtu", "9000", "type", "veth", "peer", "name", "sync1")
    run("ip", "-n", netns, "addr", "add", "10.88.0.1/24", "dev", "sync0")
    for dev in ("sync0", "sync1"):
        run("ip", "-n", netns, "link", "set", dev, "up")
    return netns


def test_start_master_then_nothing_to_do(sync_netns, run_module):
    first = run_module("ipvs_sync_daemon", MASTER, netns=sync_netns)
    assert first["changed"] and first["action"] == "start", first
    assert first["before"] == {} and first["after"] == KERNEL_MASTER
    assert daemons(sync_netns).strip() == "master sync daemon (mcast=sync0, syncid=10, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
    again = run_module("ipvs_sync_daemon", MASTER, netns=sync_netns)
    assert not again["changed"] and again["action"] == "none" and again["changed_fields"] == [], again
    assert again["before"] == again["after"] == KERNEL_MASTER


def test_master_and_backup_run_at_once_and_info_reports_both(sync_netns, run_module):
    assert run_module("ipvs_sync_daemon", MASTER, netns=sync_netns)["changed"]
    backup = run_module("ipvs_sync_daemon", {**BACKUP, "interface": "sync1"}, netns=sync_netns)
    assert backup["changed"] and backup["action"] == "start", backup
    assert backup["after"]["sync_maxlen"] == 1500 - 28, backup  # sync1's MTU is 1500
    listed = daemons(sync_netns)
    assert "master sync daemon (mcast=sync0, syncid=10" in listed and "backup sync daemon (mcast=sync1, syncid=10" in listed
    info = run_module("ipvs_info", {}, netns=sync_netns)
    assert sorted(info["sync_daemons"], key=lambda d: d["mode"]) == [backup["after"], KERNEL_MASTER]
    for params in (MASTER, {**BACKUP, "interface": "sync1"}):
        assert not run_module("ipvs_sync_daemon", params, netns=sync_netns)["changed"]
    # stopping one leaves the other alone
    assert run_module("ipvs_sync_daemon", {"mode": "master", "state": "absent"}, netns=sync_netns)["changed"]
    assert run_module("ipvs_info", {}, netns=sync_netns)["sync_daemons"] == [backup["after"]]


def test_left_out_options_are_the_kernels_defaults(sync_netns, run_module):
    # Started by hand with ipvsadm's defaults; the module, with the same options, finds nothing to do.
    run("ip", "netns", "exec", sync_netns, "ipvsadm", "--start-daemon", "backup", "--mcast-interface", "sync0", "--syncid", "10")
    run("ip", "netns", "exec", sync_netns, "ipvsadm", "--start-daemon", "master", "--mcast-interface", "sync1")
    backup = run_module("ipvs_sync_daemon", BACKUP, netns=sync_netns)
    assert not backup["changed"], backup
    assert backup["after"]["sync_maxlen"] == 9000 - 28  # sync0's MTU, less the IPv4 and UDP headers
    master = run_module("ipvs_sync_daemon", {"mode": "master", "interface": "sync1"}, netns=sync_netns)
    assert not master["changed"] and master["after"]["syncid"] == 0, master


def test_check_mode_changes_nothing(sync_netns, run_module):
    before = daemons(sync_netns)
    result = run_module("ipvs_sync_daemon", MASTER, netns=sync_netns, check=True, diff=True)
    assert result["changed"] and result["action"] == "start", result
    assert result["diff"]["before"] == {} and result["diff"]["after"] == KERNEL_MASTER == result["after"]
    assert daemons(sync_netns) == before
    run_module("ipvs_sync_daemon", MASTER, netns=sync_netns)
    before = daemons(sync_netns)
    result = run_module("ipvs_sync_daemon", {**MASTER, "syncid": 11}, netns=sync_netns, check=True, diff=True)
    assert result["changed"] and result["action"] == "restart" and result["changed_fields"] == ["syncid"], result
    assert "stopped and started again" in result["diff"]["after_header"]
    assert daemons(sync_netns) == before
    result = run_module("ipvs_sync_daemon", {"mode": "master", "state": "absent"}, netns=sync_netns, check=True)
    assert result["changed"] and result["action"] == "stop" and result["after"] == {}, result
    assert daemons(sync_netns) == before


def test_changed_settings_restart_the_daemon(sync_netns, run_module):
    run_module("ipvs_sync_daemon", BACKUP, netns=sync_netns)
    changed = {**BACKUP, "syncid": 20, "sync_maxlen": 4000, "mcast_group": "ff02::81", "mcast_port": 9000, "mcast_ttl": 2}
    result = run_module("ipvs_sync_daemon", changed, netns=sync_netns, diff=True)
    assert result["changed"] and result["action"] == "restart", result
    assert result["changed_fields"] == ["mcast_group", "mcast_port", "mcast_ttl", "sync_maxlen", "syncid"]
    assert result["diff"]["before"]["syncid"] == 10 and result["diff"]["after"]["syncid"] == 20
    assert result["diff"]["after_header"] == "backup sync daemon (stopped and started again: the kernel cannot change a running daemon)"
    assert daemons(sync_netns).strip() == "backup sync daemon (mcast=sync0, syncid=20, maxlen=4000, group=ff02::81, port=9000, ttl=2)"
    assert not run_module("ipvs_sync_daemon", changed, netns=sync_netns)["changed"]
    # another interface is a change too; options left out go back to the kernel's defaults
    moved = run_module("ipvs_sync_daemon", {**BACKUP, "interface": "sync1"}, netns=sync_netns)
    assert moved["action"] == "restart" and "interface" in moved["changed_fields"], moved
    assert daemons(sync_netns).strip() == "backup sync daemon (mcast=sync1, syncid=10, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"


def test_absent_stops_and_is_idempotent(sync_netns, run_module):
    run_module("ipvs_sync_daemon", MASTER, netns=sync_netns)
    gone = run_module("ipvs_sync_daemon", {"mode": "master", "state": "absent"}, netns=sync_netns, diff=True)
    assert gone["changed"] and gone["action"] == "stop" and gone["after"] == {}, gone
    assert gone["diff"]["before"] == KERNEL_MASTER and gone["diff"]["after"] == {}
    assert daemons(sync_netns).strip() == ""
    again = run_module("ipvs_sync_daemon", {"mode": "master", "state": "absent"}, netns=sync_netns)
    assert not again["changed"] and again["action"] == "none", again


def test_a_restart_the_kernel_refuses_puts_the_old_daemon_back(sync_netns, run_module):
    run_module("ipvs_sync_daemon", BACKUP, netns=sync_netns)
    before = daemons(sync_netns)
    # A socket that holds UDP port 9000 without SO_REUSEADDR: the backup's bind to it fails (EADDRINUSE).
    holder = subprocess.Popen(
        ["ip", "netns", "exec", sync_netns, sys.executable, "-c", "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
         "s.bind(('0.0.0.0', 9000)); print('bound', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "bound"
        result = run_module("ipvs_sync_daemon", {**BACKUP, "mcast_port": 9000}, netns=sync_netns)
    finally:
        holder.kill()
        holder.wait()
    assert result["rc"] != 0 and result.get("failed"), result
    assert "holds UDP port 9000; give mcast_port another port" in result["msg"], result["msg"]
    assert "was started again with its old settings" in result["msg"] and not result["changed"], result
    assert daemons(sync_netns) == before


def test_mixed_family_real_servers_are_refused_before_anything_changes(sync_netns, run_module):
    run_module("ipvs_service", {"address": VIP, "port": 80, "scheduler": "rr"}, netns=sync_netns)
    run_module("ipvs_real", {"service_address": VIP, "service_port": 80, "address": "2001:db8::2", "forwarding_method": "tunnel"}, netns=sync_netns)
    table, before = ipvs_table(sync_netns), daemons(sync_netns)
    result = run_module("ipvs_sync_daemon", MASTER, netns=sync_netns)
    assert result["rc"] != 0 and result.get("failed"), result
    assert "the kernel starts no sync daemon while a real server's address family differs from its service's" in result["msg"]
    assert f"(the sync protocol cannot carry them): tcp {VIP}:80 -> 2001:db8::2; remove those tunnel real servers" in result["msg"]
    assert daemons(sync_netns) == before and ipvs_table(sync_netns) == table


# --- the sync itself: a connection through the master's service appears in the backup's table ---


@pytest.fixture
def standby(dr_net):
    """dr_net (client, director, rs) plus a standby director: its own namespace, joined to the
    director's by a veth pair sync0 (10.88.0.1 on the director, .2 on the standby), with the same
    virtual service. Yields dr_net's names with "standby" added."""
    ns = {**dr_net, "standby": dr_net["director"].replace("lvs-dir-", "lvs-sby-")}
    run("ip", "netns", "add", ns["standby"])
    try:
        run("ip", "-n", ns["standby"], "link", "set", "lo", "up")
        run("ip", "-n", ns["director"], "link", "add", "sync0", "type", "veth", "peer", "name", "sync0", "netns", ns["standby"])
        for role, addr in (("director", "10.88.0.1/24"), ("standby", "10.88.0.2/24")):
            run("ip", "-n", ns[role], "addr", "add", addr, "dev", "sync0")
            run("ip", "-n", ns[role], "link", "set", "sync0", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns["standby"]], check=False)


def connections(netns: str) -> list[str]:
    """The namespace's IPVS connection entries, one line each (ipvsadm -Lnc without its header)."""
    return run("ip", "netns", "exec", netns, "ipvsadm", "-Lnc").splitlines()[2:]


def test_a_masters_connection_reaches_the_backups_table(standby, run_module):
    for role in ("director", "standby"):
        assert run_module("ipvs_service", {"address": VIP, "port": PORT, "scheduler": "rr"}, netns=standby[role])["changed"]
        assert run_module("ipvs_real", {"service_address": VIP, "service_port": PORT, "address": ADDRESSES["rs"]}, netns=standby[role])["changed"]
    assert run_module("ipvs_sync_daemon", MASTER, netns=standby["director"])["changed"]
    assert run_module("ipvs_sync_daemon", BACKUP, netns=standby["standby"])["changed"]
    assert connections(standby["standby"]) == []
    client = HeldConnection(standby["client"])
    try:
        assert client.send("hello") == "rs:hello"
        entry = f"{ADDRESSES['client']}:"
        assert any(entry in line and f"{VIP}:{PORT}" in line for line in connections(standby["director"]))
        # the master flushes its buffer about every second: allow it a few
        deadline = time.monotonic() + 20
        while not any(entry in line and f"{VIP}:{PORT} {ADDRESSES['rs']}:{PORT}" in line for line in connections(standby["standby"])):
            assert time.monotonic() < deadline, f"no synced connection in the backup's table: {connections(standby['standby'])}"
            time.sleep(0.5)
        [synced] = [line for line in connections(standby["standby"]) if entry in line]
        assert synced.split()[0] == "TCP" and synced.split()[2] == "ESTABLISHED", synced
    finally:
        client.close()


# --- the director role's boot unit ---


def render_sync_unit(collections_path: Path, tmp_path: Path, daemons: list[dict]) -> str:
    """lvs-dr-ipvs-sync.service as the director role's template renders it for DAEMONS (the
    role's director_sync_wanted), with Debian's variables."""
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"ansible.builtin.include_vars": str(PROJECT / "roles" / "director" / "vars" / "Debian.yml")},
                {
                    "ansible.builtin.template": {
                        "src": str(PROJECT / "roles" / "director" / "templates" / "lvs-dr-ipvs-sync.service.j2"),
                        "dest": str(tmp_path / "lvs-dr-ipvs-sync.service"),
                        "mode": "0644",
                    }
                },
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    (tmp_path / "vars.json").write_text(json.dumps({"ansible_python_interpreter": sys.executable, "director_sync_wanted": daemons}))
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}"]
    proc = subprocess.run([*argv, str(tmp_path / "play.yml")], capture_output=True, text=True, env=playbook_env(collections_path, tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return (tmp_path / "lvs-dr-ipvs-sync.service").read_text()


def run_unit(netns: str, unit: str, kind: str) -> None:
    """The unit's KIND= commands (ExecStart, ExecStop) in the namespace, as systemd runs them
    (argv, no shell; "-": a failure is ignored)."""
    for line in re.findall(rf"^{kind}=(.*)$", unit, re.M):
        proc = subprocess.run(["ip", "netns", "exec", netns, *shlex.split(line.lstrip("-"))], capture_output=True, text=True, check=False)
        assert line.startswith("-") or proc.returncode == 0, f"{line}: {proc.stderr}"


def test_boot_unit_starts_what_the_module_runs(sync_netns, run_module, collections_path, tmp_path):
    wanted = [
        MASTER,
        {**BACKUP, "interface": "sync1", "syncid": 0, "sync_maxlen": 2000, "mcast_group": "ff02::81", "mcast_port": 9000, "mcast_ttl": 2},
    ]
    unit = render_sync_unit(collections_path, tmp_path, wanted)
    assert "ExecStart=/usr/sbin/ipvsadm --start-daemon master --mcast-interface sync0 --syncid 10\n" in unit, unit
    assert (
        "ExecStart=/usr/sbin/ipvsadm --start-daemon backup --mcast-interface sync1 --syncid 0 "
        "--sync-maxlen 2000 --mcast-group ff02::81 --mcast-port 9000 --mcast-ttl 2\n"
    ) in unit, unit
    # At boot: nothing runs yet.
    run_unit(sync_netns, unit, "ExecStart")
    for params in wanted:
        result = run_module("ipvs_sync_daemon", params, netns=sync_netns)
        assert result["rc"] == 0 and not result["changed"], result
    # A start while they run (the role's first run starts the unit after the module): the same daemons.
    listed = daemons(sync_netns)
    run_unit(sync_netns, unit, "ExecStart")
    assert daemons(sync_netns) == listed
    run_unit(sync_netns, unit, "ExecStop")
    assert daemons(sync_netns).strip() == ""
