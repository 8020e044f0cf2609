"""Switching a director between the modes, last in verify, on the pair's backup (mol-ha-d2):
site.yml on both directors, three times, with the backup's host variables changed as an
operator would change them.

1. keepalived mode with director_ha_firewall false: the filter's chain and script go, keepalived
   runs on (its drop-in stays, without the filter);
2. the static mode: keepalived is stopped and disabled, its configuration and drop-in removed, and
   the static mode's VIP unit binds the VIP, with the table from lvs.dr.ipvs_table (a director of
   the keepalived mode that ran without the filter is found all the same);
3. the keepalived mode again, with the role's defaults: the VIP unit is gone and the VIP with it,
   keepalived runs with the filter as before, and the master alone holds the VIP.

While step 2 holds, both directors bind the VIP: the role refuses two static directors sharing a
VIP only among the hosts of one run (tests/host/test_director_checks.py), and the master here is
not in the run."""

from __future__ import annotations

import json

import pytest

DROPIN = "/etc/systemd/system/keepalived.service.d/lvs-dr.conf"
FILTER = "/usr/local/sbin/lvs-dr-ha-filter"
VIP_UNIT = "/etc/systemd/system/lvs-dr-vips.service"


def state(pair, director):
    """What the modes leave on DIRECTOR: keepalived's and the VIP unit's state, the files, the chain, the VIP."""
    script = f"""
        echo keepalived=$(systemctl is-active keepalived) $(systemctl is-enabled keepalived)
        echo vips=$(systemctl is-active lvs-dr-vips 2>/dev/null)
        for f in /etc/keepalived/keepalived.conf {DROPIN} {FILTER} {VIP_UNIT}; do test -e $f && echo has=$f; done
        grep -q ExecStartPre {DROPIN} 2>/dev/null && echo dropin-runs-filter
        iptables -S LVS_DR_HA >/dev/null 2>&1 && echo chain
        echo reals=$(ipvsadm -Ln | grep -c -- '->.*:80 .*Route')
        true
    """
    lines = pair.run(director, script).split()
    return set(lines), director in pair.holders()


@pytest.fixture(scope="module")
def switched(pair, tmp_path_factory, playbook):
    """Each step's run and what it left, in order; the pair put back as converged at the end."""
    backup = "mol-ha-d2"
    assert pair.master() == "mol-ha-d1", "the pair is not as converged: mol-ha-d1 should be the master"
    seen = []
    for name, hostvars in (
        ("no filter", {"director_ha_firewall": False}),
        ("static", {"director_mode": "static"}),
        ("keepalived", {}),
    ):
        # The backup's host variables, over Molecule's group_vars; both directors run (the
        # keepalived mode needs its peers in the play), the master's own variables unchanged.
        tmp_path = tmp_path_factory.mktemp("switch")
        (tmp_path / "switch.yml").write_text(json.dumps({"all": {"hosts": {backup: hostvars}}}))
        run = playbook(tmp_path, "playbooks/site.yml", "--limit", "directors", "-i", str(tmp_path / "switch.yml"))
        assert run.returncode == 0, f"{name}: {run.stdout[-6000:]}{run.stderr[-3000:]}"
        seen.append((name, run.stdout, *state(pair, backup)))
    return seen


def test_without_the_filter_its_chain_and_script_go_and_keepalived_runs_on(switched):
    _name, _out, found, holds_vip = switched[0]
    assert "keepalived=active" in found and "enabled" in found, found
    assert f"has={DROPIN}" in found and "dropin-runs-filter" not in found, found
    assert "chain" not in found and f"has={FILTER}" not in found, found
    assert not holds_vip


def test_the_static_mode_stops_keepalived_and_binds_the_vip_by_its_unit(switched, pair):
    _name, _out, found, holds_vip = switched[1]
    assert "keepalived=inactive" in found and "disabled" in found, found
    assert not {"has=/etc/keepalived/keepalived.conf", f"has={DROPIN}", "chain"} & found, found
    assert "vips=active" in found and f"has={VIP_UNIT}" in found, found
    assert f"reals={len(pair.realservers)}" in found, f"lvs.dr.ipvs_table did not load the service: {found}"
    assert holds_vip


def test_the_keepalived_mode_again_removes_the_vip_unit_and_the_master_alone_holds_the_vip(switched, pair):
    _name, _out, found, holds_vip = switched[2]
    assert "keepalived=active" in found and "enabled" in found, found
    assert f"has={VIP_UNIT}" not in found and "vips=active" not in found, found
    assert {"chain", "dropin-runs-filter", f"has={FILTER}", "has=/etc/keepalived/keepalived.conf"} <= found, found
    assert not holds_vip
    assert pair.master() == "mol-ha-d1"
    # The client may still have mol-ha-d2's MAC for the VIP from step 2, when both bound it.
    pair.run(pair.client, "ip neigh flush all")
    assert len(set(pair.requests(4))) == 2, "requests through the VIP do not reach both real servers"
