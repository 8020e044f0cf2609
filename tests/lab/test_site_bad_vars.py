"""The roles with bad variables, through site.yml on the converged lab (--limit to one host, the
variables as extra vars): each run must fail with a message that names the variable and what it
takes, and leave the host as it was: its IPVS table, ARP rules, addresses, and every file under
/etc, /opt and /var/www (size, modification time to the nanosecond, owner, mode: a file written
again, even with the same content, counts as changed) compared before and after. Converged first, so
that the checks the role can only make late (the kernel's, in lvs.dr.ipvs_table) are held to
"nothing changed" too. docs/internal/bad-input.md lists the cases and how many held.

Since no case may change its host, the cases share what does not change: the facts, gathered
by the first case on each host and cached for the others, and the snapshot, each case's "after"
being the next case's "before" on the same host."""

from __future__ import annotations

import json

import pytest

from .conftest import ansible, in_container, must

SERVICE = {"protocol": "tcp", "address": "172.25.8.100", "port": 80, "scheduler": "rr"}
REALS = [{"address": "172.25.8.2"}, {"address": "172.25.8.3"}]

DIRECTOR = [
    ({"director_services": []}, "director_services is empty; list at least one virtual service"),
    ({"director_services": [SERVICE], "director_realserver_group": "nosuch"}, 'director_services: a service has no real servers; give it "reals"'),
    ({"director_services": [{**SERVICE, "address": "10.99.0.100", "reals": REALS}]}, "director_services: VIP 10.99.0.100 is not on a subnet of eth0"),
    (
        {"director_services": [{**SERVICE, "address": "172.25.8.100; ip link set eth0 down", "reals": REALS}]},
        "director_services: VIP 172.25.8.100; ip link set eth0 down is not on a subnet of eth0",
    ),
    ({"director_vip_interface": "nosuch0"}, "director_vip_interface: there is no interface nosuch0 on this host; use one of"),
    ({"director_table_state": "mirror"}, "value of director_table_state must be one of: merged, replaced, overridden, got: mirror"),
    ({"director_default_scheduler": "roundrobin"}, "value of director_default_scheduler must be one of: rr, wrr"),
    ({"director_services": [{**SERVICE, "scheduler": "rr; reboot", "reals": REALS}]}, "value of scheduler must be one of: rr, wrr"),
    ({"director_pyroute2_source": "wheel"}, "director_pyroute2_wheel is empty; director_pyroute2_source=wheel needs the path"),
    (
        {"director_services": [{**SERVICE, "reals": [{"address": "172.25.8.2", "weight": -1}]}]},
        "services[0] (tcp 172.25.8.100:80).reals[0]: weight: -1 is out of range",
    ),
    (
        {"director_services": [{**SERVICE, "reals": [{"address": "172.25.8.2", "port": 8080}]}]},
        "services[0] (tcp 172.25.8.100:80).reals[0]: port: dr forwarding does no port mapping",
    ),
]

REALSERVER = [
    ({"realserver_arp_method": "arp"}, "value of realserver_arp_method must be one of: arptables, sysctl, none, got: arp"),
    ({"realserver_vips": []}, "realserver_vips is empty; list the IPv4 virtual IPs"),
    ({"realserver_vips": ["172.25.8.100; reboot"]}, "realserver_vips: ['172.25.8.100; reboot'] are not IPv4 addresses"),
    ({"realserver_vips": ["172.25.8.300"]}, "realserver_vips: ['172.25.8.300'] are not IPv4 addresses"),
    ({"realserver_address": "rs1.example"}, "realserver_address is 'rs1.example'; it must be this server's IPv4 address"),
    ({"realserver_vip_interface": "nosuch0"}, "realserver_vip_interface: there is no interface nosuch0 on this host; use lo or one of"),
    ({"realserver_vip_prefix": 33}, "realserver_vip_prefix is 33; use a prefix length from 1 to 32"),
]

CASES = [("director", "director", *c) for c in DIRECTOR] + [("realserver", "rs1", *c) for c in REALSERVER]

# What "the host as it was" means: printed inside the container, compared as text.
SNAPSHOT = r"""
command -v ipvsadm >/dev/null && ipvsadm -Sn
arptables -L -n 2>&1
ip -o addr
find /etc /opt /var/www -xdev -printf '%m %u %g %s %T@ %p\n' 2>/dev/null | sort
"""


def snapshot(host: str) -> str:
    return must(in_container(host, SNAPSHOT))


# host -> its snapshot after the last case that ran on it.
_AFTER: dict[str, str] = {}


@pytest.fixture(scope="module")
def fact_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("facts")


@pytest.mark.parametrize(
    ("role", "host", "params", "message"),
    [pytest.param(*case, marks=pytest.mark.bad_input(f"role {case[0]}"), id=f"{case[0]}-{n}") for n, case in enumerate(CASES)],
)
def test_bad_variable_fails_naming_it_and_changes_nothing(converged, lab_env, fact_cache, tmp_path, role, host, params, message):
    before = _AFTER.pop(host, None) or snapshot(host)
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(params))
    result = ansible(lab_env, "ansible-playbook", "playbooks/site.yml", "-i", "inventories/lab", "--limit", host, "-e", f"@{extra}", fact_cache=fact_cache)
    after = _AFTER[host] = snapshot(host)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert message in output, output[-3000:]
    assert after == before
