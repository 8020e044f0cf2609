"""Bad input to every IPVS module, against the lab's kernel: each case must fail with a message
that names the option and what is allowed, and leave the namespace's IPVS table and sync daemons
exactly as they were (`ipvsadm -Sn` and `ipvsadm -L --daemon` before and after).
docs/internal/bad-input.md lists the cases and how many held."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from ..conftest import run
from .conftest import ipvs_table

VIP = "198.51.100.100"
SERVICE = {"protocol": "tcp", "address": VIP, "port": 80, "scheduler": "rr"}
REAL = {"protocol": "tcp", "service_address": VIP, "service_port": 80, "address": "198.51.100.2"}
TABLE = [{**SERVICE, "reals": [{"address": "198.51.100.2"}]}]
# What every case starts from: services on ports 80 and 81, real servers on 80.
SEEDED = f"""-A -t {VIP}:80 -s rr
-a -t {VIP}:80 -r 198.51.100.2:80 -g -w 1
-a -t {VIP}:80 -r 198.51.100.9:80 -g -w 1
-A -t {VIP}:81 -s wlc
-A -f 7 -s rr
"""

SERVICE_CASES = [
    ({**SERVICE, "address": "198.51.100.300"}, "address: '198.51.100.300' is not an IPv4 or IPv6 address"),
    ({**SERVICE, "address": "198.51.100.100; ipvsadm -C"}, "address: '198.51.100.100; ipvsadm -C' is not an IPv4 or IPv6 address"),
    ({**SERVICE, "address": "2001:db8::100", "family": "ipv4"}, "family: ipv4 does not match address 2001:db8::100 (ipv6)"),
    ({**SERVICE, "port": 0}, "port: 0 is out of range; use 1 to 65535"),
    ({**SERVICE, "port": 65536}, "port: 65536 is out of range; use 1 to 65535"),
    ({**SERVICE, "port": "http"}, "argument 'port' is of type str and we were unable to convert to int"),
    ({**SERVICE, "protocol": "icmp"}, "value of protocol must be one of: tcp, udp, sctp, got: icmp"),
    ({**SERVICE, "scheduler": "roundrobin"}, "value of scheduler must be one of: rr, wrr, lc, wlc"),
    ({**SERVICE, "scheduler": "rr; ipvsadm -C"}, "value of scheduler must be one of: rr, wrr, lc, wlc"),
    ({**SERVICE, "scheduler": "twos"}, "the kernel could not load the scheduler or persistence engine (module ip_vs_<name>)"),
    ({**SERVICE, "scheduler_flags": ["sh-port"]}, "scheduler_flags: sh-port do not apply to scheduler rr; sh-* go with scheduler sh, mh-* with mh"),
    ({**SERVICE, "scheduler": "sh", "scheduler_flags": ["sh-port", "mh-port"]}, "scheduler_flags: mh-port do not apply to scheduler sh"),
    # timeout * HZ in 32 bits: at HZ=250 it would read back as 2820130, and change on every run: issue 13, 5.
    ({**SERVICE, "persistent_timeout": 20000000}, "persistent_timeout: 20000000 is out of range; use 0 (not persistent) to 2678400 seconds"),
    ({**SERVICE, "persistent_timeout": -1}, "persistent_timeout: -1 is out of range; use 0 (not persistent) to 2678400 seconds"),
    ({**SERVICE, "persistent_timeout": 60, "persistent_netmask": "255.0.255.0"}, "persistent_netmask: '255.0.255.0' is not valid for an ipv4 service; use a"),
    ({**SERVICE, "persistent_timeout": 60, "persistent_netmask": "33"}, "persistent_netmask: '33' is not valid for an ipv4 service; use a netmask such as"),
    ({**SERVICE, "persistence_engine": "sip"}, "persistence_engine: a persistence engine needs a persistent service; set persistent_timeout too"),
    ({**SERVICE, "persistent_timeout": 60, "persistence_engine": "http"}, "value of persistence_engine must be one of: sip, got: http"),
    ({**SERVICE, "one_packet": True}, "one_packet: one-packet scheduling applies to UDP"),
    ({**SERVICE, "fwmark": 3}, "parameters are mutually exclusive: fwmark|address"),
    ({"fwmark": 0, "scheduler": "rr"}, "fwmark: 0 is out of range; use 1 to 4294967295"),
    ({"fwmark": 4294967296, "scheduler": "rr"}, "fwmark: 4294967296 is out of range; use 1 to 4294967295"),
    ({"address": VIP, "scheduler": "rr"}, "parameters are required together: address, port"),
    ({**SERVICE, "state": "gone"}, "value of state must be one of: present, absent, got: gone"),
    ({**SERVICE, "weight": 1}, "Unsupported parameters for (basic.py) module: weight. Supported parameters include: address"),
]

REAL_CASES = [
    ({**REAL, "address": "rs1.example"}, "address: 'rs1.example' is not an IPv4 or IPv6 address"),
    ({**REAL, "address": "2001:db8::2"}, "address: 2001:db8::2 is ipv6 but the service is ipv4; only forwarding_method tunnel can mix families"),
    ({**REAL, "service_address": "198.51.100.100 -C"}, "service_address: '198.51.100.100 -C' is not an IPv4 or IPv6 address"),
    ({**REAL, "service_port": 90}, f"the service tcp {VIP}:90 does not exist: create it first with lvs.dr.ipvs_service"),
    ({**REAL, "fwmark": 5}, "parameters are mutually exclusive: fwmark|service_address"),
    ({**REAL, "port": 8080}, "port: dr forwarding does no port mapping, so the real server port must be the service port 80, not 8080"),
    ({**REAL, "port": 8080, "forwarding_method": "tunnel"}, "port: tunnel forwarding does no port mapping"),
    ({**REAL, "port": 70000, "forwarding_method": "nat"}, "port: 70000 is out of range; use 0 to 65535"),
    ({**REAL, "forwarding_method": "direct"}, "value of forwarding_method must be one of: dr, gatewaying, route, nat, masquerading, tunnel"),
    ({**REAL, "tunnel_type": "gue"}, "tunnel_type: tunnel options need forwarding_method tunnel, not dr"),
    ({**REAL, "tunnel_checksum": "csum"}, "tunnel_checksum: tunnel options need forwarding_method tunnel, not dr"),
    ({**REAL, "forwarding_method": "tunnel", "tunnel_type": "gue"}, "tunnel_port: tunnel_type gue needs the UDP port of the real server's GUE receiver"),
    ({**REAL, "forwarding_method": "tunnel", "tunnel_type": "ipip", "tunnel_port": 6080}, "tunnel_port, tunnel_checksum: they apply to tunnel_type gue"),
    ({**REAL, "weight": -1}, "weight: -1 is out of range; use 0 (quiesced) to"),
    ({**REAL, "weight": 65536}, "weight: 65536 is out of range; use 0 (quiesced) to 65535 (as ipvsadm)"),
    ({**REAL, "upper_threshold": -1}, "upper_threshold: -1 is out of range; use 0 (no threshold) to 2147483647 connections"),
    ({**REAL, "upper_threshold": 5, "lower_threshold": 9}, "lower_threshold: 9 is above upper_threshold 5"),
    # The kernel compares l_threshold > u_threshold with 0 a value, and refuses it (ERANGE): issue 13, 3.
    ({**REAL, "lower_threshold": 5}, "lower_threshold: 5 is above upper_threshold 0, which the kernel refuses"),
    ({**REAL, "state": "drained", "drain_timeout": -5}, "drain_timeout: -5 is out of range; use 0"),
]

TABLE_CASES = [
    ({"services": [{**SERVICE, "reals": [{"address": "198.51.100.2", "weight": -1}]}]}, f"services[0] (tcp {VIP}:80).reals[0]: weight: -1 is out of range"),
    ({"services": TABLE + TABLE}, f"services[1] (tcp {VIP}:80): listed twice, also as services[0]"),
    (
        {"services": [{**SERVICE, "reals": [{"address": "198.51.100.2"}, {"address": "198.51.100.2", "weight": 3}]}]},
        f"services[0] (tcp {VIP}:80).reals[1]: 198.51.100.2:80 is listed twice, also as reals[0]",
    ),
    ({"services": [{"address": "198.51.100.300", "port": 80}]}, "services[0]: address: '198.51.100.300' is not an IPv4 or IPv6 address"),
    ({"services": [{"fwmark": 5, "address": VIP, "port": 80}]}, "parameters are mutually exclusive: fwmark|address, fwmark|port found in services"),
    (
        {"services": [{**SERVICE, "reals": [{"address": "2001:db8::2"}]}]},
        f"services[0] (tcp {VIP}:80).reals[0]: address: 2001:db8::2 is ipv6 but the service is ipv4",
    ),
    ({"services": [{**SERVICE, "reals": [{"address": "198.51.100.2", "port": 8080}]}]}, f"services[0] (tcp {VIP}:80).reals[0]: port: dr forwarding does"),
    (
        {"services": [{**SERVICE, "reals": [{"address": "198.51.100.2", "tunnel_type": "gre"}]}]},
        f"services[0] (tcp {VIP}:80).reals[0]: tunnel_type: tunnel options need forwarding_method tunnel, not dr",
    ),
    ({"services": [{**SERVICE, "scheduler": "twos"}]}, f"tcp {VIP}:80: the kernel could not load the scheduler or persistence engine"),
    ({"services": [{**SERVICE, "reals": [{"address": "198.51.100.2", "state": "gone"}]}]}, "value of state must be one of: present, absent, drained"),
    ({"services": [{**SERVICE, "reals": [{"weight": 3}]}]}, "missing required arguments: address found in services -> reals"),
    # the names before the resource-module states are gone, not aliases
    ({"services": TABLE, "state": "exact"}, "value of state must be one of: merged, replaced, overridden, deleted, gathered, rendered, parsed, got: exact"),
    ({"services": [], "state": "overridden"}, "services: empty, and state=overridden would delete every service in the table"),
    ({"state": "merged"}, "state is merged but all of the following are missing: services"),
    ({"services": TABLE, "state": "gathered"}, "services: state=gathered reads the kernel's table and takes no services; leave services out"),
    ({"state": "parsed"}, "state is parsed but all of the following are missing: running_config"),
    ({"services": TABLE, "running_config": SEEDED}, "running_config: only state=parsed reads it, not state=merged; leave running_config out"),
    (
        {"state": "parsed", "running_config": "-A -t 198.51.100.100:80 -s rr\n-a -t 198.51.100.100:80 -r 198.51.100.2:80 -g -w -1"},
        "running_config: line 2 (-a -t 198.51.100.100:80 -r 198.51.100.2:80 -g -w -1): -w -1: not a number",
    ),
    ({"state": "deleted", "services": []}, "services: empty, and state=deleted with no services would delete every service in the table"),
    ({"state": "deleted", "services": TABLE}, "services[0].reals: state=deleted removes each listed service with all its real servers; leave reals out"),
    ({"services": TABLE, "drain_timeout": -1}, "drain_timeout: -1 is out of range; use 0"),
    # With overridden the unlisted services 81 and fwmark 7 would go first, then the kernel's ERANGE: issue 13, 3.
    (
        {"services": [{**SERVICE, "reals": [{"address": "198.51.100.2", "lower_threshold": 5}]}], "state": "overridden"},
        f"services[0] (tcp {VIP}:80).reals[0]: lower_threshold: 5 is above upper_threshold 0",
    ),
    ({"services": TABLE, "protected": [{"address": "10.0.0.0/8"}]}, "protected: only state=overridden and state=deleted remove services that are not listed"),
    (
        {"services": TABLE, "state": "overridden", "protected": [{"address": "10.0.0.0/33"}]},
        "protected[0].address: '10.0.0.0/33' is not an address or a network",
    ),
    ({"state": "deleted", "protected": [{}]}, "protected[0]: empty; give address, port, protocol or fwmark"),
    ({"services": TABLE, "state": "overridden", "protected": [{"fwmark": 7, "port": 80}]}, "protected[0]: fwmark names a firewall-mark service"),
]

# ipvs_info takes no options: anything given is refused, and it names what is supported (nothing).
INFO_CASES = [
    ({"address": VIP}, "Unsupported parameters for (basic.py) module: address"),
    ({"services": TABLE}, "Unsupported parameters for (basic.py) module: services"),
    ({"state": "present"}, "Unsupported parameters for (basic.py) module: state"),
]

# The namespace runs a master daemon on lo (syncid 5): a case that would restart it must not.
DAEMON = {"mode": "master", "interface": "lo", "syncid": 5}
SYNC_CASES = [
    ({"mode": "backup", "interface": "eth9"}, "interface: there is no interface eth9 in this network namespace (ip link show lists them)"),
    ({**DAEMON, "interface": "eth9", "syncid": 6}, "interface: there is no interface eth9 in this network namespace"),
    ({"mode": "backup"}, "state is present but all of the following are missing: interface"),
    ({"interface": "lo"}, "missing required arguments: mode"),
    ({**DAEMON, "mode": "standby"}, "value of mode must be one of: master, backup, got: standby"),
    ({**DAEMON, "state": "stopped"}, "value of state must be one of: present, absent, got: stopped"),
    ({**DAEMON, "interface": "lo; ipvsadm --stop-daemon master"}, "interface: 'lo; ipvsadm --stop-daemon master' is not an interface name"),
    ({**DAEMON, "interface": "a-very-long-name0"}, "interface: 'a-very-long-name0' is not an interface name; use the name of an existing interface"),
    ({**DAEMON, "syncid": 256}, "syncid: 256 is out of range; use 0 (a backup takes every master's messages) to 255"),
    ({**DAEMON, "syncid": -1}, "syncid: -1 is out of range; use 0"),
    ({**DAEMON, "mcast_group": "198.51.100.1"}, "mcast_group: 198.51.100.1 is not a multicast address; use one of 224.0.0.0/4 (IPv4) or ff00::/8"),
    ({**DAEMON, "mcast_group": "sync.example"}, "mcast_group: 'sync.example' is not an IPv4 or IPv6 address"),
    ({**DAEMON, "mcast_port": 0}, "mcast_port: 0 is out of range; use 1 to 65535"),
    ({**DAEMON, "mcast_port": 70000}, "mcast_port: 70000 is out of range; use 1 to 65535"),
    ({**DAEMON, "mcast_ttl": 0}, "mcast_ttl: 0 is out of range; use 1 to 255"),
    ({**DAEMON, "mcast_ttl": 300}, "mcast_ttl: 300 is out of range; use 1 to 255"),
    ({**DAEMON, "mode": "backup", "sync_maxlen": 100}, "sync_maxlen: 100 is out of range for a backup daemon with an ipv4 group; use 1024 to 65507"),
    ({**DAEMON, "sync_maxlen": 70000}, "sync_maxlen: 70000 is out of range for a master daemon with an ipv4 group; use 1 to 65507"),
    ({**DAEMON, "weight": 1}, "Unsupported parameters for (basic.py) module: weight. Supported parameters include: interface"),
]

CASES = [("ipvs_service", *c) for c in SERVICE_CASES] + [("ipvs_real", *c) for c in REAL_CASES]
CASES += [("ipvs_table", *c) for c in TABLE_CASES] + [("ipvs_info", *c) for c in INFO_CASES]
CASES += [("ipvs_sync_daemon", *c) for c in SYNC_CASES]


@pytest.fixture(scope="module")
def seeded():
    """One namespace for every case (none may change it), its table SEEDED, a master daemon on lo."""
    name = f"lvs-bad-{uuid.uuid4().hex[:8]}"
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    try:
        subprocess.run(["ip", "netns", "exec", name, "ipvsadm", "-R"], input=SEEDED, text=True, check=True)
        assert sorted(ipvs_table(name).splitlines()) == sorted(SEEDED.splitlines())
        run("ip", "netns", "exec", name, "ipvsadm", "--start-daemon", "master", "--mcast-interface", "lo", "--syncid", "5")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.parametrize(
    ("module", "params", "message"),
    [pytest.param(*case, marks=pytest.mark.bad_input(case[0]), id=f"{case[0]}-{n}") for n, case in enumerate(CASES)],
)
def test_bad_input_fails_naming_the_option_and_changes_nothing(seeded, run_module, module, params, message):
    before = kernel_state(seeded)
    result = run_module(module, params, netns=seeded)
    assert result["rc"] != 0 and result.get("failed"), result
    assert message in result["msg"], result["msg"]
    assert kernel_state(seeded) == before


def kernel_state(netns):
    """The table and the sync daemons (the master on lo must stay, with syncid 5)."""
    daemons = run("ip", "netns", "exec", netns, "ipvsadm", "-L", "--daemon")
    assert "master sync daemon (mcast=lo, syncid=5," in daemons, daemons
    return ipvs_table(netns), daemons
