"""Unit tests of the ipvsadm_rules filter: lvs.dr.ipvs_info's services become ipvsadm-save -n's
lines (as Debian 12's ipvsadm 1.31 prints them for this table, measured in the lab), each real
server with thresholds followed by -x/-y. tests/integration/ipvs/test_ipvsadm_rules.py checks
the same against the lab's kernel and restores the text."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lvs.dr.plugins.filter.ipvsadm_rules import ipvsadm_rules

# ipvsadm-save -n of this table; `# x/y` marks what the filter adds.
SAVED = """\
-A -t 10.9.0.1:80 -s wlc -p 600 -M 255.255.255.0
-a -t 10.9.0.1:80 -r 10.9.0.2:80 -g -w 3 -x 1000 -y 500
-a -t 10.9.0.1:80 -r 10.9.0.3:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-nocsum
-a -t 10.9.0.1:80 -r 10.9.0.4:80 -i -w 2 --tun-type gre --tun-csum
-A -u 10.9.0.1:53 -s sh -b sh-fallback,sh-port
-a -u 10.9.0.1:53 -r 10.9.0.5:5353 -m -w 0 -x 9 -y 0
-A -u 10.9.0.1:5060 -s sh -p 60 --pe sip -o -b sh-port
-A --sctp-service 10.9.0.1:9 -s mh -b mh-port
-a --sctp-service 10.9.0.1:9 -r 10.9.0.7:9 -i -w 1 --tun-type ipip
-A -t [2001:db8::1]:80 -s rr -p 300 -M 64
-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -g -w 1
-A -f 7 -s rr -o
-a -f 7 -r 10.9.0.6:0 -g -w 1
-A -f 7 -6 -s rr
-a -f 7 -6 -r [2001:db8::3]:0 -g -w 1 -x 7 -y 3
"""


def real(address, port, method="dr", weight=1, upper=0, lower=0, tunnel=(None, None, None)):
    kind, tport, checksum = tunnel
    return {
        "address": address,
        "port": port,
        "forwarding_method": method,
        "weight": weight,
        "upper_threshold": upper,
        "lower_threshold": lower,
        "tunnel_type": kind,
        "tunnel_port": tport,
        "tunnel_checksum": checksum,
        "active_connections": 0,
        "inactive_connections": 0,
        "persistent_connections": 0,
        "stats": {},
    }


def service(family, protocol, address, port, fwmark, scheduler, reals, timeout=0, prefix=None, engine=None, flags=(), one_packet=False):
    return {
        "family": family,
        "protocol": protocol,
        "address": address,
        "port": port,
        "fwmark": fwmark,
        "scheduler": scheduler,
        "persistent_timeout": timeout,
        "persistent_netmask": prefix if prefix is not None else (128 if family == "ipv6" else 32),
        "persistence_engine": engine,
        "scheduler_flags": list(flags),
        "one_packet": one_packet,
        "stats": {},
        "reals": reals,
    }


# lvs.dr.ipvs_info's services for SAVED, in the kernel's (hash) order, not ipvsadm's.
INFO = [
    service("ipv6", None, None, None, 7, "rr", [real("2001:db8::3", 0, upper=7, lower=3)]),
    service("ipv4", "sctp", "10.9.0.1", 9, None, "mh", [real("10.9.0.7", 9, "tunnel", tunnel=("ipip", None, None))], flags=["mh-port"]),
    service(
        "ipv4",
        "tcp",
        "10.9.0.1",
        80,
        None,
        "wlc",
        [
            real("10.9.0.4", 80, "tunnel", 2, tunnel=("gre", None, "csum")),
            real("10.9.0.2", 80, weight=3, upper=1000, lower=500),
            real("10.9.0.3", 80, "tunnel", 2, tunnel=("gue", 6080, "nocsum")),
        ],
        timeout=600,
        prefix=24,
    ),
    service("ipv4", "udp", "10.9.0.1", 5060, None, "sh", [], timeout=60, engine="sip", flags=["sh-port"], one_packet=True),
    service("ipv4", "udp", "10.9.0.1", 53, None, "sh", [real("10.9.0.5", 5353, "nat", 0, upper=9)], flags=["sh-fallback", "sh-port"]),
    service("ipv4", None, None, None, 7, "rr", [real("10.9.0.6", 0)], one_packet=True),
    service("ipv6", "tcp", "2001:db8::1", 80, None, "rr", [real("2001:db8::2", 80)], timeout=300, prefix=64),
]


def test_ipvsadm_saves_lines_with_the_thresholds():
    assert ipvsadm_rules(INFO) == SAVED


def test_an_empty_table_is_an_empty_file():
    assert ipvsadm_rules([]) == ""


def test_persistence_with_a_full_mask_prints_no_mask():
    [line] = ipvsadm_rules([service("ipv4", "tcp", "10.9.0.1", 80, None, "rr", [], timeout=60)]).splitlines()
    assert line == "-A -t 10.9.0.1:80 -s rr -p 60"


@pytest.mark.parametrize("services", [None, {"services": []}, [{"family": "ipv4", "protocol": "tcp"}], [service("ipv4", "tcp", "x", 80, None, "rr", [])]])
def test_anything_but_ipvs_infos_services_is_refused(services):
    with pytest.raises(AnsibleFilterError, match="ipvsadm_rules: expected lvs.dr.ipvs_info's services"):
        ipvsadm_rules(services)
