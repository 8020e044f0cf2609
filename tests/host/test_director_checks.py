"""The director role's variable checks (roles/director/tasks/checks.yml) in a network namespace of
the test's own, where the "director" has d0 on 10.77.0.0/24 and a default route through 10.77.0.254.

Issue 15, item 6: DR sends a real server its packets by MAC, so a DR real server must be on a
segment of the director (its route has no gateway). A real server of the realservers group
(realserver_address, or its own default IPv4 fact when that is not set) or a listed one that is
off-link is refused before anything changes, naming the variable to set and the route; tunnel and NAT
real servers may be anywhere, and a real server being removed is not checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..integration.conftest import playbook_env, run

VIP = "10.77.0.100"
ON_LINK, OFF_LINK, OFF_LINK2 = "10.77.0.2", "192.0.2.9", "198.51.100.7"


@pytest.fixture
def director_netns(netns):
    run("ip", "-n", netns, "link", "add", "d0", "type", "veth", "peer", "name", "d0p")
    run("ip", "-n", netns, "addr", "add", "10.77.0.1/24", "dev", "d0")
    for dev in ("d0", "d0p"):
        run("ip", "-n", netns, "link", "set", dev, "up")
    run("ip", "-n", netns, "route", "add", "default", "via", "10.77.0.254")
    return netns


def checks(netns, collections_path, tmp_path, services, realservers, directors=None, *extra):
    """Run the role's checks on the DIRECTORS (name: host variables; by default localhost alone),
    each a local connection in the namespace, with SERVICES as the group's director_services and
    EXTRA ansible-playbook arguments: (exit code, output)."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "children": {
                "directors": {
                    "hosts": {name: {**local, **hostvars} for name, hostvars in (directors or {"localhost": {}}).items()},
                    "vars": {"director_services": services, "director_vip_interface": "d0"},
                },
                "realservers": {"hosts": realservers},
            }
        }
    }
    play = [
        {
            "hosts": "directors",
            "gather_facts": True,
            "tasks": [{"ansible.builtin.include_role": {"name": "lvs.dr.director", "tasks_from": "checks"}}],
        }
    ]
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(json.dumps(play))
    env = playbook_env(collections_path, tmp_path)
    argv = ["ip", "netns", "exec", netns, str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(tmp_path / "inventory.json")]
    proc = subprocess.run([*argv, *extra, str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


SEED = {"protocol": "tcp", "address": VIP, "port": 80}


def test_on_link_real_servers_pass(director_netns, collections_path, tmp_path):
    services = [
        SEED,
        # Elsewhere, but not by DR: tunnel and NAT real servers route through a gateway; one being removed is not checked.
        {**SEED, "port": 81, "reals": [{"address": OFF_LINK, "forwarding_method": "tunnel"}, {"address": OFF_LINK2, "forwarding_method": "nat"}]},
        {**SEED, "port": 82, "reals": [{"address": ON_LINK}, {"address": OFF_LINK, "state": "absent"}]},
    ]
    rc, out = checks(director_netns, collections_path, tmp_path, services, {"rs1": {"realserver_address": ON_LINK}})
    assert rc == 0, out


def test_a_group_real_server_off_the_segment_is_refused(director_netns, collections_path, tmp_path):
    # A host of the group whose address is off-link (from realserver_address, or from its own default IPv4 fact
    # when that is not set: the same address the check is given).
    realservers = {"rs1": {"realserver_address": ON_LINK}, "rs2": {"realserver_address": OFF_LINK}}
    rc, out = checks(director_netns, collections_path, tmp_path, [SEED], realservers)
    assert rc != 0, out
    assert f"the DR real servers {OFF_LINK} are not on a segment of this director (ip route get: {OFF_LINK} via 10.77.0.254 dev d0" in out, out
    assert "set realserver_address of that host in group realservers (or the address in director_services' reals)" in out, out
    assert "failed: [localhost] (item=every DR real server is on-link)" in out, out


def test_a_listed_real_server_off_the_segment_is_refused(director_netns, collections_path, tmp_path):
    services = [{**SEED, "reals": [{"address": ON_LINK}, {"address": OFF_LINK2, "forwarding_method": "route"}]}]
    rc, out = checks(director_netns, collections_path, tmp_path, services, {})
    assert rc != 0, out
    assert f"the DR real servers {OFF_LINK2} are not on a segment of this director" in out, out


def test_two_static_directors_sharing_a_vip_are_refused(director_netns, collections_path, tmp_path):
    """Issue 16: two directors of the group in the static mode would both bind a VIP and both answer ARP
    for it. Refused before anything changes, naming the other director and the VIP they share; VIPs of
    their own pass."""
    other = {**SEED, "address": "10.77.0.101"}
    rc, out = checks(
        director_netns, collections_path, tmp_path, [SEED], {"rs1": {"realserver_address": ON_LINK}}, {"d1": {}, "d2": {"director_services": [SEED, other]}}
    )
    assert rc != 0, out
    assert f"director_mode: this director and d2 would both bind {VIP} in the static mode" in out, out
    assert "failed: [d1] (item=no two static directors share a VIP)" in out, out
    rc, out = checks(
        director_netns, collections_path, tmp_path, [SEED], {"rs1": {"realserver_address": ON_LINK}}, {"d1": {}, "d2": {"director_services": [other]}}
    )
    assert rc == 0, out


def test_a_keepalived_drain_of_every_real_server_is_refused_before_any_change(director_netns, collections_path, tmp_path):
    """keepalived -t refuses a service with no weight left; checks.yml renders the services with
    director_ha_drained as the template will, so it fails there, naming the service and the fix."""
    ha = {"director_mode": "keepalived", "director_ha_interface": "d0", "director_ha_drained": [ON_LINK]}
    rc, out = checks(director_netns, collections_path, tmp_path, [SEED], {"rs1": {"realserver_address": ON_LINK}}, {"d1": ha})
    assert rc != 0, out
    assert f"director_services: tcp {VIP}:80: no real server would have a weight above 0" in out, out
    rc, out = checks(director_netns, collections_path, tmp_path, [SEED], {"rs1": {"realserver_address": ON_LINK}}, {"d1": {**ha, "director_ha_drained": []}})
    assert rc == 0, out


def test_a_keepalived_director_whose_peer_is_limited_out_is_refused(director_netns, collections_path, tmp_path):
    """The keepalived mode needs each peer's VRRP address, which the peer's own facts give: a play
    that leaves a director of the group out (--limit) is refused before any change, saying so."""
    ha = {"director_mode": "keepalived", "director_ha_interface": "d0"}
    rc, out = checks(director_netns, collections_path, tmp_path, [SEED], {"rs1": {"realserver_address": ON_LINK}}, {"d1": ha, "d2": ha}, "--limit", "d1")
    assert rc != 0, out
    assert "director_ha_address: a director of group directors has no known address: it is not in this play" in out, out
    assert "so --limit none of them out" in out and "failed: [d1] (item=every peer has a VRRP address)" in out, out
